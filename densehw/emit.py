# amaranth: UnusedElaboratable=no
"""Text artefacts of a generated array, all derived from one :class:`contract.array.ArrayConfig`.

* ``densehw_array.v``: the Verilog top (:func:`hw.array_top.generate_array_verilog`);
* ``densehw_array.json``: :meth:`ArrayConfig.metadata` (configuration, derived widths, register
  map, stream framing) plus the port list of the top and the framing formulas;
* ``densehw_params.h``: C macros for drivers (configuration, register offsets and fields,
  framing), generated from the same data as the register block's gateware;
* ``densehw_params.vh``: the same constants as Verilog ``\\`define`` macros for SoC wrappers;
* ``densehw_driver.h``, ``densehw_driver.c``: the C driver library (``densehw/driver/``, the
  same text for every configuration: it takes every constant from ``densehw_params.h``);
* ``densehw.core``: a FuseSoC CAPI2 core file listing the files above.

Every function is pure and deterministic: the same configuration gives the same bytes (no
dates, paths, host names or tool versions in the output).
"""

from __future__ import annotations

import json
from pathlib import Path

from contract.array import (
    ARRAY_VERSION,
    CSR_DATA_WIDTH,
    ID_MAGIC,
    MAX_NM,
    REGISTERS,
    STREAMS,
    ArrayConfig,
)
from contract.weights import PACK_VERSION, WORD_BITS

__all__ = ["FILES", "DRIVER_FILES", "TOP", "generate_files", "driver_sources", "metadata",
           "metadata_json", "c_header", "verilog_header", "fusesoc_core", "ports", "macros"]

TOP = "densehw_array"
#: Output files in the order they are written.
FILES = ("densehw_array.v", "densehw_array.json", "densehw_params.h", "densehw_params.vh",
         "densehw_driver.h", "densehw_driver.c", "densehw.core")
#: The C driver library: copied verbatim beside the generated header it includes.
DRIVER_DIR = Path(__file__).resolve().parent / "driver"
DRIVER_FILES = ("densehw_driver.h", "densehw_driver.c")
CHANNEL_HEADER_WORDS = 2


def _check(config):
    if not isinstance(config, ArrayConfig):
        raise TypeError(f"config must be an ArrayConfig, not {config!r}")


def ports(config: ArrayConfig) -> list[dict]:
    """Ports of the Verilog top in declaration order: ``{"name", "dir", "width"}``, taken from
    the Amaranth signature of :class:`hw.array_top.ArrayTop` (so they cannot drift)."""
    _check(config)
    from amaranth.lib.wiring import In

    from hw.array_top import ArrayTop

    out = [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]
    top = ArrayTop(config=config)     # built only to read its signature (see line 1)
    for path, member, value in top.signature.flatten(top):
        out.append({"name": "__".join(path), "dir": "in" if member.flow == In else "out",
                    "width": len(value)})
    return out


def _framing_rules(config):
    return {
        "tile_order": "M tiles (cols channels each) outer, N tiles (rows activation rows) "
                      "inner",
        "weights": "per M tile, per valid channel: word 0 bias (raw out_fmt bits), word 1 e0 "
                   "(two's complement), then ceil(K*wbits/32) words of packed codes "
                   "(packing v1); tlast on the last word of every channel",
        "activations": "per tile, K beats; lane r = X[n0+r, k] at tdata[r*W +: W]; lanes past "
                       "rows_valid ignored; tlast on beat K-1",
        "results": "per tile, Y[n0+r, m0+c] for r < rows_valid (outer), c < cols_valid; raw "
                   "out_fmt bits in the low bits; tlast on the last beat of every tile",
        "channel_header_words": CHANNEL_HEADER_WORDS,
        "word_bits": WORD_BITS,
        "code_words": "ceil(K * wbits / 32)",
        "m_tiles": "ceil(M / cols)",
        "n_tiles": "ceil(N / rows)",
        "act_beats": "m_tiles * n_tiles * K",
        "wgt_words": "M * (2 + ceil(K * wbits / 32))",
        "res_beats": "N * M",
    }


