# amaranth: UnusedElaboratable=no
"""Text artefacts of a generated multi-branch array, all derived from one
:class:`contract.branch_array.BranchArrayConfig` (the counterpart of :mod:`densehw.emit`):

* ``densehw_branch_array.v``: the Verilog top (:func:`hw.branches.top.generate_branch_verilog`);
* ``densehw_branch_array.json``: :meth:`BranchArrayConfig.metadata` plus the port list and the
  framing rules;
* ``densehw_branch_params.h`` / ``.vh``: C and Verilog macros ``DENSEHW_BRANCH_*``
  (configuration, register offsets and fields, framing), rendered like the shift array's;
* ``densehw_branch.core``: a FuseSoC CAPI2 core listing the files above.

Deterministic: the same configuration gives the same bytes.
"""

from __future__ import annotations

import json

from contract.array import CSR_ADDR_WIDTH, CSR_DATA_WIDTH, MAX_NM
from contract.branch_array import (
    BRANCH_ARRAY_VERSION,
    BRANCH_ID_MAGIC,
    BRANCH_REGISTERS,
    BRANCH_STREAMS,
    BranchArrayConfig,
)
from contract.branches import BRANCH_PACK_VERSION
from contract.weights import WORD_BITS

from .emit import render_c_header, render_verilog_header

__all__ = ["BRANCH_FILES", "BRANCH_TOP", "generate_branch_files", "branch_metadata",
           "branch_macros", "branch_ports"]

BRANCH_TOP = "densehw_branch_array"
BRANCH_FILES = ("densehw_branch_array.v", "densehw_branch_array.json",
                "densehw_branch_params.h", "densehw_branch_params.vh", "densehw_branch.core")
PREFIX = "DENSEHW_BRANCH_"


def _check(config):
    if not isinstance(config, BranchArrayConfig):
        raise TypeError(f"config must be a BranchArrayConfig, not {config!r}")


def branch_ports(config) -> list[dict]:
    """Ports of the Verilog top in declaration order, from the Amaranth signature."""
    _check(config)
    from amaranth.lib.wiring import In

    from hw.branches.top import BranchArrayTop

    out = [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]
    top = BranchArrayTop(config=config)       # built only to read its signature
    for path, member, value in top.signature.flatten(top):
        out.append({"name": "__".join(path), "dir": "in" if member.flow == In else "out",
                    "width": len(value)})
    return out


def _framing_rules(config):
    header = ("word 0 the channel's raw scale_fmt weight scale, then " if config.float_path
              else "")
    return {
        "tile_order": "M tiles (cols channels each) outer, N tiles (rows activation rows) "
                      "inner",
        "weights": f"per M tile, per valid channel: {header}ceil(K*wbits/32) words of packed "
                   f"branch codes (branch packing v1); tlast on the last word of every channel",
        "activations": "per tile, ceil(K/lanes) beats (chunks); code l of row r at "
                       "tdata[(r*lanes + l)*abits +: abits]; lanes past K and rows past "
                       "rows_valid ignored; tlast on the last chunk",
        "results": "per tile, Y[n0+r, m0+c] for r < rows_valid (outer), c < cols_valid; exact "
                   "integers (two's complement, sign-extended) or with CTRL.SCALE out_fmt bits "
                   "(zero-extended); tlast on the last beat of every tile",
        "channel_header_words": config.channel_header_words,
        "chunks": "ceil(K / lanes)",
        "act_beats": "m_tiles * n_tiles * chunks",
        "wgt_words": f"M * ({config.channel_header_words} + ceil(K * wbits / 32))",
        "res_beats": "N * M",
    }


def branch_metadata(config) -> dict:
    """The JSON metadata: :meth:`BranchArrayConfig.metadata` plus ports, framing, files."""
    _check(config)
    meta = dict(config.metadata())
    meta["generator"] = {"name": "densehw", "array_version": BRANCH_ARRAY_VERSION,
                         "pack_version": BRANCH_PACK_VERSION}
    meta["ports"] = branch_ports(config)
    meta["stream_ports"] = dict(BRANCH_STREAMS)
    meta["framing"] = _framing_rules(config)
    meta["files"] = list(BRANCH_FILES)
    return meta


