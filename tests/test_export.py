"""Export file: round trip, codes against the contract, corrupt and wrong-version files."""

import struct
import zlib

import numpy as np
import pytest
import torch
from torch import nn

from contract.weights import make_code
from sw.export import FORMAT_VERSION, MAGIC, ExportError, export_model, load, save
from sw.layers import DenseShiftLinear, ShiftConv2d
from sw.models import DigitsCNN, build_model

torch.set_num_threads(1)


def _trained_digits(seed=0, wbits=3):
    torch.manual_seed(seed)
    model = DigitsCNN(method="denseshift", wbits=wbits, width=4)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("wbits", [2, 3, 4, 5])
def test_round_trip_bit_exact(tmp_path, wbits):
    model = _trained_digits(wbits, wbits)
    path = tmp_path / "m.dshw"
    exp = export_model(model, path, meta={"note": "x"})
    back = load(path)
    assert back.model == model.config and back.meta == {"note": "x"}
    assert list(back.layers) == list(exp.layers) == ["features.3", "features.7", "features.10"]
    for name, rec in exp.layers.items():
        got = back.layers[name]
        assert np.array_equal(got.words, rec.words) and got.words.dtype == np.uint32
        assert (got.e0, got.wbits, got.weight_shape) == (rec.e0, rec.wbits, rec.weight_shape)
    assert set(back.tensors) == set(exp.tensors)
    for k, v in exp.tensors.items():
        assert back.tensors[k].dtype == v.dtype and np.array_equal(back.tensors[k], v), k
    # the decoded codes, loaded into a full-precision copy, reproduce the outputs bit for bit
    x = torch.rand(16, 1, 8, 8)
    fp = build_model({**back.model, "method": "fp"}).eval()
    back.load_into(fp)
    assert torch.equal(fp(x), model(x))
    ds = build_model(back.model).eval()
    back.load_into(ds)
    for (_, a), (_, b) in zip(ds.named_modules(), model.named_modules(), strict=True):
        if hasattr(a, "quantized_weight"):
            assert torch.equal(a.quantized_weight(), b.quantized_weight())
    assert torch.equal(ds(x), model(x))


def test_codes_follow_the_contract(tmp_path):
    torch.manual_seed(1)
    model = nn.Sequential(DenseShiftLinear(7, 3, e0=-2, wbits=3))
    layer = model[0]
    q = layer.quantizer
    export_model(model, tmp_path / "l.dshw", example_input=torch.zeros(2, 7))
    rec = load(tmp_path / "l.dshw").layers["0"]
    sign = (q.sign_latent < 0).numpy().astype(np.uint8)
    s = q.exponent().detach().numpy().astype(np.uint8)
    assert rec.e0 == -2 and rec.kind == "linear"
    assert np.array_equal(rec.codes(), make_code(sign, s, 3))
    assert np.array_equal(rec.weight(), layer.quantized_weight().detach().double().numpy())


def test_model_with_zero_weights_is_refused():
    model = nn.Sequential(ShiftConv2d(2, 3, 3, method="s3"))
    with torch.no_grad():
        model[0].quantizer.sparse_latent.fill_(-1.0)
    with pytest.raises(ExportError, match=r"layer 0 \(method s3\) cannot be exported: .*no zero"):
        export_model(model)


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.dshw"
    export_model(_trained_digits(), path)
    return path


def _rewrite(path, blob):
    path.write_bytes(blob)
    return path


