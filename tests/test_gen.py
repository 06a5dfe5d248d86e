# amaranth: UnusedElaboratable=no
"""Verilog generation: Verilator lint, determinism, no multipliers, documented ports."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from contract import DotConfig
from hw.dot import ShiftDotUnit, in_layout
from hw.gen import VERILATOR_LINT_WAIVERS, generate_verilog, port_map, write_verilog

ROOT = pathlib.Path(__file__).resolve().parents[1]

LINT_CONFIGS = {
    "fp16_b3_l4_p2": DotConfig(wbits=3, lanes=4, pipeline=2),
    "fp8_b2_l1_p1": DotConfig(in_fmt="fp8_e5m2", wbits=2, lanes=1, pipeline=1),
    "bf16_b5_l3_p4": DotConfig(in_fmt="bf16", wbits=5, lanes=3, pipeline=4),
    "fp16_fp32_b3_l4_p3": DotConfig(out_fmt="fp32", pipeline=3),
}


def _verilator():
    exe = shutil.which("verilator")
    if exe is None:
        pytest.skip("verilator not installed (run `make setup`)")
    return exe


@pytest.mark.parametrize("name", list(LINT_CONFIGS))
def test_verilator_lint_clean(name, tmp_path):
    path = write_verilog(LINT_CONFIGS[name], tmp_path / "densehw_dot.v")
    result = subprocess.run(
        [_verilator(), "--lint-only", "-Wall", *VERILATOR_LINT_WAIVERS,
         "--top-module", "densehw_dot", path.name],
        cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and "%Warning" not in result.stderr, result.stderr[-4000:]


def test_lint_waivers_are_needed(tmp_path):
    """Every waiver is exercised by the generated code (none is left over)."""
    path = write_verilog(LINT_CONFIGS["fp16_b3_l4_p2"], tmp_path / "densehw_dot.v")
    result = subprocess.run([_verilator(), "--lint-only", "-Wall", "--top-module",
                             "densehw_dot", path.name], cwd=tmp_path, capture_output=True,
                            text=True)
    found = set(re.findall(r"%Warning-([A-Z]+)", result.stderr))
    assert found == {w.removeprefix("-Wno-") for w in VERILATOR_LINT_WAIVERS}


def test_deterministic():
    config = DotConfig(in_fmt="fp8_e5m2", wbits=4, lanes=3, pipeline=4)
    first = generate_verilog(config)
    assert generate_verilog(config) == first
    # a fresh interpreter with another hash seed produces the same bytes
    code = ("import sys; from contract import DotConfig; from hw.gen import generate_verilog; "
            "sys.stdout.write(generate_verilog(DotConfig(in_fmt='fp8_e5m2', wbits=4, lanes=3, "
            "pipeline=4)))")
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(ROOT))
    other = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert other == first
    assert "src =" not in first                     # no source locations
    assert generate_verilog(config, name="other") != first


def _strip_comments_and_attributes(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"\(\*.*?\*\)", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"@\s*\*", "@", text)             # `always @*` is no multiplication


@pytest.mark.parametrize("name", ["fp16_b3_l4_p2", "fp8_b2_l1_p1"])
def test_no_multiplier(name):
    from amaranth.back import rtlil

    config = LINT_CONFIGS[name]
    il = rtlil.convert(ShiftDotUnit(config=config), name="densehw_dot", emit_src=False)
    cells = set(re.findall(r"^\s*cell (\$\w+)", il, flags=re.M))
    assert cells and not cells & {"$mul", "$macc", "$div", "$mod", "$pow", "$divfloor",
                                  "$modfloor"}, cells
    verilog = _strip_comments_and_attributes(generate_verilog(config))
    assert "*" not in verilog


def _ports(verilog):
    """``{name: (direction, width)}`` of the top module."""
    top = verilog[verilog.index("module densehw_dot("):]
    top = top[:top.index("endmodule")]
    ports = {}
    for direction, msb, name in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);",
                                           top, flags=re.M):
        ports[name] = ("in" if direction == "input" else "out", int(msb or 0) + 1)
    return ports


@pytest.mark.parametrize("name", list(LINT_CONFIGS))
def test_port_names_and_map(name):
    config = LINT_CONFIGS[name]
    ports = _ports(generate_verilog(config))
    documented = port_map(config)
    assert ports == {n: (p["dir"], p["width"]) for n, p in documented.items()}
    fields = documented["i__payload"]["fields"]
    assert list(fields) == ["x", "w", "keep", "last", "has_bias", "relu", "e0", "bias"]
    offset = 0
    for field, entry in fields.items():
        assert entry["offset"] == offset, field
        offset += entry["width"]
    assert offset == documented["i__payload"]["width"] == in_layout(config).size
    assert fields["x"]["count"] == config.lanes
    assert fields["x"]["elem_width"] == config.in_fmt.width
    assert fields["w"]["elem_width"] == config.wbits
    assert fields["e0"] == {"offset": fields["e0"]["offset"], "width": config.e0_bits,
                            "signed": True}
    assert documented["o__payload"]["width"] == config.out_fmt.width


def test_write_verilog(tmp_path):
    config = DotConfig(lanes=1, pipeline=1)
    path = write_verilog(config, tmp_path / "unit.v", name="my_dot")
    text = path.read_text()
    assert text == generate_verilog(config, name="my_dot")
    assert "module my_dot(" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unit.v"]     # no temp file left
    with pytest.raises(OSError):
        write_verilog(config, tmp_path / "missing" / "unit.v")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unit.v"]


def test_bad_arguments():
    with pytest.raises(TypeError, match=r"config must be a DotConfig, not 'fp16'"):
        generate_verilog("fp16")
    with pytest.raises(TypeError, match=r"config must be a DotConfig, not 3"):
        port_map(3)
    with pytest.raises(ValueError, match=r"module name must be an identifier, not 'a b'"):
        generate_verilog(DotConfig(), name="a b")


@pytest.mark.parametrize("kwargs", [{}, {"in_fmt": "bf16", "wbits": 5, "rows": 2, "cols": 3}])
def test_array_has_no_multiplier(kwargs):
    """The whole array top (control, weight loader, finalizer) is multiplier-free too: no
    ``*`` that synthesis would map to a DSP block."""
    from amaranth.back import rtlil

    from contract.array import ArrayConfig
    from hw.array_top import ArrayTop

    il = rtlil.convert(ArrayTop(config=ArrayConfig(**kwargs)), name="densehw_array",
                       emit_src=False)
    cells = set(re.findall(r"^\s*cell (\$\w+)", il, flags=re.M))
    assert cells and not cells & {"$mul", "$macc", "$div", "$mod", "$pow", "$divfloor",
                                  "$modfloor"}, cells