def branch_macros(config) -> list[tuple[str, int | str, str]]:
    """Every constant of the headers as ``(NAME, value, comment)`` (``NAME`` without the
    prefix); sections start with a ``("", "", title)`` entry."""
    _check(config)
    c = config
    out: list[tuple[str, int | str, str]] = [
        ("", "", "identification"),
        ("CONFIG_NAME", f'"{c.name}"', "configuration identifier"),
        ("ID_MAGIC", BRANCH_ID_MAGIC, "value of register ID"),
        ("ARRAY_VERSION", BRANCH_ARRAY_VERSION, "register map / framing version"),
        ("PACK_VERSION", BRANCH_PACK_VERSION, "branch packing version"),
        ("", "", "configuration"),
        ("WBITS", c.wbits, "weight branches k_w"),
        ("ABITS", c.abits, "activation branches k_a"),
        ("ROWS", c.rows, "PE rows: activation rows per tile"),
        ("COLS", c.cols, "PE columns: output channels per tile"),
        ("LANES", c.lanes, "k per chunk (activation beat)"),
        ("DEPTH", c.depth, "largest K"),
        ("PIPELINE", c.pipeline, "PE pipeline depth"),
        ("FLOAT_PATH", int(c.float_path), "1: CTRL.SCALE rounds scaled results to out_fmt"),
    ]
    if c.float_path:
        out += [("OUT_FMT_NAME", f'"{c.out_fmt.name}"', "output format of the float path"),
                ("OUT_EXP_BITS", c.out_fmt.exp_bits, ""),
                ("OUT_FRAC_BITS", c.out_fmt.frac_bits, ""),
                ("SCALE_FMT_NAME", f'"{c.scale_fmt.name}"', "format of the scales"),
                ("SCALE_EXP_BITS", c.scale_fmt.exp_bits, ""),
                ("SCALE_FRAC_BITS", c.scale_fmt.frac_bits, "")]
    out += [
        ("", "", "derived widths"),
        ("ACC_WIDTH", c.acc_width, "PE accumulator bits (unsigned)"),
        ("RESULT_WIDTH", c.result_width, "exact result bits (two's complement)"),
        ("ACT_TDATA_WIDTH", c.act_tdata_width, "s_axis_act tdata bits"),
        ("WGT_TDATA_WIDTH", c.wgt_tdata_width, "s_axis_wgt tdata bits"),
        ("RES_TDATA_WIDTH", c.res_tdata_width, "m_axis_res tdata bits"),
        ("CSR_ADDR_WIDTH", CSR_ADDR_WIDTH, "AXI4-Lite byte address bits"),
        ("CSR_DATA_WIDTH", CSR_DATA_WIDTH, "AXI4-Lite data bits"),
        ("MAX_NM", MAX_NM, "largest N and M of a layer"),
        ("", "", "stream framing"),
        ("WORD_BITS", WORD_BITS, "bits per weight-stream word"),
        ("CHANNEL_HEADER_WORDS", c.channel_header_words, "scale word (float path)"),
    ]
    resets = c.register_resets()
    out.append(("", "", "registers (AXI4-Lite byte offsets)"))
    for reg in BRANCH_REGISTERS:
        out.append((f"REG_{reg.name}", reg.offset, f"{reg.access}: {reg.doc}"))
        if reg.name in resets:
            out.append((f"REG_{reg.name}_VALUE", resets[reg.name], "value of this configuration"))
        for f in reg.fields:
            base = f"{reg.name}_{f.name}"
            out += [(f"{base}_LSB", f.lsb, f.doc), (f"{base}_WIDTH", f.width, ""),
                    (f"{base}_MASK", f.mask, "")]
    return out


