"""``soc_data.c`` for the SoC firmware (``soc/firmware/soc_data.h`` declares it): the GEMM checks
and error cases, a compiled program with its test images, and the golden model's bits of every
output the firmware compares.

* GEMM checks (:func:`gemm_items`): ragged shapes, fp16 (any ``in_fmt``) with bias, ReLU,
  per-channel ``e0``, ``K`` up to the depth, layers full of specials (inf, NaN, -0, subnormals,
  extremes); bad shapes written to the registers (``K`` past the depth, ``N = 0``, ``E0`` out
  of range) with the ``ERROR`` bits the array must set; interrupt and polling waits.
* Program (:func:`program_tables`): every step of a :class:`sw.program.Program` as a table the
  C interpreter (``soc/firmware/dhw_program.c``) runs, the images, and the bits of every value
  of :func:`sw.runtime.run_program` on the golden backend.
"""

from __future__ import annotations

import numpy as np

from contract.array import ERROR, ArrayConfig, channel_words
from contract.weights import unpack_codes
from sim.payload import random_floats

__all__ = ["gemm_items", "program_tables", "write_soc_data", "buffer_words"]

OPS = {"input": "OP_INPUT", "convert": "OP_CONVERT", "fp_linear": "OP_FP_LINEAR",
       "fp_conv1d": "OP_FP_CONV", "fp_conv2d": "OP_FP_CONV", "affine": "OP_AFFINE",
       "relu": "OP_RELU", "add": "OP_ADD", "maxpool1d": "OP_MAXPOOL",
       "maxpool2d": "OP_MAXPOOL", "avgpool": "OP_AVGPOOL", "flatten": "OP_FLATTEN",
       "linear": "OP_ARRAY_LINEAR", "conv1d": "OP_ARRAY_CONV", "conv2d": "OP_ARRAY_CONV"}
WAIT = {"poll": "DENSEHW_WAIT_POLL", "irq": "DENSEHW_WAIT_IRQ"}
SEED = 23


# -- GEMM checks --------------------------------------------------------------------------------

def _moderate(rng, fmt, shape):
    """Values within a few binades of 1: sums that neither overflow nor vanish."""
    e = rng.integers(fmt.bias - 3, fmt.bias + 3, shape)
    return ((rng.integers(0, 2, shape) << (fmt.width - 1)) | (e << fmt.frac_bits)
            | rng.integers(0, 1 << fmt.frac_bits, shape)).astype(np.int64)


def gemm_items(cfg: ArrayConfig, *, seed: int = SEED) -> list[dict]:
    """The GEMM layers and error cases, in firmware order, with golden outputs."""
    from sw.golden import gemm_golden

    rng = np.random.default_rng(seed)
    r, c, depth = cfg.rows, cfg.cols, cfg.depth
    k_deep = min(depth, 2048)
    specs = [
        # name, n, k, m, relu, bias, per_channel, specials, wait
        ("ragged_bias_relu", 3 * r + 1, min(depth, 37), 2 * c + 1, True, True, False, 0.0,
         "irq"),
        ("k_depth_per_channel_e0", r + 2, k_deep, c + 1, False, True, True, 0.0, "poll"),
        ("bad_k", None, depth + 1, None, None, None, None, None, "irq"),
        ("specials_bias", 2 * r + 3, min(depth, 29), c + 3, False, True, False, 0.3, "irq"),
        ("bad_n", 0, 4, 1, None, None, None, None, "poll"),
        ("bad_e0", 1, 4, 1, None, None, None, None, "irq"),
        ("specials_relu_per_channel", 5, min(depth, 16), 2 * c - 1 or 1, True, True, True, 0.4,
         "poll"),
        ("no_bias_after_errors", r + 1, min(depth, 11), c, True, False, False, 0.05, "irq"),
    ]
    items = []
    for name, n, k, m, relu, bias, pc, p_special, wait in specs:
        if name.startswith("bad_"):
            e0 = cfg.e0_max + 1 if name == "bad_e0" else 0
            n = 1 if n is None else n
            m = 1 if m is None else m
            bit = {"bad_k": "K_RANGE", "bad_n": "SHAPE", "bad_e0": "E0_RANGE"}[name]
            items.append({"name": name, "kind": "bad", "n": n, "k": k, "m": m, "e0": e0,
                          "options": 0, "wait": wait, "want_error": ERROR[bit]})
            continue
        if p_special:
            x = random_floats(rng, cfg.in_fmt, (n, k), p_special)
        else:
            x = _moderate(rng, cfg.in_fmt, (n, k))
        codes = rng.integers(0, 1 << cfg.wbits, (m, k)).astype(np.int64)
        e0 = (rng.integers(cfg.e0_min, cfg.e0_max + 1, m).astype(np.int64) if pc
              else int(rng.integers(cfg.e0_min, cfg.e0_max + 1)))
        b = None
        if bias:
            b = (random_floats(rng, cfg.out_fmt, (m,), p_special) if p_special
                 else _moderate(rng, cfg.out_fmt, (m,)))
        want = gemm_golden(x, codes, e0, in_fmt=cfg.in_fmt, wbits=cfg.wbits,
                           out_fmt=cfg.out_fmt, bias_bits=b, relu=relu,
                           config=cfg.dot_config).numpy()
        items.append({"name": name, "kind": "gemm", "n": n, "k": k, "m": m,
                      "e0": 0 if pc else e0, "e0s": e0 if pc else None, "x": x,
                      "codes": codes, "bias": b, "relu": relu, "wait": wait,
                      "want": np.asarray(want, dtype=np.int64), "specials": p_special > 0,
                      "options": ("RELU " if relu else "") + ("BIAS_EN " if bias else "")
                      + ("E0_PER_CHANNEL" if pc else "")})
    return items