def test_corrupt_byte_is_detected(good_file):
    blob = bytearray(good_file.read_bytes())
    blob[len(blob) // 2] ^= 0x40
    with pytest.raises(ExportError, match="corrupt export file \\(CRC-32 mismatch"):
        load(_rewrite(good_file, bytes(blob)))


def test_wrong_version_is_refused(good_file):
    blob = bytearray(good_file.read_bytes())
    blob[8:12] = struct.pack("<I", FORMAT_VERSION + 1)
    with pytest.raises(ExportError, match=f"export format version {FORMAT_VERSION + 1} is not "
                                          f"supported \\(this densehw reads versions 1, 2\\)"):
        load(_rewrite(good_file, bytes(blob)))


def test_bad_magic_and_truncation(good_file, tmp_path):
    blob = good_file.read_bytes()
    with pytest.raises(ExportError, match="not a densehw export file"):
        load(_rewrite(tmp_path / "x.dshw", b"PK\x03\x04" + blob[4:]))
    with pytest.raises(ExportError, match="not a densehw export file"):
        load(_rewrite(tmp_path / "empty.dshw", b""))
    with pytest.raises(ExportError, match="truncated export file"):
        load(_rewrite(tmp_path / "t.dshw", blob[:40]))
    with pytest.raises(ExportError, match="CRC-32 mismatch"):
        load(_rewrite(tmp_path / "t2.dshw", blob[:-100]))


def test_consistent_checksum_but_broken_header(good_file):
    blob = good_file.read_bytes()
    _, version, hlen = struct.unpack_from("<8sII", blob)
    header = blob[16:16 + hlen].replace(b'"words_per_row"', b'"words_per_rox"')
    body = header + blob[16 + hlen:-4]
    fixed = MAGIC + struct.pack("<II", version, len(header)) + body + struct.pack(
        "<I", zlib.crc32(body))
    with pytest.raises(ExportError, match="corrupt header \\(missing or malformed field "
                                          "'words_per_row'\\)"):
        load(_rewrite(good_file, fixed))


def test_save_is_atomic(tmp_path, good_file):
    exp = load(good_file)
    with pytest.raises(OSError):
        save(exp, tmp_path / "missing-dir" / "m.dshw")
    assert not (tmp_path / "missing-dir").exists()
    save(exp, tmp_path / "again.dshw")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert (tmp_path / "again.dshw").read_bytes() == good_file.read_bytes()


def test_cli_inspect_reports_one_line_error(tmp_path, capsys, good_file):
    from densehw.cli import main

    assert main(["train", "inspect", str(good_file)]) == 0
    assert "features.3" in capsys.readouterr().out
    bad = _rewrite(tmp_path / "bad.dshw", b"garbage")
    assert main(["train", "inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a densehw export file" in err


@pytest.mark.parametrize("e0", [-2, 1])
def test_model_trained_with_an_offset_rebuilds_from_its_export(tmp_path, e0):
    """The model's ``config`` records ``e0``: the model rebuilt from an export takes the
    file's layers (their ``e0`` must match) and computes the same outputs."""
    torch.manual_seed(e0 + 10)
    model = DigitsCNN(method="denseshift", wbits=3, width=4, e0=e0).eval()
    assert model.config["e0"] == e0
    assert "e0" not in DigitsCNN(method="denseshift", wbits=3, width=4).config
    path = tmp_path / "m.dshw"
    export_model(model, path)
    back = load(path)
    assert {rec.e0 for rec in back.layers.values()} == {e0}
    rebuilt = build_model(back.model).eval()
    back.load_into(rebuilt)
    assert all(mod.e0 == e0 for mod in rebuilt.modules() if hasattr(mod, "quantized_weight"))
    x = torch.rand(8, 1, 8, 8)
    assert torch.equal(rebuilt(x), model(x))


def test_version_1_exports_still_compile(tmp_path):
    """An export without a recorded graph (format version 1, as older densehw wrote) of a
    built-in model compiles to the same program as its version-2 export."""
    import dataclasses

    from contract.array import ArrayConfig
    from sw.compile import compile_model
    from sw.export import save
    from sw.runtime import run_program

    model = _trained_digits()
    v2 = export_model(model, tmp_path / "v2.dshw")
    save(dataclasses.replace(v2, graph=None, input_shape=None), tmp_path / "v1.dshw")
    assert load(tmp_path / "v1.dshw").version == 1 and load(tmp_path / "v2.dshw").version == 2
    a = compile_model(tmp_path / "v1.dshw", ArrayConfig())
    b = compile_model(tmp_path / "v2.dshw", ArrayConfig())
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    assert [s["op"] for s in a.steps] == [s["op"] for s in b.steps]
    assert torch.equal(run_program(a, x).logits_bits, run_program(b, x).logits_bits)