def metadata(config: ArrayConfig) -> dict:
    """The JSON metadata: :meth:`ArrayConfig.metadata` plus ``ports``, ``framing`` and
    ``files``."""
    _check(config)
    meta = dict(config.metadata())
    meta["generator"] = {"name": "densehw", "array_version": ARRAY_VERSION,
                         "pack_version": PACK_VERSION}
    meta["ports"] = ports(config)
    meta["stream_ports"] = dict(STREAMS)
    meta["framing"] = _framing_rules(config)
    meta["files"] = list(FILES)
    return meta


def metadata_json(config: ArrayConfig) -> str:
    return json.dumps(metadata(config), indent=2) + "\n"


def _c_ident(name: str) -> str:
    return name.upper()


def macros(config: ArrayConfig) -> list[tuple[str, int | str, str]]:
    """Every constant of the headers as ``(NAME, value, comment)`` (``NAME`` without the
    ``DENSEHW_`` prefix; ``value`` an int or a string). Sections start with a ``("", "",
    title)`` entry."""
    _check(config)
    c = config
    d = c.to_dict()
    out: list[tuple[str, int | str, str]] = [("", "", "identification")]
    out += [
        ("CONFIG_NAME", f'"{c.name}"', "configuration identifier"),
        ("ID_MAGIC", ID_MAGIC, "value of register ID"),
        ("ARRAY_VERSION", ARRAY_VERSION, "register map / framing version"),
        ("PACK_VERSION", PACK_VERSION, "weight packing version"),
        ("", "", "configuration"),
        ("IN_FMT_NAME", f'"{c.in_fmt.name}"', "activation format"),
        ("IN_EXP_BITS", c.in_fmt.exp_bits, ""),
        ("IN_FRAC_BITS", c.in_fmt.frac_bits, ""),
        ("IN_WIDTH", c.in_fmt.width, "bits per activation"),
        ("OUT_FMT_NAME", f'"{c.out_fmt.name}"', "output and bias format"),
        ("OUT_EXP_BITS", c.out_fmt.exp_bits, ""),
        ("OUT_FRAC_BITS", c.out_fmt.frac_bits, ""),
        ("OUT_WIDTH", c.out_fmt.width, "bits per result"),
        ("WBITS", c.wbits, "weight code width B"),
        ("ROWS", c.rows, "PE rows: activation rows per tile"),
        ("COLS", c.cols, "PE columns: output channels per tile"),
        ("DEPTH", c.depth, "weight store depth per column and bank: largest K"),
        ("E0_MIN", c.e0_min, "smallest accepted weight offset"),
        ("E0_MAX", c.e0_max, "largest accepted weight offset"),
        ("PIPELINE", c.pipeline, "PE pipeline depth"),
        ("ACCUMULATOR_EXACT", 1, "accumulator policy: exact"),
        ("FLOORPLAN_SPREAD", c.spread, "floorplan: 1 spread (large devices), 0 compact"),
        ("", "", "derived widths"),
        ("PE_ACC_WIDTH", d["pe_acc_width"], "PE accumulator bits (products only)"),
        ("ACC_WIDTH", d["acc_width"], "finalizer accumulator bits (products and bias)"),
        ("ACC_LSB_EXP", d["acc_lsb_exp"], "finalizer accumulator LSB weight: 2**(e0 + this)"),
        ("E0_BITS", d["e0_bits"], "bits of a weight offset inside the array"),
        ("ACT_TDATA_WIDTH", c.act_tdata_width, "s_axis_act tdata bits"),
        ("WGT_TDATA_WIDTH", c.wgt_tdata_width, "s_axis_wgt tdata bits"),
        ("RES_TDATA_WIDTH", c.res_tdata_width, "m_axis_res tdata bits"),
        ("CSR_ADDR_WIDTH", c.csr_addr_width, "AXI4-Lite byte address bits"),
        ("CSR_DATA_WIDTH", CSR_DATA_WIDTH, "AXI4-Lite data bits"),
        ("MAX_NM", MAX_NM, "largest N and M of a layer"),
        ("", "", "stream framing"),
        ("WORD_BITS", WORD_BITS, "bits per weight-stream word"),
        ("CHANNEL_HEADER_WORDS", CHANNEL_HEADER_WORDS, "bias word, e0 word"),
        ("ACT_LANES", c.rows, "activation lanes per beat (lane r at tdata[r*IN_WIDTH])"),
    ]
    resets = c.register_resets()
    out.append(("", "", "registers (AXI4-Lite byte offsets)"))
    for reg in REGISTERS:
        name = _c_ident(reg.name)
        out.append((f"REG_{name}", reg.offset, f"{reg.access}: {reg.doc}"))
        if reg.name in resets:
            out.append((f"REG_{name}_VALUE", resets[reg.name], "value of this configuration"))
        for f in reg.fields:
            base = f"{name}_{_c_ident(f.name)}"
            sig = ", signed" if f.signed else ""
            out.append((f"{base}_LSB", f.lsb, f"{f.doc}{sig}"))
            out.append((f"{base}_WIDTH", f.width, ""))
            out.append((f"{base}_MASK", f.mask, ""))
    return out


