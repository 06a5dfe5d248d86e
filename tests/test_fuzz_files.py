"""Files a user feeds densehw, corrupted: every case ends in exit code 0 with the right result
or exit code 2 with one line on stderr naming the problem (never a traceback, never a
partial output file).

Corruptions (seeded, the seed and case are in every failure message): bit flips in the header
and in the data, truncation, random bytes, appended bytes, and hand-made headers (huge, negative
and overflowing shapes, object/complex/structured/big-endian dtypes, Fortran order); for
configurations, valid TOML/JSON with wrong types or absurd values as well.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from contract.array import ArrayConfig
from contract.files import NpyError, load_npy
from densehw import cli

SEED = 26


def mutations(data: bytes, rng: random.Random, count: int, *, header: int = 0):
    """``count`` corrupted copies of ``data`` as ``(label, bytes)``; ``header``: length of a
    header whose bytes get half of the bit flips."""
    for i in range(count):
        b = bytearray(data)
        kind = rng.choice(["flip", "flip", "truncate", "byte", "append"])
        if kind == "flip":
            for _ in range(rng.randint(1, 3)):
                j = rng.randrange(header) if header and rng.random() < 0.5 else rng.randrange(
                    len(b))
                b[j] ^= 1 << rng.randrange(8)
        elif kind == "truncate":
            b = b[:rng.randrange(len(b))]
        elif kind == "byte":
            b[rng.randrange(len(b))] = rng.randrange(256)
        else:
            b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 9)))
        yield f"case {i} ({kind})", bytes(b)


def npy_bytes(arr) -> bytes:
    import io

    f = io.BytesIO()
    np.save(f, arr, allow_pickle=False)
    return f.getvalue()


def header_variants(arr) -> list[tuple[str, bytes]]:
    """Hand-made headers around ``arr``'s data: what a careless writer produces."""
    raw = npy_bytes(arr)
    text = raw[10:raw.index(b"\n") + 1].decode("latin1")
    shape = str(tuple(arr.shape)).replace(",)", ",)")
    descr = repr(arr.dtype.str)

    def with_header(new: str) -> bytes:
        body = new.ljust(len(text) - 1)[:len(text) - 1] + "\n"
        return raw[:10] + body.encode("latin1") + raw[10 + len(text):]

    out = []
    for label, old, new in [
        ("huge shape", shape, "(300000000000, 400000000)"),
        ("overflowing shape", shape, "(99999999999999999999999, 4)"),
        ("negative shape", shape, f"({-arr.shape[0]}, {arr.shape[-1]})"),
        ("object dtype", descr, "'|O'"),
        ("complex dtype", descr, "'<c16'"),
        ("structured dtype", descr, "[('a', '<f4')]"),
        ("bool dtype", descr, "'|b1'"),
        ("big-endian dtype", descr, repr(arr.dtype.newbyteorder(">").str)),
        ("fortran order", "False", "True"),
        ("bad key", "'descr'", "'dexcr'"),
        ("not a dict", "{", "["),
    ]:
        assert old in text, (label, old, text)
        out.append((label, with_header(text.replace(old, new, 1))))
    out.append(("empty file", b""))
    out.append(("text file", b"1,2,3\n4,5,6\n"))
    out.append(("npz archive", b"PK\x03\x04" + bytes(60)))
    return out


def expect_clean(rc, err, label, *, command):
    """Exit code 0, or 2 with exactly one line naming the command (no traceback)."""
    assert "Traceback" not in err, f"seed {SEED} {label}: traceback\n{err}"
    assert rc in (0, 2), f"seed {SEED} {label}: exit code {rc}: {err}"
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"densehw {command}: error: "), \
            f"seed {SEED} {label}: {err!r}"


def run_cli(argv, capsys):
    try:
        rc = cli.main(argv)
    except BaseException as exc:          # a traceback would reach the user
        import traceback

        pytest.fail(f"{argv}: {type(exc).__name__} escaped:\n{traceback.format_exc()}")
    captured = capsys.readouterr()
    return rc, captured.err


# -- load_npy -------------------------------------------------------------------------------------

