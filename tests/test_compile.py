"""Compiler and program format: lowering of the digits CNN and the speech ResNet, the BatchNorm
fold, save/load, and clear errors for malformed programs, wrong-version exports and programs
built for another configuration."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from torch import nn

from contract import FP16, decode_weights, split_code, unpack_codes
from contract.array import ArrayConfig
from densehw.cli import main
from sw.compile import CompileError, compile_model
from sw.export import ExportError, export_model
from sw.models import DigitsCNN, SpeechResNet
from sw.program import ProgramError, check_config, load, save
from sw.runtime import decode, run_program

torch.set_num_threads(1)
SEED = 7


def _randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.running_mean.uniform_(-1, 1, generator=g)
                mod.running_var.uniform_(0.5, 4, generator=g)
                mod.weight.uniform_(-1.5, 1.5, generator=g)
                mod.bias.uniform_(-0.5, 0.5, generator=g)
            if hasattr(mod, "quantizer"):
                for p in mod.quantizer.parameters():
                    p.normal_(0, 1, generator=g)
    return model.eval()


@pytest.fixture(scope="module")
def digits_export(tmp_path_factory):
    torch.manual_seed(SEED)
    model = _randomise(DigitsCNN(method="denseshift", wbits=3, width=4), SEED)
    path = tmp_path_factory.mktemp("d") / "digits.dshw"
    export_model(model, path)
    return path, model


def test_digits_lowering_and_round_trip(digits_export, tmp_path):
    path, model = digits_export
    prog = compile_model(path, ArrayConfig())
    ops = [(s["op"], s["where"]) for s in prog.steps]
    assert ops == [("input", "host"), ("fp_conv2d", "host"), ("conv2d", "array"),
                   ("affine", "host"), ("maxpool2d", "host"), ("conv2d", "array"),
                   ("affine", "host"), ("conv2d", "array"), ("affine", "host"),
                   ("maxpool2d", "host"), ("flatten", "host"), ("fp_linear", "host")]
    arr = prog.array_steps()
    assert [(s["n"], s["k"], s["m"], s["relu"]) for s in arr] == [
        (64, 36, 4, True), (16, 36, 8, True), (16, 72, 8, True)]
    assert prog.values[prog.output] == {"shape": [10], "fmt": "fp32"}
    save(prog, tmp_path / "p")
    back = load(tmp_path / "p")
    assert back.steps == prog.steps and back.config == prog.config
    for name, blob in prog.blobs.items():
        assert np.array_equal(back.blobs[name], blob), name
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(run_program(prog, x).logits_bits, run_program(back, x).logits_bits)
    # saving again replaces the program directory atomically
    save(back, tmp_path / "p")
    assert load(tmp_path / "p").steps == prog.steps


def test_weight_blobs_are_the_exported_codes_with_bn_signs(digits_export):
    path, model = digits_export
    prog = compile_model(path, ArrayConfig())
    layers = dict((n, m) for n, m in model.named_modules() if hasattr(m, "quantizer"))
    for step in prog.array_steps():
        codes = unpack_codes(prog.blob(step["weights"]), step["k"], step["wbits"])
        w = decode_weights(codes, step["wbits"], step["e0"])
        want = layers[step["name"]].quantized_weight().detach().double().numpy().reshape(
            step["m"], -1)
        bn = model.get_submodule(step["torch"][1])
        flip = (bn.weight.detach().numpy() < 0)[:, None]
        assert flip.any() and (~flip).any()
        assert np.array_equal(w, np.where(flip, -want, want)), step["name"]
        _, p = split_code(codes, step["wbits"])
        assert int(p.max()) <= 3


def test_bn_fold_per_layer_matches_float64_torch(digits_export):
    """Each shift conv + BN + ReLU, fed the program's own fp16 input, agrees with PyTorch in
    float64 to within fp16 rounding of the bias, the output and the scale."""
    path, model = digits_export
    prog = compile_model(path, ArrayConfig())
    assert all(s["bn_fold"]["e0_shift"] == 0 for s in prog.array_steps())   # weights <= 2**3
    _check_bn_fold(prog, model)


def test_wide_codes_move_their_scale_into_the_host(tmp_path):
    """5-bit codes reach 2**15 at e0 = 0, far beyond unit scale: the compiler moves the excess
    powers of two from e0 into the folded BatchNorm's host scale (exactly), so fp16 outputs do
    not overflow, and the fold still agrees with float64 PyTorch."""
    torch.manual_seed(SEED)
    model = _randomise(DigitsCNN(method="denseshift", wbits=5, width=4), 3)
    export_model(model, tmp_path / "b5.dshw")
    cfg = ArrayConfig(wbits=5)
    prog = compile_model(tmp_path / "b5.dshw", cfg)
    shifted = 0
    for step in prog.array_steps():
        codes = unpack_codes(prog.blob(step["weights"]), step["k"], step["wbits"])
        _, p = split_code(codes, step["wbits"])
        e0_orig = step["e0"] + step["bn_fold"]["e0_shift"]
        want = max(0, min(e0_orig + int(p.max()) - 7, e0_orig - cfg.e0_min))
        assert step["bn_fold"]["e0_shift"] == want, step["name"]
        shifted += want
    assert shifted > 0, "no layer of the 5-bit model needed the shift: the test proves nothing"
    _check_bn_fold(prog, model)


def _check_bn_fold(prog, model):
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    res = run_program(prog, x, keep_values=True)
    for step in prog.array_steps():
        affine = prog.steps[step["id"] + 1]
        assert affine["op"] == "affine" and affine["inputs"] == [step["output"]]
        conv, bn = (model.get_submodule(n).double() for n in step["torch"][:2])
        xin = decode(res.values[step["inputs"][0]], FP16)
        with torch.no_grad():
            ref = torch.relu(bn(conv(xin)))
        got = decode(res.values[affine["output"]], FP16)
        # beyond fp16's largest value the layer's true output itself overflows (RNE: inf)
        big = ref.abs() > 65520
        assert bool((got[big].abs() == float("inf")).all()), step["name"]
        ref, got = ref.masked_fill(big, 0), got.masked_fill(big, 0)
        tol = 2.0 ** -8 * ref.abs() + 2.0 ** -8 * ref.abs().amax(dim=(0, 2, 3), keepdim=True)
        assert bool(((got - ref).abs() <= tol).all()), (
            step["name"], float((got - ref).abs().max()))
        model.float()


def test_speech_resnet_lowering(tmp_path):
    torch.manual_seed(SEED)
    model = _randomise(SpeechResNet(method="denseshift", wbits=3, width=4, n_mels=8), SEED)
    export_model(model, tmp_path / "s.dshw")
    prog = compile_model(tmp_path / "s.dshw", ArrayConfig(), input_shape=[8, 20])
    ops = [s["op"] for s in prog.steps]
    assert ops.count("conv1d") == 8 and ops.count("add") == 3
    assert ops[-3:] == ["avgpool", "flatten", "fp_linear"]
    adds = [s for s in prog.steps if s["op"] == "add"]
    assert all(s["relu"] for s in adds)
    x = torch.randn(6, 8, 20, generator=torch.Generator().manual_seed(3))
    res = run_program(prog, x)
    with torch.no_grad():
        ref = model(x).double()
    assert float((res.logits - ref).abs().max()) < 0.02 * float(ref.abs().max())


def test_narrower_codes_are_widened_and_wider_ones_refused(tmp_path):
    torch.manual_seed(SEED)
    m2 = _randomise(DigitsCNN(method="denseshift", wbits=2, width=4), 1)
    export_model(m2, tmp_path / "b2.dshw")
    prog = compile_model(tmp_path / "b2.dshw", ArrayConfig(wbits=3))
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = m2(x).double()
    assert float((run_program(prog, x).logits - ref).abs().max()) < 0.02 * float(
        ref.abs().max())
    m4 = _randomise(DigitsCNN(method="denseshift", wbits=4, width=4), 2)
    export_model(m4, tmp_path / "b4.dshw")
    with pytest.raises(CompileError, match=r"features\.3: exponent code p=\d+ does not fit "
                                           r"the array's 3-bit codes"):
        compile_model(tmp_path / "b4.dshw", ArrayConfig(wbits=3))


def test_configuration_limits(digits_export):
    """An ``e0`` outside the array's range moves into the folded BatchNorm's host scale (a power
    of two, exact: the same output bits); ``K > depth`` is refused."""
    path, _ = digits_export
    prog = compile_model(path, ArrayConfig(e0_min=1, e0_max=4))
    base = compile_model(path, ArrayConfig())
    for step in prog.array_steps():
        assert step["e0"] == 1 and step["bn_fold"]["e0_shift"] == -1, step["name"]
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(run_program(prog, x).logits_bits, run_program(base, x).logits_bits)
    with pytest.raises(CompileError, match=r"features\.10: K=72 exceeds the array depth 64"):
        compile_model(path, ArrayConfig(depth=64))


def test_program_for_another_config_is_refused(digits_export, tmp_path):
    path, _ = digits_export
    prog = compile_model(path, ArrayConfig())
    other = ArrayConfig(rows=8, cols=8)
    with pytest.raises(ProgramError, match=r"compiled for array configuration "
                                           r"fp16_b3_4x4_d512_\w+, not fp16_b3_8x8_d512_\w+ "
                                           r"\(rows: program 4 vs 8; cols: program 4 vs 8\)"):
        check_config(prog, other)
    check_config(prog, ArrayConfig())
    save(prog, tmp_path / "p")
    (tmp_path / "cfg.json").write_text(json.dumps(other.to_dict()))
    rc = main(["run", str(tmp_path / "p"), "--data", "digits", "--config",
               str(tmp_path / "cfg.json")])
    assert rc == 2


def _edit_header(directory, fn, rehash=True):
    """Edit program.json; ``rehash``: recompute its program_sha256 as a careless tool would, so
    that the validation behind the hash is tested."""
    from sw.program import header_digest

    head = directory / "program.json"
    h = json.loads(head.read_text())
    fn(h)
    if rehash:
        h["program_sha256"] = header_digest(h)
    head.write_text(json.dumps(h))


@pytest.mark.parametrize("edit,message", [
    (lambda h: h.update(version=2), r"program format version 2 is not supported \(this densehw "
                                    r"reads version 1\)"),
    (lambda h: h.update(format="x"), r"not a densehw program \(format 'x'"),
    (lambda h: h.update(pack_version=9), r"weight packing version 9 is not supported"),
    (lambda h: h["steps"][2].update(op="conv3d"), r"step 2: unknown op 'conv3d'"),
    (lambda h: h["steps"][2].update(inputs=["v9"]), r"step 2 \(conv2d features\.3\): reads "
                                                    r"value 'v9' before any step writes it"),
    (lambda h: h["steps"][2].update(k=999), r"step 2 \(conv2d features\.3\): K=999 is outside "
                                            r"the array's range \[1, 512\]"),
    (lambda h: h["steps"][5].update(e0=9), r"e0=9 is outside the array's range \[-8, 7\]"),
    (lambda h: h["steps"][5].update(wbits=4), r"4-bit weight codes, but the array takes 3-bit"),
    (lambda h: h["steps"][5].pop("relu"), r"step 5 \(conv2d features\.7\): missing field "
                                          r"'relu'"),
    (lambda h: h["steps"][2].update(weights="nope"), r"weights blob 'nope' does not exist"),
    (lambda h: h["steps"][2].update(n=63), r"n=63, k=36, m=4 do not match its input shape "
                                           r"\[4, 8, 8\] and output shape \[4, 8, 8\]"),
    (lambda h: h["steps"][4].update(kernel=[2]), r"step 4 \(maxpool2d features\.6\) kernel is "
                                                 r"\[2\]; expected a list of 2 integers"),
    (lambda h: h["steps"][3].update(scale="features.8.scale"),
     r"step 3 \(affine features\.4\.scale\): scale blob 'features\.8\.scale' must have "
     r"shape \(4,\)"),
    (lambda h: h["config"].update(rows=8), r"config_name .* does not match"),
    (lambda h: h["blobs"]["features.3.codes"].update(nbytes=4), r"blob 'features\.3\.codes': "
                                                                r"4 bytes"),
])
def test_malformed_programs_fail_clearly(digits_export, tmp_path, edit, message):
    path, _ = digits_export
    save(compile_model(path, ArrayConfig()), tmp_path / "p")
    _edit_header(tmp_path / "p", edit)
    with pytest.raises(ProgramError, match=message):
        load(tmp_path / "p")


def test_edited_header_is_refused(digits_export, tmp_path):
    """Any change to program.json after compilation (here ReLU off on one step, which would
    run and give other results) is refused by the header's SHA-256."""
    path, _ = digits_export
    save(compile_model(path, ArrayConfig()), tmp_path / "p")
    load(tmp_path / "p")
    _edit_header(tmp_path / "p", lambda h: h["steps"][2].update(relu=not h["steps"][2]["relu"]),
                 rehash=False)
    with pytest.raises(ProgramError, match=r"program\.json: SHA-256 mismatch: the header was "
                                           r"changed after compilation"):
        load(tmp_path / "p")
    _edit_header(tmp_path / "p", lambda h: h.pop("program_sha256"), rehash=False)
    with pytest.raises(ProgramError, match=r"no program_sha256"):
        load(tmp_path / "p")