#: Constants that are signed quantities (plain ``int`` in C, no ``u`` suffix).
SIGNED = frozenset({"E0_MIN", "E0_MAX", "ACC_LSB_EXP"})


def _is_hex(name: str) -> bool:
    return (name.startswith("REG_") or name.endswith(("_MASK", "_VALUE"))
            or name == "ID_MAGIC" or name == "MAX_NM")


def _c_value(name: str, value) -> str:
    if isinstance(value, str):
        return value
    if name in SIGNED:
        return f"({value})" if value < 0 else str(value)
    if name.startswith("REG_") and not name.endswith("_VALUE"):
        return f"0x{value:02X}u"
    if _is_hex(name):
        return f"0x{value:08X}u"
    return f"{value}u"


def _v_value(name: str, value: int) -> str:
    if value < 0:
        return f"({value})"
    if name.startswith("REG_") and not name.endswith("_VALUE"):
        return f"8'h{value:02X}"
    if _is_hex(name):
        return f"32'h{value:08X}"
    return str(value)


def _c_comment(text: str) -> str:
    return text.replace("*/", "* /")


def render_c_header(entries, *, intro, helpers, prefix="DENSEHW_",
                    guard="DENSEHW_PARAMS_H") -> str:
    """C99 macros ``<prefix><NAME>`` of ``entries`` (:func:`macros` form; unsigned constants
    carry a ``u`` suffix, signed ones are parenthesised) between the comment lines ``intro`` and
    the helper macro lines ``helpers``, inside an include guard."""
    lines = [*intro, f"#ifndef {guard}", f"#define {guard}"]
    for name, value, comment in entries:
        if not name:
            lines += ["", f"/* -- {comment} -- */"]
            continue
        text = f"#define {prefix}{name} {_c_value(name, value)}"
        if comment:
            text = f"{text:<48} /* {_c_comment(comment)} */"
        lines.append(text)
    lines += ["", "/* -- framing helpers (arguments: layer shape; unsigned arithmetic) -- */",
              *helpers, "", f"#endif /* {guard} */", ""]
    return "\n".join(lines)


def render_verilog_header(entries, *, intro, prefix="DENSEHW_",
                          guard="DENSEHW_PARAMS_VH") -> str:
    """The numeric constants of ``entries`` as Verilog macros (strings are omitted)."""
    lines = [*intro, f"`ifndef {guard}", f"`define {guard}"]
    for name, value, comment in entries:
        if not name:
            lines += ["", f"// -- {comment}"]
            continue
        if isinstance(value, str):
            continue
        text = f"`define {prefix}{name} {_v_value(name, value)}"
        if comment:
            text = f"{text:<48} // {comment}"
        lines.append(text)
    lines += ["", f"`endif // {guard}", ""]
    return "\n".join(lines)