def test_load_npy_refuses_before_allocating(tmp_path):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    good = tmp_path / "a.npy"
    good.write_bytes(npy_bytes(arr))
    assert np.array_equal(load_npy(good, "X"), arr)
    expected = {
        "huge shape": "is truncated: its header says (300000000000, 400000000) float32",
        "overflowing shape": "is truncated",
        "negative shape": "invalid shape",
        "object dtype": "holds dtype object; expected a plain numeric array",
        "complex dtype": "is truncated",
        "structured dtype": "expected a plain numeric array",
        "bool dtype": "has trailing bytes",
        "big-endian dtype": None,
        "fortran order": None,
        "bad key": "cannot read X file",
        "not a dict": "cannot read X file",
        "empty file": "cannot read X file",
        "text file": "cannot read X file",
        "npz archive": "cannot read X file",
    }
    for label, data in header_variants(arr):
        path = tmp_path / "v.npy"
        path.write_bytes(data)
        if expected[label] is None:
            assert load_npy(path, "X").shape in ((3, 4),)
            continue
        with pytest.raises(NpyError, match=expected[label].replace("(", r"\(").replace(
                ")", r"\)")) as info:
            load_npy(path, "X")
        assert "X file" in str(info.value) and str(path) in str(info.value)
    with pytest.raises(NpyError, match="does not exist"):
        load_npy(tmp_path / "missing.npy", "X")
    with pytest.raises(NpyError, match="is a directory"):
        load_npy(tmp_path, "X")
    # big-endian raw patterns read as native integers of the same values
    path = tmp_path / "be.npy"
    np.save(path, np.array([1, 0x3C00], dtype=">u2"))
    got = load_npy(path, "X")
    assert got.dtype == np.uint16 and got.dtype.byteorder in "=|<" and got.tolist() == [1, 0x3C00]


# -- densehw gemm on corrupted .npy inputs ---------------------------------------------------------

def _gemm_inputs(tmp_path):
    rng = np.random.default_rng(SEED)
    x = rng.integers(-8, 9, (3, 5)).astype(np.float16)
    w = (2.0 ** rng.integers(-2, 2, (4, 5)) * rng.choice([-1, 1], (4, 5))).astype(np.float32)
    b = rng.integers(-4, 5, 4).astype(np.float16)
    return {"x": x, "w": w, "bias": b}


@pytest.mark.parametrize("target", ["x", "w", "bias"])
def test_gemm_corrupted_npy(tmp_path, capsys, target):
    """Each input of ``densehw gemm`` corrupted in ~120 ways: exit 2 with one line naming the
    file, or exit 0 with the golden result of what the file holds."""
    from sw.golden import gemm_golden

    arrays = _gemm_inputs(tmp_path)
    paths = {}
    for name, arr in arrays.items():
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], arr)
    clean = npy_bytes(arrays[target])
    header = clean.index(b"\n") + 1
    out = tmp_path / "y.npy"
    argv = ["gemm", "--fmt", "fp16", "--wbits", "3", "--x", str(paths["x"]), "--w",
            str(paths["w"]), "--bias", str(paths["bias"]), "--out", str(out)]
    rng = random.Random(SEED)
    cases = list(mutations(clean, rng, 100, header=header)) + header_variants(arrays[target])
    errors = 0
    for label, data in cases:
        label = f"{target} {label}"
        paths[target].write_bytes(data)
        out.unlink(missing_ok=True)
        rc, err = run_cli(argv, capsys)
        expect_clean(rc, err, label, command="gemm")
        if rc == 2:
            errors += 1
            assert not out.exists(), f"{label}: output left behind"
            assert target in err or paths[target].name in err, f"{label}: {err}"
            continue
        # accepted: the result is the golden model's on what numpy reads from the files
        from contract import encode_weights

        x, w, b = (np.load(paths[n]) for n in ("x", "w", "bias"))
        codes, e0 = encode_weights(w.astype(np.float64), 3)
        from sw.fpbits import to_bits

        want = gemm_golden(to_bits(x.astype(np.float16), "fp16"), codes, int(e0),
                           in_fmt="fp16", wbits=3, bias_bits=to_bits(b.astype(np.float16),
                                                                     "fp16")).numpy()
        assert np.array_equal(np.load(out).astype(np.int64), want), label
    assert errors > len(cases) // 3          # the corruptions do hit


# -- configurations --------------------------------------------------------------------------------

WRONG = [None, True, -1, 0, 1.5, "x", [], {}, 10**30, 2**63, 1e308, "fp16",
         {"name": "x", "exp_bits": 100, "frac_bits": 100},
         {"name": "x", "exp_bits": 0, "frac_bits": 0}, {"name": 1}]