# -- program ------------------------------------------------------------------------------------

def _shape3(shape):
    shape = list(shape)
    if len(shape) == 3:
        return shape
    if len(shape) == 2:
        return [shape[0], 1, shape[1]]
    if len(shape) == 1:
        return [shape[0], 1, 1]
    raise ValueError(f"value shape {shape} is not supported by the firmware")


def _geometry(step):
    def pair(key, fill):
        v = list(step.get(key) or [])
        return v if len(v) == 2 else [fill, *v] if len(v) == 1 else [fill, fill]

    kh, kw = pair("kernel", 1)
    sh, sw = pair("stride", 1)
    ph, pw = pair("padding", 0)
    dh, dw = pair("dilation", 1) if step.get("dilation") is not None else (1, 1)
    return kh, kw, sh, sw, ph, pw, dh, dw


def program_tables(program, x, labels, *, waits=("irq", "poll")):
    """Steps, values and expected bits of ``program`` on float32 images ``x`` (golden)."""
    import torch

    from sw.runtime import run_program

    res = run_program(program, x, backend="golden", keep_values=True, batch_size=len(x))
    images = len(x)
    values, index = [], {}
    for name, spec in program.values.items():
        index[name] = len(values)
        fmt = program.fmt(name)
        c, h, w = _shape3(spec["shape"])
        want = res.values[name].reshape(images, -1).to(torch.int64).numpy()
        values.append({"name": name, "size": c * h * w, "c": c, "h": h, "w": w,
                       "exp_bits": fmt.exp_bits, "frac_bits": fmt.frac_bits, "want": want})
    steps = []
    n_array = 0
    for step in program.steps:
        if step["op"] not in OPS:
            raise ValueError(f"step {step['id']}: op {step['op']!r} has no firmware version")
        ins = [index[v] for v in step["inputs"]] + [-1, -1]
        st = {"name": f"{step['id']}_{step['op']}", "op": OPS[step["op"]],
              "where_array": step["where"] == "array", "in0": ins[0], "in1": ins[1],
              "out": index[step["output"]], "geometry": _geometry(step),
              "relu": int(bool(step.get("relu")))}
        if st["where_array"]:
            k, m = step["k"], step["m"]
            codes = unpack_codes(program.blob(step["weights"]), k, step["wbits"])
            e0 = step["e0"]
            bias = program.blob(step["bias"])
            out = res.values[step["output"]].to(torch.int64).numpy()
            want_y = out.reshape(images, m, -1).transpose(0, 2, 1).reshape(-1, m)
            st.update({"n": step["n"], "k": k, "m": m, "codes": np.asarray(codes),
                       "e0": e0 if isinstance(e0, int) else 0,
                       "e0s": None if isinstance(e0, int) else np.asarray(e0),
                       "abias": None if bias is None else np.asarray(bias, dtype=np.int64),
                       "wait": waits[n_array % len(waits)], "want_y": want_y})
            n_array += 1
        elif step["op"] in ("fp_linear", "fp_conv1d", "fp_conv2d"):
            w = np.asarray(program.blob(step["weights"]), dtype=np.float64)
            w = w.reshape(w.shape[0], -1)
            st.update({"m": w.shape[0], "k": w.shape[1], "w": w})
        for key in ("bias", "scale", "shift"):
            if not st["where_array"] and step.get(key) is not None:
                st[key] = np.asarray(program.blob(step[key]), dtype=np.float64).ravel()
        steps.append(st)
    preds = res.predictions.numpy()
    return {"values": values, "steps": steps, "images": images,
            "input_bits": x.numpy().astype(np.float32).view(np.uint32).reshape(images, -1),
            "labels": np.asarray(labels), "preds": preds,
            "output": index[program.output], "golden_accuracy": float(
                (preds == np.asarray(labels)).mean())}