def c_header(config: ArrayConfig) -> str:
    """``densehw_params.h``: C99 macros (unsigned constants carry a ``u`` suffix; signed ones
    are parenthesised) and framing helper macros."""
    _check(config)
    intro = [
        "/* densehw_params.h: parameters, register map and stream framing of the generated",
        f" * PE array `{TOP}` (configuration {config.name}).",
        " * Generated by `densehw generate` from contract/array.py; do not edit. */",
    ]
    helpers = [
        "#define DENSEHW_CODE_WORDS(k) (((k) * DENSEHW_WBITS + DENSEHW_WORD_BITS - 1u) / "
        "DENSEHW_WORD_BITS)",
        "#define DENSEHW_CHANNEL_WORDS(k) (DENSEHW_CHANNEL_HEADER_WORDS + DENSEHW_CODE_WORDS(k))",
        "#define DENSEHW_M_TILES(m) (((m) + DENSEHW_COLS - 1u) / DENSEHW_COLS)",
        "#define DENSEHW_N_TILES(n) (((n) + DENSEHW_ROWS - 1u) / DENSEHW_ROWS)",
        "#define DENSEHW_ACT_BEATS(n, k, m) (DENSEHW_M_TILES(m) * DENSEHW_N_TILES(n) * (k))",
        "#define DENSEHW_WGT_WORDS(k, m) ((m) * DENSEHW_CHANNEL_WORDS(k))",
        "#define DENSEHW_RES_BEATS(n, m) ((n) * (m))",
    ]
    return render_c_header(macros(config), intro=intro, helpers=helpers)


def verilog_header(config: ArrayConfig) -> str:
    """``densehw_params.vh``: the numeric constants of :func:`macros` as Verilog macros
    (``\\`DENSEHW_ROWS`` ...); strings are omitted."""
    _check(config)
    return render_verilog_header(macros(config), intro=[
        "// densehw_params.vh: parameters and register map of the generated PE array",
        f"// `{TOP}` (configuration {config.name}).",
        "// Generated by `densehw generate` from contract/array.py; do not edit.",
    ])


def fusesoc_core(config: ArrayConfig) -> str:
    """``densehw.core``: FuseSoC CAPI2 core with the RTL, the headers and the metadata, a
    ``default`` target and a Verilator ``lint`` target."""
    _check(config)
    from hw.gen import VERILATOR_LINT_WAIVERS

    c = config
    out_fmt = "" if c.out_fmt == c.in_fmt else f", {c.out_fmt.name} out"
    desc = (f"DenseShift shift-add PE array: {c.in_fmt.name} activations{out_fmt}, "
            f"B={c.wbits}, {c.rows}x{c.cols} PEs, K <= {c.depth}")
    opts = ", ".join(["-Wall", *VERILATOR_LINT_WAIVERS])
    return "\n".join([
        "CAPI=2:",
        f"# Generated by `densehw generate` (configuration {c.name}); do not edit.",
        f"name: densehw:array:{c.name}:{ARRAY_VERSION}.0.0",
        f'description: "{desc}"',
        "",
        "filesets:",
        "  rtl:",
        "    files:",
        "      - densehw_params.vh: {is_include_file: true}",
        "      - densehw_array.v",
        "    file_type: verilogSource",
        "  sw:",
        "    files:",
        "      - densehw_params.h: {is_include_file: true}",
        "      - densehw_driver.h: {is_include_file: true}",
        "      - densehw_driver.c",
        "    file_type: cSource",
        "  metadata:",
        "    files:",
        "      - densehw_array.json",
        "    file_type: user",
        "",
        "targets:",
        "  default:",
        "    filesets: [rtl, sw, metadata]",
        f"    toplevel: {TOP}",
        "  lint:",
        "    default_tool: verilator",
        "    filesets: [rtl]",
        f"    toplevel: {TOP}",
        "    tools:",
        "      verilator:",
        "        mode: lint-only",
        f"        verilator_options: [{opts}]",
        "",
    ])


def driver_sources() -> dict[str, str]:
    """``{file name: text}`` of the C driver library (:data:`DRIVER_FILES`)."""
    return {name: (DRIVER_DIR / name).read_text(encoding="utf-8") for name in DRIVER_FILES}


def generate_files(config: ArrayConfig) -> dict[str, str]:
    """``{file name: text}`` for every output file, in :data:`FILES` order."""
    _check(config)
    from hw.array_top import generate_array_verilog

    files = {
        "densehw_array.v": generate_array_verilog(config, name=TOP),
        "densehw_array.json": metadata_json(config),
        "densehw_params.h": c_header(config),
        "densehw_params.vh": verilog_header(config),
        **driver_sources(),
        "densehw.core": fusesoc_core(config),
    }
    assert tuple(files) == FILES
    return files