def test_config_files_fuzzed(tmp_path):
    """``--config`` files (TOML and JSON): bit flips, truncation, random bytes, and every key
    set to wrong types and absurd values: a valid configuration or a UserError naming the
    file, nothing else."""
    from densehw.cli import UserError, load_config

    rng = random.Random(SEED)
    toml = (cli.CONFIGS / "default.toml").read_bytes()
    cases = [(f"toml {lb}", d, ".toml") for lb, d in mutations(toml, rng, 400)]
    js = json.dumps(ArrayConfig().to_dict()).encode()
    cases += [(f"json {lb}", d, ".json") for lb, d in mutations(js, rng, 400)]
    for key in ArrayConfig._KEYS:
        for value in WRONG:
            d = ArrayConfig().to_dict()
            d[key] = value
            cases.append((f"json {key}={value!r}", json.dumps(d).encode(), ".json"))
    accepted = refused = 0
    for label, data, suffix in cases:
        path = tmp_path / f"cfg{suffix}"
        path.write_bytes(data)
        try:
            cfg = load_config(str(path))
        except UserError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc), f"{label}: {exc}"
            refused += 1
            continue
        except Exception as exc:                      # noqa: BLE001 (any other is the bug)
            pytest.fail(f"seed {SEED} {label}: {type(exc).__name__}: {exc}")
        assert isinstance(cfg, ArrayConfig)
        # an accepted file means what it says: the configuration round-trips
        assert ArrayConfig.from_dict(cfg.to_dict()) == cfg
        accepted += 1
    assert refused > len(cases) // 2 and accepted > 0


def test_config_errors_through_the_cli(tmp_path, capsys):
    """A few corrupted configurations end to end: exit code 2, one line."""
    bad = {"rows.json": '{"rows": "4"}', "huge.json": '{"depth": 1e400}',
           "trunc.toml": 'in_fmt = "fp16"\nrows = ', "nan.json": '{"rows": NaN}',
           "deep.json": "[" * 100000 + "]" * 100000, "bin.toml": "\x00\xff\xfe"}
    for name, text in bad.items():
        path = tmp_path / name
        path.write_text(text, encoding="latin1")
        out = tmp_path / "gen"
        rc, err = run_cli(["generate", "--config", str(path), "-o", str(out)], capsys)
        expect_clean(rc, err, name, command="generate")
        assert rc == 2 and name in err, err
        assert not out.exists()


# -- exports and compiled programs -----------------------------------------------------------------

def _leaves(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, path + (i,))
    else:
        yield path


ABSURD = [None, True, -1, 0, 2**31, 10**12, 2**64, 1.5, float("nan"), "x", [], {}, [10**9] * 4,
          -10**12, "conv3d", "<f8", "|O"]


def _mutate(obj, rng):
    """A deep copy of ``obj`` with one leaf set to an absurd value; ``(copy, label)``."""
    import copy

    path = rng.choice(list(_leaves(obj)))
    value = rng.choice(ABSURD)
    out = copy.deepcopy(obj)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out, f"{'/'.join(map(str, path))}={value!r}"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """A small digits model: its export, its program, an input file."""
    import torch

    from sw.compile import compile_model
    from sw.export import export_model
    from sw.models import DigitsCNN
    from sw.program import save

    torch.manual_seed(SEED)
    d = tmp_path_factory.mktemp("fuzz")
    model = DigitsCNN(method="denseshift", wbits=3, width=4).eval()
    export_model(model, d / "m.dshw")
    save(compile_model(d / "m.dshw", ArrayConfig()), d / "good.prog")
    np.save(d / "x.npy", np.random.default_rng(SEED).standard_normal((2, 1, 8, 8))
            .astype(np.float32))
    return d


def _same_program(a, b) -> bool:
    ha, hb = (json.loads((p / "program.json").read_text()) for p in (a, b))
    return ((a / "blobs.bin").read_bytes() == (b / "blobs.bin").read_bytes()
            and all(ha[k] == hb[k] for k in ("steps", "values", "input", "output", "config")))