# -- buffers ------------------------------------------------------------------------------------

def buffer_words(cfg: ArrayConfig, shapes) -> dict:
    """Sizes of the firmware's buffers for GEMMs of ``shapes`` ``(n, k, m)``."""
    beat = -(-cfg.act_tdata_width // 32)
    out = {"wgt": 1, "act": 1, "res": 1, "x": 1, "y": 1}
    for n, k, m in shapes:
        f = cfg.framing(n, k, m)
        out["wgt"] = max(out["wgt"], m * channel_words(k, cfg.wbits))
        out["act"] = max(out["act"], f["act_beats"] * beat)
        out["res"] = max(out["res"], n * m)
        out["x"] = max(out["x"], n * k)
        out["y"] = max(out["y"], n * m)
    return out


# -- C text -------------------------------------------------------------------------------------

def _array(ctype, name, values, *, static=True, fmt="{}"):
    vals = [fmt.format(int(v)) for v in np.asarray(values).ravel()] or ["0"]
    lines = [", ".join(vals[i:i + 16]) for i in range(0, len(vals), 16)]
    body = ",\n    ".join(lines)
    return f"{'static ' if static else ''}const {ctype} {name}[] = {{\n    {body}\n}};\n"


def _u64(values):
    return np.asarray(values, dtype=np.float64).view(np.uint64)


def write_soc_data(path, cfg: ArrayConfig, items, tables) -> dict:
    """Write ``soc_data.c``; return the buffer sizes it declares."""
    out = ["/* soc_data.c: generated by soc/firmware_data.py; do not edit. */",
           '#include "soc_data.h"', ""]
    shapes = []
    # GEMM items
    rows = []
    for i, it in enumerate(items):
        p = f"it{i}"
        if it["kind"] == "bad":
            rows.append(f'    {{"{it["name"]}", SOC_ITEM_BAD, {WAIT[it["wait"]]}, '
                        f'{{{it["n"]}u, {it["k"]}u, {it["m"]}u, {it["e0"]}, 0u}}, NULL, NULL, '
                        f'NULL, NULL, NULL, {it["want_error"]}u}},')
            continue
        shapes.append((it["n"], it["k"], it["m"]))
        out.append(_array("densehw_in_t", f"{p}_x", it["x"]))
        out.append(_array("uint8_t", f"{p}_codes", it["codes"]))
        out.append(_array("densehw_out_t", f"{p}_want", it["want"]))
        e0s = "NULL"
        if it["e0s"] is not None:
            out.append(_array("int32_t", f"{p}_e0s", it["e0s"]))
            e0s = f"{p}_e0s"
        bias = "NULL"
        if it["bias"] is not None:
            out.append(_array("densehw_out_t", f"{p}_bias", it["bias"]))
            bias = f"{p}_bias"
        opts = " | ".join(f"DENSEHW_CTRL_{o}_MASK" for o in it["options"].split()) or "0u"
        rows.append(f'    {{"{it["name"]}", SOC_ITEM_GEMM, {WAIT[it["wait"]]}, '
                    f'{{{it["n"]}u, {it["k"]}u, {it["m"]}u, {it["e0"]}, {opts}}}, {p}_x, '
                    f'{p}_codes, {e0s}, {bias}, {p}_want, 0u}},')
    out.append("const soc_item soc_items[] = {\n" + "\n".join(rows) + "\n};")
    out.append(f"const uint32_t soc_n_items = {len(items)}u;\n")

    # program
    images = tables["images"]
    vrows = []
    for i, v in enumerate(tables["values"]):
        out.append(f"static uint32_t v{i}_buf[{images * v['size']}];")
        out.append(_array("uint32_t", f"v{i}_want", v["want"], fmt="{}u"))
        vrows.append(f"    {{{v['size']}u, {v['c']}u, {v['h']}u, {v['w']}u, "
                     f"{{{v['exp_bits']}u, {v['frac_bits']}u}}, v{i}_buf, v{i}_want}},"
                     f"  /* {v['name']} */")
    out.append("soc_value soc_values[] = {\n" + "\n".join(vrows) + "\n};")
    srows = []
    for i, st in enumerate(tables["steps"]):
        p = f"s{i}"
        refs = {}
        for key in ("w", "bias", "scale", "shift"):
            refs[key] = "NULL"
            if st.get(key) is not None:
                out.append(_array("uint64_t", f"{p}_{key}", _u64(st[key]), fmt="{}ull"))
                refs[key] = f"{p}_{key}"
        codes = e0s = abias = want_y = "NULL"
        if st["where_array"]:
            shapes.append((images * st["n"], st["k"], st["m"]))
            out.append(_array("uint8_t", f"{p}_codes", st["codes"]))
            codes = f"{p}_codes"
            if st["e0s"] is not None:
                out.append(_array("int32_t", f"{p}_e0s", st["e0s"]))
                e0s = f"{p}_e0s"
            if st["abias"] is not None:
                out.append(_array("densehw_out_t", f"{p}_abias", st["abias"]))
                abias = f"{p}_abias"
            out.append(_array("densehw_out_t", f"{p}_want_y", st["want_y"]))
            want_y = f"{p}_want_y"
        geo = ", ".join(f"{g}u" for g in st["geometry"])
        srows.append(
            f'    {{"{st["name"]}", {st["op"]}, {int(st["where_array"])}u, {st["in0"]}, '
            f'{st["in1"]}, {st["out"]}, {geo}, {st.get("n", 0)}u, {st.get("k", 0)}u, '
            f'{st.get("m", 0)}u, {st["relu"]}u, {refs["w"]}, {refs["bias"]}, {refs["scale"]}, '
            f'{refs["shift"]}, {st.get("e0", 0)}, {e0s}, {codes}, {abias}, '
            f'{WAIT[st.get("wait", "poll")]}, {want_y}}},')
    out.append("const soc_step soc_steps[] = {\n" + "\n".join(srows) + "\n};")
    out.append(f"const uint32_t soc_n_steps = {len(tables['steps'])}u;")
    out.append(f"const uint32_t soc_images = {images}u;")
    out.append(f"const uint32_t soc_output_value = {tables['output']}u;")
    out.append(f"const uint32_t soc_input_size = {tables['input_bits'].shape[1]}u;")
    out.append(_array("uint32_t", "soc_input_bits", tables["input_bits"], static=False,
                      fmt="{}u"))
    out.append(_array("uint8_t", "soc_labels", tables["labels"], static=False))
    out.append(_array("uint8_t", "soc_want_pred", tables["preds"], static=False))
    sizes = buffer_words(cfg, shapes)
    out += [f"uint32_t soc_wgt_buf[{sizes['wgt']}];", f"uint32_t soc_act_buf[{sizes['act']}];",
            f"uint32_t soc_res_buf[{sizes['res']}];", f"densehw_in_t soc_x_buf[{sizes['x']}];",
            f"densehw_out_t soc_y_buf[{sizes['y']}];", ""]
    from contract.files import write_atomic

    write_atomic(path, "\n".join(out))
    return sizes