def _intro(config, kind):
    name = {"c": "densehw_branch_params.h", "v": "densehw_branch_params.vh"}[kind]
    if kind == "c":
        return [f"/* {name}: parameters, register map and stream framing of the generated",
                f" * multi-branch array `{BRANCH_TOP}` (configuration {config.name}).",
                " * Generated by `densehw generate` from contract/branch_array.py; do not "
                "edit. */"]
    return [f"// {name}: parameters and register map of the generated multi-branch array",
            f"// `{BRANCH_TOP}` (configuration {config.name}).",
            "// Generated by `densehw generate` from contract/branch_array.py; do not edit."]


def _core(config) -> str:
    from hw.gen import VERILATOR_LINT_WAIVERS

    c = config
    path = f"{c.out_fmt.name} float path" if c.float_path else "integers only"
    opts = ", ".join(["-Wall", *VERILATOR_LINT_WAIVERS])
    return "\n".join([
        "CAPI=2:",
        f"# Generated by `densehw generate` (configuration {c.name}); do not edit.",
        f"name: densehw:branch_array:{c.name}:{BRANCH_ARRAY_VERSION}.0.0",
        f'description: "densehw multi-branch xnor-popcount array: w{c.wbits}a{c.abits}, '
        f'{c.rows}x{c.cols} PEs x {c.lanes} lanes, K <= {c.depth}, {path}"',
        "", "filesets:", "  rtl:", "    files:",
        "      - densehw_branch_params.vh: {is_include_file: true}",
        "      - densehw_branch_array.v", "    file_type: verilogSource",
        "  sw:", "    files:", "      - densehw_branch_params.h: {is_include_file: true}",
        "    file_type: cSource",
        "  metadata:", "    files:", "      - densehw_branch_array.json", "    file_type: user",
        "", "targets:", "  default:", "    filesets: [rtl, sw, metadata]",
        f"    toplevel: {BRANCH_TOP}", "  lint:", "    default_tool: verilator",
        "    filesets: [rtl]", f"    toplevel: {BRANCH_TOP}", "    tools:", "      verilator:",
        "        mode: lint-only", f"        verilator_options: [{opts}]", ""])


def generate_branch_files(config) -> dict[str, str]:
    """``{file name: text}`` for every output file, in :data:`BRANCH_FILES` order."""
    _check(config)
    from hw.branches.top import generate_branch_verilog

    p = PREFIX
    helpers = [
        f"#define {p}CODE_WORDS(k) (((k) * {p}WBITS + {p}WORD_BITS - 1u) / {p}WORD_BITS)",
        f"#define {p}CHANNEL_WORDS(k) ({p}CHANNEL_HEADER_WORDS + {p}CODE_WORDS(k))",
        f"#define {p}CHUNKS(k) (((k) + {p}LANES - 1u) / {p}LANES)",
        f"#define {p}M_TILES(m) (((m) + {p}COLS - 1u) / {p}COLS)",
        f"#define {p}N_TILES(n) (((n) + {p}ROWS - 1u) / {p}ROWS)",
        f"#define {p}ACT_BEATS(n, k, m) ({p}M_TILES(m) * {p}N_TILES(n) * {p}CHUNKS(k))",
        f"#define {p}WGT_WORDS(k, m) ((m) * {p}CHANNEL_WORDS(k))",
        f"#define {p}RES_BEATS(n, m) ((n) * (m))",
    ]
    entries = branch_macros(config)
    files = {
        "densehw_branch_array.v": generate_branch_verilog(config, name=BRANCH_TOP),
        "densehw_branch_array.json": json.dumps(branch_metadata(config), indent=2) + "\n",
        "densehw_branch_params.h": render_c_header(
            entries, intro=_intro(config, "c"), helpers=helpers, prefix=p,
            guard="DENSEHW_BRANCH_PARAMS_H"),
        "densehw_branch_params.vh": render_verilog_header(
            entries, intro=_intro(config, "v"), prefix=p, guard="DENSEHW_BRANCH_PARAMS_VH"),
        "densehw_branch.core": _core(config),
    }
    assert tuple(files) == BRANCH_FILES
    return files
