"""``densehw generate``: determinism, C header and Verilog header against ``contract.array``,
metadata JSON round trip, FuseSoC core structure, Verilator lint of the output, and one-line
errors for bad configurations (with no output left behind)."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from contract.array import ARRAY_VERSION, REGISTERS, ArrayConfig
from densehw.cli import main as cli_main
from densehw.cmd_generate import CONFIG_KEYS
from densehw.emit import FILES
from hw.gen import VERILATOR_LINT_WAIVERS

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SMALL = """\
in_fmt = "fp8_e5m2"
out_fmt = "fp16"
wbits = 4
rows = 2
cols = 3
depth = 32
e0_min = -5
e0_max = 9
pipeline = 1
"""
SMALL_CFG = ArrayConfig(in_fmt="fp8_e5m2", out_fmt="fp16", wbits=4, rows=2, cols=3, depth=32,
                        e0_min=-5, e0_max=9, pipeline=1)


def _generate(tmp_path, text=SMALL, name="out"):
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(text)
    out = tmp_path / name
    assert cli_main(["generate", "--config", str(cfg), "-o", str(out), "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return _generate(tmp_path_factory.mktemp("gen"))


# -- determinism ----------------------------------------------------------------------------------

def test_files_and_determinism(small, tmp_path):
    assert sorted(p.name for p in small.iterdir()) == sorted(FILES)
    # a fresh interpreter with another hash seed writes the same bytes
    cfg = tmp_path / "again.toml"
    cfg.write_text(SMALL)
    env = dict(os.environ, PYTHONHASHSEED="4321", PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "densehw", "generate", "--config", str(cfg), "-o",
                    str(tmp_path / "again"), "-q"], cwd=tmp_path, env=env, check=True)
    for name in FILES:
        assert (small / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    # nothing host- or time-dependent
    for name in FILES:
        text = (small / name).read_text()
        assert str(tmp_path) not in text and str(small) not in text
        assert "src =" not in text


def test_default_config_file_is_the_default():
    from densehw.cli import load_config

    assert load_config(CONFIGS / "default.toml") == ArrayConfig()
    for path in sorted(CONFIGS.glob("*.toml")):
        load_config(path)              # every example configuration is valid


# -- C header -------------------------------------------------------------------------------------

def _expected_macros(cfg):
    """Register offsets, fields and configuration values, computed here from the contract."""
    want = {"DENSEHW_ROWS": cfg.rows, "DENSEHW_COLS": cfg.cols, "DENSEHW_DEPTH": cfg.depth,
            "DENSEHW_WBITS": cfg.wbits, "DENSEHW_E0_MIN": cfg.e0_min,
            "DENSEHW_E0_MAX": cfg.e0_max, "DENSEHW_PIPELINE": cfg.pipeline,
            "DENSEHW_IN_WIDTH": cfg.in_fmt.width, "DENSEHW_OUT_WIDTH": cfg.out_fmt.width,
            "DENSEHW_ACC_WIDTH": cfg.acc_width, "DENSEHW_PE_ACC_WIDTH": cfg.pe_acc_width,
            "DENSEHW_ACT_TDATA_WIDTH": cfg.act_tdata_width,
            "DENSEHW_RES_TDATA_WIDTH": cfg.res_tdata_width,
            "DENSEHW_ACC_LSB_EXP": cfg.dot_config.acc_lsb_exp}
    for name, value in cfg.register_resets().items():
        want[f"DENSEHW_REG_{name}_VALUE"] = value
    for reg in REGISTERS:
        want[f"DENSEHW_REG_{reg.name}"] = reg.offset
        for f in reg.fields:
            want[f"DENSEHW_{reg.name}_{f.name}_LSB"] = f.lsb
            want[f"DENSEHW_{reg.name}_{f.name}_WIDTH"] = f.width
            want[f"DENSEHW_{reg.name}_{f.name}_MASK"] = ((1 << f.width) - 1) << f.lsb
    return want


def test_header_compiles_and_matches_contract(small, tmp_path):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not installed")
    header = small / "densehw_params.h"
    flags = ["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", f"-I{small}"]
    src = tmp_path / "syntax.c"
    src.write_text('#include "densehw_params.h"\n#include "densehw_params.h"\n'
                   "int main(void) { return 0; }\n")
    r = subprocess.run([gcc, "-fsyntax-only", *flags, str(src)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    # every value the C compiler sees equals the contract's
    want = _expected_macros(SMALL_CFG)
    n, k, m = 7, 29, 11
    want.update({"DENSEHW_CHANNEL_WORDS(29u)": 2 + -(-k * SMALL_CFG.wbits // 32)})
    framing = SMALL_CFG.framing(n, k, m)
    want.update({"DENSEHW_ACT_BEATS(7u, 29u, 11u)": framing["act_beats"],
                 "DENSEHW_WGT_WORDS(29u, 11u)": framing["wgt_words"],
                 "DENSEHW_RES_BEATS(7u, 11u)": framing["res_beats"],
                 "DENSEHW_M_TILES(11u)": framing["m_tiles"],
                 "DENSEHW_N_TILES(7u)": framing["n_tiles"]})
    lines = [f'  printf("%s %lld\\n", "{name}", (long long)({name}));' for name in want]
    prog = tmp_path / "values.c"
    prog.write_text('#include <stdio.h>\n#include "densehw_params.h"\nint main(void) {\n'
                    + "\n".join(lines) + '\n  printf("NAME %s\\n", DENSEHW_CONFIG_NAME);\n'
                    "  return 0;\n}\n")
    exe = tmp_path / "values"
    r = subprocess.run([gcc, *flags, "-o", str(exe), str(prog)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    got = {}
    for line in out.splitlines():
        key, value = line.rsplit(" ", 1)
        got[key] = value
    assert got.pop("NAME") == SMALL_CFG.name
    for name, value in want.items():
        assert int(got[name]) == value, f"{name}: header {got[name]}, contract {value}"
    assert header.read_text().count("#define") > len(REGISTERS) * 2


def _defines(text, pattern):
    return dict(re.findall(pattern, text, flags=re.M))


def _c_int(text):
    text = text.strip("()")
    return int(text.rstrip("u"), 0)


def _v_int(text):
    text = text.strip("()")
    if "'h" in text:
        return int(text.split("'h")[1], 16)
    return int(text)


def test_verilog_header_matches_c_header(small):
    c = _defines((small / "densehw_params.h").read_text(),
                 r"^#define (DENSEHW_\w+) ([^\s/]+)")
    v = _defines((small / "densehw_params.vh").read_text(), r"^`define (DENSEHW_\w+) (\S+)")
    numeric = {k: _c_int(val) for k, val in c.items() if not val.startswith('"')
               and not k.endswith("_H")}
    v.pop("DENSEHW_PARAMS_VH", None)
    assert set(v) == set(numeric)
    for key, value in numeric.items():
        assert _v_int(v[key]) == value, key


# -- JSON metadata --------------------------------------------------------------------------------

def _verilog_ports(text, top="densehw_array"):
    body = text.split(f"module {top}(", 1)[1]
    body = body.split("endmodule", 1)[0]
    ports = {}
    for direction, msb, name in re.findall(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?"
                                           r"(?:\[(\d+):0\]\s+)?(\w+)\s*;", body, flags=re.M):
        ports[name] = (direction[:-3] if direction == "output" else "in",
                       int(msb) + 1 if msb else 1)
    return ports


def test_metadata_round_trip(small):
    meta = json.loads((small / "densehw_array.json").read_text())
    assert ArrayConfig.from_dict(meta["config"]) == SMALL_CFG
    assert meta["config"] == SMALL_CFG.to_dict()
    assert meta["top"] == "densehw_array"
    assert [(r["name"], r["offset"], r["access"]) for r in meta["registers"]] == \
        [(r.name, r.offset, r.access) for r in REGISTERS]
    for jr, reg in zip(meta["registers"], REGISTERS, strict=True):
        assert [(f["name"], f["lsb"], f["width"]) for f in jr["fields"]] == \
            [(f.name, f.lsb, f.width) for f in reg.fields]
    assert sorted(meta["files"]) == sorted(FILES)
    # the port list equals the generated module's ports
    ports = _verilog_ports((small / "densehw_array.v").read_text())
    assert {p["name"]: (p["dir"], p["width"]) for p in meta["ports"]} == ports
    # no tool versions, dates or paths: only the formats' own versions
    assert meta["generator"] == {"name": "densehw", "array_version": 2, "pack_version": 1}


# -- FuseSoC core ---------------------------------------------------------------------------------

def _parse_yaml(text):
    """The YAML subset the core file uses: block mappings and sequences, flow sequences
    ``[a, b]``, flow mappings ``{k: v}``, plain and double-quoted scalars, ``#`` comments."""
    def scalar(s):
        s = s.strip()
        if s.startswith('"') and s.endswith('"'):
            return s[1:-1]
        if s.startswith("[") and s.endswith("]"):
            return [scalar(x) for x in s[1:-1].split(",") if x.strip()]
        if s.startswith("{") and s.endswith("}"):
            return dict((k.strip(), scalar(v)) for k, v in
                        (item.split(":", 1) for item in s[1:-1].split(",")))
        if s in ("true", "false"):
            return s == "true"
        return s

    lines = []
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        assert "\t" not in raw, f"tab in YAML: {raw!r}"
        lines.append((len(raw) - len(raw.lstrip(" ")), raw.strip()))

    def block(i, indent):
        if lines[i][1].startswith("- "):
            out = []
            while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
                item = lines[i][1][2:]
                if re.match(r"^[\w.-]+:\s", item) or item.endswith(":"):
                    key, val = item.split(":", 1)
                    out.append({key.strip(): scalar(val)})
                else:
                    out.append(scalar(item))
                i += 1
            return out, i
        out = {}
        while i < len(lines) and lines[i][0] == indent:
            key, _, val = lines[i][1].partition(":")
            assert key not in out, f"duplicate key {key}"
            i += 1
            if val.strip():
                out[key] = scalar(val)
            else:
                assert i < len(lines) and lines[i][0] > indent, f"empty value for {key}"
                out[key], i = block(i, lines[i][0])
        return out, i

    doc, end = block(0, 0)
    assert end == len(lines), f"unparsed YAML from line {lines[end]}"
    return doc