def test_damaged_program_files(digits_export, tmp_path, capsys):
    path, _ = digits_export
    save(compile_model(path, ArrayConfig()), tmp_path / "p")
    blobs = tmp_path / "p" / "blobs.bin"
    data = bytearray(blobs.read_bytes())
    data[10] ^= 1
    blobs.write_bytes(bytes(data))
    with pytest.raises(ProgramError, match=r"blobs\.bin: SHA-256 mismatch"):
        load(tmp_path / "p")
    (tmp_path / "p" / "program.json").write_text("{oops")
    with pytest.raises(ProgramError, match=r"program\.json: not valid JSON"):
        load(tmp_path / "p")
    with pytest.raises(ProgramError, match=r"no program\.json; not a densehw program"):
        load(tmp_path)
    rc = main(["run", str(tmp_path / "p"), "--data", "digits"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("densehw run: error: ") and "not valid JSON" in err


def test_wrong_version_export_and_cli_errors(digits_export, tmp_path, capsys):
    path, _ = digits_export
    blob = bytearray(path.read_bytes())
    struct.pack_into("<I", blob, 8, 3)
    bad = tmp_path / "v3.dshw"
    bad.write_bytes(bytes(blob))
    with pytest.raises(ExportError, match="export format version 3 is not supported"):
        compile_model(bad, ArrayConfig())
    out = tmp_path / "out.prog"
    rc = main(["compile", str(bad), "-o", str(out), "--config", "default"])
    err = capsys.readouterr().err
    assert rc == 2 and "export format version 3 is not supported" in err
    assert err.count("\n") == 1 and not out.exists()
    assert list(tmp_path.iterdir()) == [bad]          # no partial output
    # a corrupted payload (CRC mismatch)
    blob = bytearray(path.read_bytes())
    blob[-10] ^= 0xFF
    bad.write_bytes(bytes(blob))
    assert main(["compile", str(bad), "-o", str(out), "--config", "default"]) == 2
    assert "CRC-32 mismatch" in capsys.readouterr().err
    # config errors
    (tmp_path / "c.json").write_text(json.dumps({"rows": 0}))
    assert main(["compile", str(path), "-o", str(out), "--config",
                 str(tmp_path / "c.json")]) == 2
    assert "rows must be in [1, 64], not 0" in capsys.readouterr().err
    assert main(["compile", str(path), "-o", str(out), "--config", "nope.json"]) == 2
    assert "config file 'nope.json' does not exist" in capsys.readouterr().err
    # an existing non-program path is never replaced
    (tmp_path / "file").write_text("keep")
    assert main(["compile", str(path), "-o", str(tmp_path / "file"), "--config",
                 "default"]) == 2
    assert "is not a densehw program directory" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "keep"


def test_model_with_an_offset_compiles_and_tracks_torch(tmp_path):
    """A model built with ``e0 = -2`` (weights ``±2**(-2 + S)``): its export rebuilds (the
    offset travels in the model's config), compiles with that offset on every array step, and
    the golden program tracks the PyTorch model."""
    model = _randomise(DigitsCNN(method="denseshift", wbits=3, width=4, e0=-2), SEED + 1)
    path = tmp_path / "e0.dshw"
    export_model(model, path)
    prog = compile_model(path, ArrayConfig())
    steps = list(prog.array_steps())
    assert len(steps) == 3 and all(-8 <= s["e0"] <= 7 for s in steps)
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(SEED + 2))
    res = run_program(prog, x)
    with torch.no_grad():
        ref = model(x).double()
    assert float((res.logits - ref).abs().max()) < 0.02 * float(ref.abs().max())