def test_export_fuzzed(compiled, capsys):
    """``densehw compile`` on ~250 corrupted exports: header fields set to wrong types and
    absurd values (with the CRC recomputed, as a careless tool would), bit flips and
    truncation: exit 2 with one line, or a program identical to the clean export's (the field
    does not decide the program), never a traceback and never another program."""
    import shutil
    import struct
    import zlib

    d = compiled
    blob = (d / "m.dshw").read_bytes()
    magic, version, hlen = struct.unpack_from("<8sII", blob)
    header = json.loads(blob[16:16 + hlen])
    payload = blob[16 + hlen:-4]
    rng = random.Random(SEED)
    cases = []
    for _ in range(180):
        h, label = _mutate(header, rng)
        hb = json.dumps(h, sort_keys=True).encode()
        body = hb + payload
        cases.append((label, struct.pack("<8sII", magic, version, len(hb)) + body
                      + struct.pack("<I", zlib.crc32(body))))
    cases += list(mutations(blob, rng, 70, header=16 + hlen))
    out = d / "out.prog"
    refused = 0
    for label, data in cases:
        (d / "bad.dshw").write_bytes(data)
        shutil.rmtree(out, ignore_errors=True)
        rc, err = run_cli(["compile", str(d / "bad.dshw"), "-o", str(out), "--config",
                           "default", "-q"], capsys)
        expect_clean(rc, err, label, command="compile")
        if rc == 2:
            refused += 1
            assert not out.exists(), f"{label}: partial program left behind"
        else:
            assert _same_program(out, d / "good.prog"), f"seed {SEED} {label}: accepted, " \
                f"and the program differs"
    assert refused > len(cases) // 3


def test_program_fuzzed(compiled, capsys):
    """``densehw run`` on ~350 corrupted programs. A field changed after compilation is
    refused by the header's SHA-256; the same changes with the hash recomputed meet the
    validation (and the runtime's shape checks) instead; raw bit flips and truncation of
    program.json, blobs.bin and source.dshw. Exit 2 with one line or a clean run, never a
    traceback."""
    import shutil

    from sw.program import header_digest

    d = compiled
    good = d / "good.prog"
    header = json.loads((good / "program.json").read_text())
    rng = random.Random(SEED + 1)
    bad_dir = d / "bad.prog"
    argv = ["run", str(bad_dir), "--inputs", str(d / "x.npy"), "--out", str(d / "y.npy"),
            "--no-reference"]
    counts = {"hash": 0, "rehashed": 0}
    for i in range(300):
        h, label = _mutate(header, rng)
        rehash = i % 3 != 0
        if rehash:
            h["program_sha256"] = header_digest(h)
        shutil.rmtree(bad_dir, ignore_errors=True)
        shutil.copytree(good, bad_dir)
        (bad_dir / "program.json").write_text(json.dumps(h))
        rc, err = run_cli(argv, capsys)
        expect_clean(rc, err, label, command="run")
        changed = h != dict(header, program_sha256=h["program_sha256"])
        if not rehash and changed:
            # (the format, version and packing version are read before the hash)
            assert rc == 2 and ("SHA-256 mismatch" in err or "program_sha256" in err
                                or label.split("=")[0] in ("format", "version",
                                                           "pack_version")), f"{label}: {err}"
            counts["hash"] += 1
        counts["rehashed"] += rehash and rc == 2
    for name in ("program.json", "blobs.bin", "source.dshw"):
        data = (good / name).read_bytes()
        for label, bad in mutations(data, rng, 20):
            shutil.rmtree(bad_dir, ignore_errors=True)
            shutil.copytree(good, bad_dir)
            (bad_dir / name).write_bytes(bad)
            rc, err = run_cli(argv, capsys)
            expect_clean(rc, err, f"{name} {label}", command="run")
            assert rc == 2, f"{name} {label}: a damaged file was accepted"
    assert counts["hash"] > 50 and counts["rehashed"] > 50


# -- every field of program.json and of the export header, one at a time --------------------------

#: Values every field is set to (``make test``); the slow sweep adds :data:`MORE_VALUES`.
FIELD_VALUES = [-1, 2**62, 10**30, 1.5, "x"]
MORE_VALUES = [None, True, 0, 1, 2**31, 2**64, -2**63, float("nan"), float("inf"), [], {},
               [2**40, 2**40], "<f8", "|O", "<c16", "float64"]