def test_fusesoc_core_structure(small):
    text = (small / "densehw.core").read_text()
    assert text.startswith("CAPI=2:\n")
    try:
        import yaml
        core = yaml.safe_load(text)
    except ImportError:                      # PyYAML is not a dependency: our subset parser
        core = _parse_yaml(text.split("\n", 1)[1])
    assert core["name"] == f"densehw:array:{SMALL_CFG.name}:{ARRAY_VERSION}.0.0"
    listed = []
    for fileset in core["filesets"].values():
        assert fileset["file_type"] in ("verilogSource", "cSource", "user")
        for entry in fileset["files"]:
            listed.append(next(iter(entry)) if isinstance(entry, dict) else entry)
    assert sorted(listed) == sorted(f for f in FILES if f != "densehw.core")
    for name in listed:
        assert (small / name).is_file(), name
    rtl = core["filesets"]["rtl"]["files"]
    assert {"densehw_params.vh": {"is_include_file": True}} in rtl
    assert core["targets"]["default"]["toplevel"] == "densehw_array"
    assert set(core["targets"]["default"]["filesets"]) == set(core["filesets"])
    lint = core["targets"]["lint"]
    assert lint["default_tool"] == "verilator"
    assert lint["tools"]["verilator"]["verilator_options"] == ["-Wall",
                                                               *VERILATOR_LINT_WAIVERS]