#: Fields of program.json whose (re-hashed, accepted) change may change the result: the program
#: then says something else, and means it. Any other accepted change must leave every output bit
#: as it was.
RESULT_FIELDS = {"blobs/*/offset", "steps/conv2d/e0", "steps/conv2d/relu", "steps/conv2d/bias",
                 "steps/fp_conv2d/relu", "steps/fp_conv2d/bias", "steps/fp_linear/relu",
                 "steps/fp_linear/bias", "steps/affine/relu", "steps/affine/scale",
                 "steps/affine/shift", "steps/maxpool2d/kernel/#", "steps/maxpool2d/stride/#",
                 "steps/maxpool2d/padding/#", "steps/maxpool2d/ceil_mode"}


def _set(obj, path, value):
    import copy

    out = copy.deepcopy(obj)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def _program_pattern(header, path) -> str:
    """``blobs/*/shape/#``, ``steps/conv2d/e0``...: the field, whatever blob, value or step."""
    out = []
    for i, key in enumerate(path):
        if path[:i] in (("blobs",), ("values",)):
            out.append("*")
        elif path[:i] == ("steps",):
            out.append(str(header["steps"][key].get("op")))
        else:
            out.append("#" if isinstance(key, int) else key)
    return "/".join(out)


def _field_cases(header, values, *, every_leaf, pattern, skip=()):
    """``(pattern, path, value)`` for one leaf per pattern (or every leaf) and each value that
    differs from the leaf's."""
    seen = set()
    for path in _leaves(header):
        pat = pattern(header, path)
        if path in skip or (not every_leaf and pat in seen):
            continue
        seen.add(pat)
        node = header
        for key in path:
            node = node[key]
        for value in values:
            if json.dumps(value) != json.dumps(node):
                yield pat, path, value


def test_program_hash_covers_every_field(compiled, tmp_path):
    """Every leaf of program.json changed (a number by one, a string by a letter, a boolean
    negated, a null to 0) without re-hashing: refused, by the SHA-256 or, for the fields read
    before it (format, versions), by their own check."""
    import shutil

    from sw.program import ProgramError, load

    good = compiled / "good.prog"
    header = json.loads((good / "program.json").read_text())
    bad = tmp_path / "p"
    shutil.copytree(good, bad)
    count = 0
    for path in _leaves(header):
        if path == ("program_sha256",):
            continue
        node = header
        for key in path:
            node = node[key]
        new = (not node if isinstance(node, bool) else node + 1 if isinstance(node, (int, float))
               else node + "x" if isinstance(node, str) else 0)
        (bad / "program.json").write_text(json.dumps(_set(header, path, new)))
        with pytest.raises(ProgramError, match="SHA-256 mismatch|not a densehw program|version"):
            load(bad)
        count += 1
    assert count > 300


def _run_program_fields(compiled, capsys, tmp_path, values, *, every_leaf, reference=False,
                        only=None):
    """densehw run on the compiled program with one field of program.json changed (and its
    hash recomputed) per case; returns ``(refused, accepted)``."""
    import shutil

    from sw.program import header_digest

    good = compiled / "good.prog"
    header = json.loads((good / "program.json").read_text())
    bad = tmp_path / "p"
    shutil.copytree(good, bad)
    out = tmp_path / "y.npy"
    argv = ["run", str(bad), "--inputs", str(compiled / "x.npy"), "--out", str(out)]
    argv += [] if reference else ["--no-reference"]
    assert run_cli(argv, capsys)[0] == 0
    clean = np.load(out)
    skip = {("program_sha256",)}
    refused = accepted = 0
    for pat, path, value in _field_cases(header, values, every_leaf=every_leaf,
                                         pattern=_program_pattern, skip=skip):
        if only and not pat.startswith(only):
            continue
        h = _set(header, path, value)
        h["program_sha256"] = header_digest(h)
        (bad / "program.json").write_text(json.dumps(h))
        out.unlink(missing_ok=True)
        label = f"program.json {'/'.join(map(str, path))} = {value!r} (re-hashed)"
        rc, err = run_cli(argv, capsys)
        expect_clean(rc, err, label, command="run")
        if rc == 2:
            refused += 1
            assert not out.exists(), f"{label}: output left behind"
            continue
        accepted += 1
        got = np.load(out)
        if pat not in RESULT_FIELDS:
            assert got.dtype == clean.dtype and got.shape == clean.shape and np.array_equal(
                got.view(np.uint8), clean.view(np.uint8)), f"{label}: accepted, and the " \
                f"outputs changed, though {pat} does not decide them"
    return refused, accepted


def test_program_every_field(compiled, capsys, tmp_path):
    """One field of each kind of program.json (every header field, every field of a blob, a
    value and each step op) set to -1, 2**62, 10**30, 1.5 and "x", the hash recomputed:
    exit 2 with one line, or a run whose outputs are bit for bit the clean program's unless
    the field decides them (:data:`RESULT_FIELDS`)."""
    refused, accepted = _run_program_fields(compiled, capsys, tmp_path, FIELD_VALUES,
                                            every_leaf=False)
    assert refused > 500 and accepted > 0


@pytest.mark.slow
def test_program_every_leaf_every_value(compiled, capsys, tmp_path):
    """Every leaf of program.json (about 450) set to 21 values (about 9 500 runs, 3 min)."""
    refused, accepted = _run_program_fields(compiled, capsys, tmp_path,
                                            FIELD_VALUES + MORE_VALUES, every_leaf=True)
    assert refused > 6000


@pytest.mark.parametrize("only,values", [
    ("source", ["x", 1, None, "pt2", "onnx", "../source.dshw", []]),
    ("dataset", ["x", 1, "speech"]),
])
def test_program_source_fields_with_reference(compiled, capsys, tmp_path, only, values):
    """The fields that the PyTorch reference reads (the source file's kind, name and hash, the
    dataset), with the reference on: exit 2 with one line, or the clean outputs (an unknown
    source kind once reached torch.export.load with a .dshw file: a traceback)."""
    refused, _ = _run_program_fields(compiled, capsys, tmp_path, values, every_leaf=True,
                                     reference=True, only=only)
    assert refused > 0


def _export_pattern(header, path) -> str:
    out = []
    for i, key in enumerate(path):
        if path[:i] == ("layers",):
            out.append(str(header["layers"][key].get("kind")))
        else:
            out.append("#" if isinstance(key, int) else key)
    return "/".join(out)


def _compile_export_fields(compiled, capsys, values, *, every_leaf):
    """densehw compile on the export with one header field changed (the CRC recomputed) per
    case: exit 2 with one line, or the very program of the clean export."""
    import shutil
    import struct
    import zlib

    d = compiled
    blob = (d / "m.dshw").read_bytes()
    magic, version, hlen = struct.unpack_from("<8sII", blob)
    header = json.loads(blob[16:16 + hlen])
    payload = blob[16 + hlen:-4]
    out = d / "fields.prog"
    refused = accepted = 0
    for _pat, path, value in _field_cases(header, values, every_leaf=every_leaf,
                                         pattern=_export_pattern):
        hb = json.dumps(_set(header, path, value), sort_keys=True).encode()
        body = hb + payload
        (d / "field.dshw").write_bytes(struct.pack("<8sII", magic, version, len(hb)) + body
                                       + struct.pack("<I", zlib.crc32(body)))
        shutil.rmtree(out, ignore_errors=True)
        label = f"export {'/'.join(map(str, path))} = {value!r}"
        rc, err = run_cli(["compile", str(d / "field.dshw"), "-o", str(out), "--config",
                           "default", "-q"], capsys)
        expect_clean(rc, err, label, command="compile")
        if rc == 2:
            refused += 1
            assert not out.exists(), f"{label}: partial program left behind"
        else:
            accepted += 1
            assert _same_program(out, d / "good.prog"), f"{label}: accepted, and the " \
                                                        f"program differs"
    return refused, accepted


def test_export_every_field(compiled, capsys):
    """One field of each kind of the export header (each layer kind's fields, each tensor
    record's, the graph's, the model's) set to -1, 2**62, 10**30, 1.5 and "x" with the
    CRC recomputed: exit 2 with one line, or the clean export's program."""
    refused, _ = _compile_export_fields(compiled, capsys, FIELD_VALUES, every_leaf=False)
    assert refused > 100


@pytest.mark.slow
def test_export_every_leaf_every_value(compiled, capsys):
    """Every leaf of the export header (about 190) set to 21 values (about 4 000 compiles)."""
    refused, _ = _compile_export_fields(compiled, capsys, FIELD_VALUES + MORE_VALUES,
                                        every_leaf=True)
    assert refused > 2500