# -- lint -----------------------------------------------------------------------------------------

def _lint(out):
    verilator = shutil.which("verilator")
    if verilator is None:
        pytest.skip("verilator not installed")
    r = subprocess.run([verilator, "--lint-only", "-Wall", *VERILATOR_LINT_WAIVERS,
                        "--top-module", "densehw_array", "densehw_array.v"], cwd=out,
                       capture_output=True, text=True)
    assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[-4000:]


def test_output_lints_clean(small):
    _lint(small)


@pytest.mark.parametrize("name", ["default", "ice40_up5k", "fp8_b2_small"])
def test_example_configs_lint_clean(name, tmp_path):
    out = tmp_path / name
    assert cli_main(["generate", "--config", str(CONFIGS / f"{name}.toml"), "-o", str(out),
                     "-q"]) == 0
    _lint(out)


@pytest.mark.slow
def test_large_example_config_lints_clean(tmp_path):
    out = tmp_path / "big"
    assert cli_main(["generate", "--config", str(CONFIGS / "bf16_b4_8x8.toml"), "-o",
                     str(out), "-q"]) == 0
    _lint(out)


# -- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,message", [
    ("rows = 4\ncolumns = 4\n", "unknown key 'columns'"),
    ("wbits = 7\n", "wbits"),
    ('rows = "4"\n', "rows must be an integer, not '4'"),
    ("depth = 100\n", "depth must be a power of two"),
    ('in_fmt = "fp64"\n', "fp64"),
    ("e0_min = 3\ne0_max = 2\n", "e0_min (3) must not exceed e0_max (2)"),
    ('accumulator = "fast"\n', "accumulator must be 'exact', not 'fast'"),
    ("rows = \n", "invalid TOML"),
    ('in_fmt = {name = "x", exp_bits = 4, frac_bits = 3, bias = 1}\n', "unknown key 'bias'"),
])
def test_bad_config(tmp_path, capsys, text, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    rc = cli_main(["generate", "--config", str(cfg), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("densehw generate: error: "), err
    assert message in err, err
    assert "Traceback" not in err
    assert not out.exists()


def test_missing_config_and_bad_output(tmp_path, capsys):
    rc = cli_main(["generate", "--config", str(tmp_path / "nope.toml"), "-o",
                   str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "does not exist" in err and err.count("\n") == 1
    cfg = tmp_path / "ok.toml"
    cfg.write_text(SMALL)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = cli_main(["generate", "--config", str(cfg), "-o", str(blocker)])
    err = capsys.readouterr().err
    assert rc == 2 and "not a directory" in err and err.count("\n") == 1


def test_no_partial_output_on_failure(tmp_path, monkeypatch):
    """A failure while writing leaves neither final nor temporary files behind."""
    from densehw import cmd_generate

    calls = {"n": 0}
    real_replace = os.replace

    def failing_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(cmd_generate.os, "replace", failing_replace)
    out = tmp_path / "out"
    with pytest.raises(OSError):
        cmd_generate.write_outputs({"a.txt": "a", "b.txt": "b"}, out)
    assert list(out.iterdir()) == []


def test_config_keys_are_the_array_config_fields():
    import dataclasses

    assert CONFIG_KEYS == tuple(f.name for f in dataclasses.fields(ArrayConfig))
