"""``densehw run PROGRAM_DIR (--data digits|speech | --inputs X.npy) [--out Y.npy] --backend
NAME``: run a compiled program on a bundled test split or on the user's own inputs and report
accuracy (with labels), agreement with the PyTorch model, per-layer MACs, cycles, utilization,
bit-exactness against the golden model, and projected images/s on the default boards.

``--inputs X.npy``: float32 or float16 ``(N, *input_shape)``; ``--out Y.npy``: float32
``(N, *output_shape)``, the program's outputs (written atomically; nothing is left behind on an
error).

Backends: any backend of the registry :mod:`sw.backends` (``golden``, built in; ``icarus`` and
``verilator`` from ``sim.backends``; ``board`` from ``boards.board_backend``; the modules of
``densehw.cli.BACKEND_PROVIDERS`` register theirs when imported), with its options (``--stall``,
``--port`` ...). A registered backend that cannot run here (simulator not installed, board not
answering) exits with code 3 and one line on stderr, so scripts can tell "not available" from
"wrong"; an unknown name is an ordinary error (code 2). A run with bit mismatches exits 1.

The JSON report (``--report``) holds ``samples``, ``accuracy``, ``torch_accuracy``,
``agreement_with_torch``, ``outputs_vs_torch``, ``mismatches`` (array-step output patterns that
differ from the golden model; 0 for golden), ``cycles``, ``mac_utilization``, ``projection``
(board reports under ``--reports-dir``), ``boards`` (the default UP5K, ECP5-25F and ECP5-85F
arrays), ``rounding`` (the host steps and their rounding) and the list of ``ops``.
"""

from __future__ import annotations

import glob
import json
import sys
import time
from pathlib import Path

from .cli import EXIT_UNAVAILABLE, UserError, add_backend_arguments, backend_factory, load_config

HELP = "run a compiled program on a data set (golden model, simulated RTL or a board)"

ROOT = Path(__file__).resolve().parents[1]
__all__ = ["EXIT_UNAVAILABLE", "HELP", "add_arguments", "run", "summarize"]


def add_arguments(p, *, backend: bool = True) -> None:
    """The options of ``densehw run`` (``backend=False``: without ``--backend`` and the
    backends' options, for ``densehw board run``)."""
    p.add_argument("program", type=Path, metavar="PROGRAM_DIR", help="from `densehw compile`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", choices=["digits", "speech"],
                     help="bundled test split (digits: sklearn 8x8; speech: espeak-ng commands)")
    src.add_argument("--inputs", type=Path, metavar="X.npy",
                     help="your inputs: float32/float16 array (N, *input_shape)")
    p.add_argument("--out", type=Path, metavar="Y.npy",
                   help="write the outputs: float32 array (N, *output_shape)")
    if backend:
        p.add_argument("--backend", default="golden", metavar="NAME",
                       help="golden (default), icarus, verilator, board, or another "
                            "registered backend")
        add_backend_arguments(p)
    p.add_argument("--limit", type=int, metavar="N", help="first N samples only")
    p.add_argument("--report", type=Path, metavar="R.json", help="write the JSON report")
    p.add_argument("--batch-size", type=int, metavar="B",
                   help="samples per batch (results do not depend on it; default: as many as "
                        "fit a 1.5 GB working set, at most 256)")
    p.add_argument("--no-compare", action="store_true",
                   help="do not run the golden model beside a non-golden backend")
    p.add_argument("--no-reference", action="store_true",
                   help="do not run the PyTorch model for comparison")
    p.add_argument("--config", metavar="CFG",
                   help="refuse the program unless it was compiled for this ArrayConfig")
    p.add_argument("--reports-dir", type=Path, default=ROOT / "build" / "reports",
                   help="board reports for the projection (default build/reports)")
    p.add_argument("--progress", choices=["auto", "on", "off"], default="auto",
                   help="progress bar on stderr (auto: when stderr is a terminal)")


# -- data and reference -------------------------------------------------------------------------

def load_data(name: str):
    """``(x_test float32, y_test int64)`` of a data set."""
    if name == "digits":
        from sw.data import digits

        d = digits()
    else:
        from sw.data import SpeechSpec, speech_commands

        d = speech_commands(spec=SpeechSpec())
    return d.x_test.float().contiguous(), d.y_test


def load_inputs(path: Path, program):
    """``X.npy`` -> float32 tensor ``(N, *input_shape)``; :class:`UserError` otherwise."""
    import numpy as np
    import torch

    from contract.files import NpyError, load_npy

    if not Path(path).exists():
        raise UserError(f"--inputs file {str(path)!r} does not exist")
    try:
        x = load_npy(path, "--inputs")
    except NpyError as exc:
        raise UserError(f"--inputs {str(path)!r} is not a NumPy .npy array ({exc})") from None
    if x.dtype not in (np.float32, np.float16):
        raise UserError(f"--inputs {str(path)!r} has dtype {x.dtype}; expected float32 or "
                        f"float16")
    want = list(program.input["shape"])
    if x.ndim != len(want) + 1 or list(x.shape[1:]) != want or x.shape[0] < 1:
        raise UserError(f"--inputs {str(path)!r} has shape {list(x.shape)}; the program "
                        f"expects (N, {', '.join(map(str, want))}) with N >= 1")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def layer_deviation(program, ref, x, samples: int = 64) -> list:
    """Per step with a graph-node counterpart: how far the program's values (golden model,
    ``in_fmt`` activations) are from the floating-point reference's, on the first ``samples``
    inputs."""
    from sw.runtime import decode, run_program

    x = x[:samples]
    res = run_program(program, x, backend="golden", compare=False, keep_values=True)
    acts = ref.activations(x)
    out = []
    for s in program.steps:
        node = s.get("torch_node")
        if node is None or node not in acts:
            continue
        got = decode(res.values[s["output"]], program.fmt(s["output"]))
        want = acts[node].double().reshape(got.shape)
        diff = (got - want).abs()
        scale = float(want.abs().max()) or 1.0
        out.append({"step": s["id"], "name": s.get("name"), "torch_node": node,
                    "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
                    "max_diff_rel_to_max": float(diff.max()) / scale,
                    "torch_max_abs": scale})
    return out


# -- performance --------------------------------------------------------------------------------

def _measured_cycles(stats: list) -> int | None:
    total = 0
    for st in stats:
        value = st.get("cycles", st.get("cycles_busy")) if isinstance(st, dict) else None
        if not isinstance(value, int):
            return None
        total += value
    return total


def step_cycles(model, step) -> int:
    """Cycles of one array step for one sample: one GEMM per group."""
    g = step.get("groups", 1)
    return g * model(step["n"], step["k"], step["m"] // g)


def performance(program, measured: dict, samples: int = 1) -> dict:
    """Cycles per layer (one sample) from the cycle model, MACs and MAC utilization, the model
    used, and what the backend measured (``cycles`` or ``cycles_busy`` of its stats, over the
    whole run, divided by the number of samples)."""
    from sw.runtime import cycle_model

    cfg = program.config
    model, source = cycle_model(cfg)
    layers, total, macs = [], 0, 0
    for s in program.array_steps():
        n, k, m = s["n"], s["k"], s["m"]
        cycles = step_cycles(model, s)
        mac = n * k * m
        layers.append({"step": s["id"], "name": s.get("name"), "op": s["op"], "n": n, "k": k,
                       "m": m, "groups": s.get("groups", 1), "macs": mac, "cycles": cycles,
                       "mac_utilization": round(mac / (cycles * cfg.rows * cfg.cols), 4),
                       "measured": measured.get(s["id"])})
        total += cycles
        macs += mac
    host_macs = sum(s.get("macs", 0) for s in program.steps if s["where"] == "host")
    out = {"per_layer": layers, "total_per_sample": total, "macs_per_sample": macs,
           "host_macs_per_sample": host_macs,
           "mac_utilization": round(macs / (total * cfg.rows * cfg.cols), 4) if total else None,
           "source": source, "array": f"{cfg.rows}x{cfg.cols} PEs, depth {cfg.depth}"}
    got = [_measured_cycles(measured.get(x["step"], [])) for x in layers]
    if layers and all(g is not None and g > 0 for g in got):
        for x, g in zip(layers, got, strict=True):
            x["measured_cycles_per_sample"] = g / samples
            x["measured_mac_utilization"] = round(x["macs"] * samples / (
                g * cfg.rows * cfg.cols), 4)
        mtotal = sum(got) / samples
        out["measured_total_per_sample"] = mtotal
        out["measured_mac_utilization"] = round(macs / (mtotal * cfg.rows * cfg.cols), 4)
        out["measured_note"] = ("measured by the backend over the run (batches of several "
                                "samples amortise weight loading), divided by the samples")
    return out


#: The default boards of the projection: (board, device, label); their arrays are
#: ``configs/<board>_<device>.toml``.
BOARDS = (("ice40", "up5k", "UP5K"), ("ecp5", "25f", "ECP5-25F"), ("ecp5", "85f", "ECP5-85F"))


def _board_report(reports_dir: Path, board: str, device: str, cfg) -> tuple[dict, str] | None:
    from contract.array import ArrayConfig

    for f in sorted(glob.glob(str(reports_dir / board / "*" / "summary.json"))):
        try:
            rep = json.loads(Path(f).read_text())
            rcfg = ArrayConfig.from_dict(rep.get("config") or {})
        except (OSError, ValueError, TypeError):
            continue
        if (rep.get("kind") in ("shift-array", "array") and rep.get("fmax_mhz")
                and rep.get("device", device) == device and rcfg == cfg):
            return rep, f
    return None


def board_projection(program, reports_dir: Path) -> list:
    """Per default board (:data:`BOARDS`): the program's array cycles per sample on that
    board's array (the cycle model; the weight store deepened to the program's largest K when
    the board's default is shallower), and images/s at the Fmax of its synthesis report under
    ``reports_dir`` when there is one (else None and a note saying so)."""
    import dataclasses

    from contract.array import load_array_config
    from sw.runtime import cycle_model

    from .cli import CONFIGS

    kmax = max((s["k"] for s in program.array_steps()), default=1)
    out = []
    for board, device, label in BOARDS:
        base = load_array_config(CONFIGS / f"{board}_{device}.toml")
        depth = base.depth
        while depth < kmax:
            depth *= 2
        cfg = dataclasses.replace(program.config, rows=base.rows, cols=base.cols, depth=depth)
        model, _ = cycle_model(cfg)
        cycles = sum(step_cycles(model, s) for s in program.array_steps())
        entry = {"board": board, "device": device, "label": label,
                 "array": f"{cfg.rows}x{cfg.cols} PEs, depth {cfg.depth}",
                 "cycles_per_sample": cycles,
                 "images_per_s_per_mhz": float(f"{1e6 / cycles:.4g}") if cycles else None,
                 "fmax_mhz": None, "images_per_s": None, "report": None}
        notes = []
        if depth != base.depth:
            notes.append(f"weight store deepened from the board default {base.depth} to "
                         f"{depth} for K = {kmax}")
        found = _board_report(reports_dir, board, device, dataclasses.replace(
            base, in_fmt=program.config.in_fmt, out_fmt=program.config.out_fmt,
            wbits=program.config.wbits))
        if found is None:
            notes.append(f"no synthesis report of the {label} default array under "
                         f"{reports_dir} (run `densehw synth --board {board} --device "
                         f"{device}`): images/s = images_per_s_per_mhz x Fmax in MHz")
        else:
            rep, f = found
            fmax = float(rep["fmax_mhz"])
            entry.update(fmax_mhz=fmax, report=f,
                         images_per_s=round(fmax * 1e6 / cycles, 1) if cycles else None)
            if depth != base.depth:
                notes.append("Fmax measured at the default depth")
        entry["note"] = "; ".join(notes) or "array only: host steps and transfers excluded"
        out.append(entry)
    return out


#: Rounding of each host op (``docs/deployment.md`` has the exact definitions).
ROUNDING = {
    "input": "float32 input rounded once to in_fmt (nearest even)",
    "convert": "exact decode, rounded once to the target format",
    "affine": "x*scale (+shift) in float64, rounded once; scale of a folded BN is an fp32 value",
    "fp_linear": "sequential float64 dot product (exact products), +bias, BN, ReLU, rounded once",
    "fp_conv1d": "im2col, sequential float64 dot product, +bias, BN, ReLU, rounded once",
    "fp_conv2d": "im2col, sequential float64 dot product, +bias, BN, ReLU, rounded once",
    "relu": "on bit patterns (sign set -> +0), no rounding",
    "clamp": "compare on exact values, rounded once (bounds rounded to the format)",
    "add": "a + b in float64 (exact for formats up to 16 bits), rounded once",
    "concat": "no arithmetic (exact decode and re-encode)",
    "maxpool1d": "on bit patterns, no arithmetic",
    "maxpool2d": "on bit patterns, no arithmetic",
    "avgpool": "exact sum, one float64 division by the count, rounded to the format",
    "avgpool1d": "exact window sum, one float64 division by the count, rounded to the format",
    "avgpool2d": "exact window sum, one float64 division by the count, rounded to the format",
    "adaptive_avgpool": "exact window sum, one float64 division, rounded to the format",
    "flatten": "no arithmetic",
    "reshape": "no arithmetic",
    "permute": "no arithmetic",
    "softmax": "float64 exp(x - max), sequential sum, one division, rounded to the format",
}


def auto_batch_size(program, budget: float = 1.5e9, cap: int = 256) -> int:
    """Samples per batch whose working set (every value as int64 patterns, plus the largest
    im2col matrix and float64 accumulator) stays within ``budget`` bytes."""
    import numpy as np

    values = sum(int(np.prod(v["shape"] or [1])) for v in program.values.values())
    work = 0
    for s in program.steps:
        out = int(np.prod(program.values[s["output"]]["shape"] or [1]))
        if s["where"] == "array":
            work = max(work, s["n"] * s["k"] + 2 * out)
        elif s["op"].startswith("fp_"):
            k = program.blobs[s["weights"]].shape[1]
            work = max(work, out // max(1, program.blobs[s["weights"]].shape[0]) * k + 2 * out)
    per_sample = 8 * (values + 2 * work)
    return int(max(1, min(cap, budget // max(per_sample, 1))))


def projection(program, cycles_per_sample: int, reports_dir: Path) -> tuple[list | None, str]:
    from contract.array import ArrayConfig
    from contract.files import RTL_SOURCES, source_fingerprint

    rtl_now = source_fingerprint(RTL_SOURCES)

    files = sorted(glob.glob(str(reports_dir / "*" / "*" / "summary.json")))
    if not files:
        return None, (f"no board reports under {reports_dir} (run the synthesis flow first); "
                      f"latency = cycles / Fmax cannot be projected")
    out, other = [], 0
    for f in files:
        try:
            rep = json.loads(Path(f).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if rep.get("kind") not in ("shift-array", "array") or rep.get("fmax_mhz") is None:
            other += 1
            continue
        try:
            match = ArrayConfig.from_dict(rep.get("config") or {}) == program.config
        except (TypeError, ValueError):
            match = False
        fmax = float(rep["fmax_mhz"])
        latency_us = cycles_per_sample / fmax
        out.append({"board": rep.get("board"), "design": rep.get("design"), "report": f,
                    "fmax_mhz": fmax, "timing_met": rep.get("timing_met"),
                    "config_matches_program": match,
                    "rtl_matches": rep.get("rtl_fingerprint") == rtl_now,
                    "latency_us": round(latency_us, 3),
                    "fps": round(1e6 / latency_us, 1)})
    note = ("latency = array cycles per sample (cycle model above, batch 1) / Fmax; host steps "
            "and data transfer excluded")
    if out and not any(p["config_matches_program"] for p in out):
        note += "; WARNING: no board report is for this program's array configuration"
    if any(not p["rtl_matches"] for p in out):
        note += ("; WARNING: some board reports were made from other RTL sources (rtl_matches "
                 "false: re-run the synthesis flow)")
    if not out:
        return None, f"{len(files)} board reports, none of the PE array with an Fmax"
    return out, note


# -- main ---------------------------------------------------------------------------------------

def _write_json(path: Path, payload: dict) -> None:
    from .cmd_generate import write_outputs

    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UserError(f"report directory {str(directory)!r} does not exist")
    write_outputs({path.name: json.dumps(payload, indent=1) + "\n"}, directory)


def _write_npy(path: Path, array) -> None:
    import io

    import numpy as np

    from contract.files import write_atomic

    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UserError(f"--out directory {str(directory)!r} does not exist")
    buf = io.BytesIO()
    np.save(buf, array)
    write_atomic(path, buf.getvalue())


def _progress(args, total: int):
    """A tqdm progress bar over samples, or None."""
    show = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    if not show:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="sample", desc=f"run {args.backend}", file=sys.stderr,
               leave=False)
    state = {"done": 0}

    def update(done, _total):
        bar.update(done - state["done"])
        state["done"] = done
    return bar, update


def _peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def run(args) -> int:
    import numpy as np
    import torch

    from sw.program import ProgramError, check_config, load
    from sw.reference import reference_of
    from sw.runtime import run_program

    torch.set_num_threads(1)
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be a positive integer, not {args.limit}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size must be a positive integer, not {args.batch_size}")
    try:
        program = load(args.program)
        if args.config is not None:
            check_config(program, load_config(args.config))
    except ProgramError as exc:
        raise UserError(str(exc)) from None
    factory = backend_factory(args.backend)
    y = None
    if args.data is not None:
        if program.dataset is not None and program.dataset != args.data:
            raise UserError(f"the program was compiled for {program.dataset} inputs, not "
                            f"--data {args.data}")
        x, y = load_data(args.data)
        if list(x.shape[1:]) != list(program.input["shape"]):
            raise UserError(f"--data {args.data} gives inputs of shape {list(x.shape[1:])}; "
                            f"the program expects {program.input['shape']}")
    else:
        x = load_inputs(args.inputs, program)
    if args.out is not None:
        directory = args.out.parent if str(args.out.parent) else Path(".")
        if not directory.is_dir():
            raise UserError(f"--out directory {str(directory)!r} does not exist")
    if args.limit is not None:
        x = x[:args.limit]
        y = None if y is None else y[:args.limit]
    batch = args.batch_size or auto_batch_size(program)
    t0 = time.perf_counter()
    ref_model = None if args.no_reference else reference_of(program)
    ref = None if ref_model is None else ref_model.outputs(x, chunk=min(64, batch)).double()
    t_torch = time.perf_counter() - t0
    from sw.backends import options_from

    fn = factory(program.config, **options_from(args.backend, args))
    compare = args.backend != "golden" and not args.no_compare
    bar, update = _progress(args, len(x))
    try:
        result = run_program(program, x, backend=args.backend, backend_fn=fn,
                             compare=compare, batch_size=batch, progress=update)
    finally:
        if bar is not None:
            bar.close()
    n = len(x)
    out_shape = program.values[program.output]["shape"]
    outputs = result.logits.reshape(n, *out_shape)
    if args.out is not None:
        _write_npy(args.out, outputs.numpy().astype(np.float32))
    report = {"format": "densehw-run-report", "version": 2, "program": str(args.program),
              "config": program.config.to_dict(), "config_name": program.config.name,
              "backend": args.backend, "data": args.data or str(args.inputs),
              "split": "test" if args.data else None, "samples": n, "batch_size": batch,
              "output": {"shape": out_shape, "fmt": program.values[program.output]["fmt"],
                         "file": None if args.out is None else str(args.out)}}
    classify = len(out_shape) == 1
    acc = None
    if y is not None:
        acc = 100.0 * float((result.predictions == y).sum()) / n
    report["accuracy"] = None if acc is None else round(acc, 4)
    if ref is not None:
        flat_ref, flat_got = ref.reshape(n, -1), result.logits.reshape(n, -1)
        diff = (flat_ref - flat_got).abs()
        finite = torch.isfinite(flat_got).all()
        norm = float(torch.linalg.vector_norm(flat_ref)) or 1.0
        cmp = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
               "rel_l2_error": float(torch.linalg.vector_norm(flat_ref - flat_got)) / norm
               if bool(finite) else None,
               "note": "program outputs (in_fmt activations, exact array GEMMs, float64 host "
                       "ops) minus the floating-point PyTorch model's"}
        report["outputs_vs_torch"] = report["logits_vs_torch"] = cmp
        if classify:
            tpred = flat_ref.argmax(1)
            report.update(
                agreement_with_torch=round(float((tpred == result.predictions).float()
                                                 .mean()), 6),
                disagreements_with_torch=int((tpred != result.predictions).sum()))
            report["torch_accuracy"] = (None if y is None else round(
                100.0 * float((tpred == y).sum()) / n, 4))
        # every value of the first samples is kept: at most ~5e7 of them (a few hundred MB)
        per_sample = sum(int(np.prod(v["shape"] or [1])) for v in program.values.values())
        first = max(1, min(64, batch, n, int(5e7 // max(per_sample, 1))))
        report["layers_vs_torch"] = layer_deviation(program, ref_model, x, first)
        report["layers_vs_torch_note"] = (
            f"golden-model values (in_fmt activations) minus the floating-point reference at "
            f"the same graph node, first {first} samples; max_diff_rel_to_max = max |diff| / "
            f"max |ref|")
    else:
        report.update(torch_accuracy=None, torch_note="no reference: the program has no "
                      "source model file" if ref_model is None and not args.no_reference
                      else "--no-reference")
    per_step = {r.id: r for r in result.steps}
    report["mismatches"] = result.mismatches if compare else 0
    report["compared_with_golden"] = compare
    report["mismatches_note"] = (
        "array-step output patterns that differ from sw.golden.gemm_golden on the same inputs"
        if compare else "golden backend: it is the reference (0 by definition)"
        if args.backend == "golden" else "comparison disabled (--no-compare)")
    measured = {r.id: r.backend_stats for r in result.steps if r.backend_stats}
    perf = performance(program, measured, n)
    report["cycles"] = perf
    report["mac_utilization"] = perf["mac_utilization"]
    proj, note = projection(program, perf["total_per_sample"], args.reports_dir)
    report["projection"] = proj
    report["projection_note"] = note
    report["boards"] = board_projection(program, args.reports_dir)
    report["ops"] = [r.to_dict() for r in result.steps]
    report["rounding"] = {op: ROUNDING[op] for op in dict.fromkeys(
        s["op"] for s in program.steps if s["where"] == "host") if op in ROUNDING}
    report["seconds"] = {"run": round(result.seconds, 3), "torch_reference": round(t_torch, 3),
                         "array_steps": round(sum(r.seconds for r in result.steps
                                                  if r.where == "array"), 3),
                         "host_steps": round(sum(r.seconds for r in result.steps
                                                 if r.where == "host"), 3)}
    report["peak_rss_mb"] = _peak_rss_mb()
    if classify:
        report["predictions"] = result.predictions.tolist()
    if y is not None:
        report["labels"] = y.tolist()
    if args.report is not None:
        _write_json(args.report, report)
    print_table(program, report, per_step)
    acc_txt = "" if acc is None else f"accuracy {acc:.2f} % "
    if ref is not None and classify:
        torch_txt = (f"(PyTorch {report['torch_accuracy']:.2f} %, agreement "
                     if report.get("torch_accuracy") is not None else "(agreement with PyTorch "
                     ) + f"{100 * report['agreement_with_torch']:.2f} %"
        rel = report["outputs_vs_torch"]["rel_l2_error"]
        torch_txt += (f", rel. L2 error {rel:.2e})" if rel is not None else ")")
    elif ref is not None:
        rel = report["outputs_vs_torch"]["rel_l2_error"]
        torch_txt = f"(rel. L2 error vs PyTorch {rel:.2e})" if rel is not None else ""
    else:
        torch_txt = "(PyTorch n/a)"
    mm = (f"{report['mismatches']} bit mismatches vs golden over "
          f"{sum(per_step[s['id']].compared for s in program.array_steps())} outputs"
          if compare else "golden reference")
    what = args.data if args.data else str(args.inputs)
    print(f"run: {what} {n} samples on {args.backend}: {acc_txt}{torch_txt}; {mm}; "
          f"{perf['total_per_sample']} array cycles/sample, MAC utilization "
          f"{perf['mac_utilization']}; {result.seconds:.2f} s"
          + (f" -> {args.report}" if args.report else "")
          + (f"; outputs -> {args.out}" if args.out else ""))
    if compare and report["mismatches"]:
        for r in result.steps:
            if r.mismatches:
                print(f"  step {r.id} {r.name}: {r.mismatches} mismatches, first "
                      f"{r.first_mismatch}", file=sys.stderr)
        return 1
    return 0


def print_table(program, report, per_step) -> None:
    """The per-layer table of a run and the board projection, on stdout."""
    perf = report["cycles"]
    print(f"  {'step':>4s} {'layer':24s} {'op':8s} {'MACs/sample':>13s} {'cycles':>10s} "
          f"{'util':>6s} {'measured':>10s} {'compared':>10s} {'mismatch':>8s}")
    for x in perf["per_layer"]:
        rec = per_step[x["step"]]
        meas = x.get("measured_cycles_per_sample")
        print(f"  {x['step']:4d} {str(x['name'])[:24]:24s} {x['op']:8s} {x['macs']:13,d} "
              f"{x['cycles']:10d} {x['mac_utilization']:6.3f} "
              f"{'' if meas is None else f'{meas:.1f}':>10s} {rec.compared:10d} "
              f"{rec.mismatches:8d}")
    print(f"  total: {perf['macs_per_sample']:,} MACs/sample on the array "
          f"({perf['host_macs_per_sample']:,} on the host), {perf['total_per_sample']} cycles "
          f"({perf['source'].split(':')[0]})")
    for b in report["boards"]:
        ips = (f"{b['images_per_s']} images/s at {b['fmax_mhz']} MHz" if b["images_per_s"]
               else f"{b['images_per_s_per_mhz']} images/s per MHz (no synthesis report)")
        print(f"  {b['label']:9s} {b['array']:24s} {b['cycles_per_sample']:>12d} cycles/sample "
              f"-> {ips}")


def summarize(paths, *, title: str = "e2e") -> int:
    """Print one line per report (missing ones say so); returns the number of reports with bit
    mismatches. Used by ``make e2e``."""
    print(f"{title} summary:")
    print(f"  {'report':34s} {'samples':>7s} {'accuracy':>9s} {'PyTorch':>8s} "
          f"{'mismatches':>10s} {'cycles/sample':>13s} {'MAC util':>8s}")
    bad = 0
    for p in paths:
        path = Path(p)
        if not path.is_file():
            print(f"  {str(path):34s} not run (see the message above)")
            continue
        r = json.loads(path.read_text())
        torch_acc = "n/a" if r.get("torch_accuracy") is None else f"{r['torch_accuracy']:.2f}"
        mm = f"{r['mismatches']}" if r.get("compared_with_golden") else "0 (ref)"
        bad += bool(r["mismatches"])
        print(f"  {str(path):34s} {r['samples']:7d} {r['accuracy']:9.2f} {torch_acc:>8s} "
              f"{mm:>10s} {r['cycles']['total_per_sample']:13d} "
              f"{r['mac_utilization']:8.3f}  ({r['backend']}, {r['data']})")
        for proj in r.get("projection") or []:
            print(f"    {proj['board']}: Fmax {proj['fmax_mhz']} MHz -> {proj['latency_us']} us, "
                  f"{proj['fps']} frames/s"
                  + ("" if proj["config_matches_program"] else " (other config!)")
                  + ("" if proj.get("rtl_matches", True) else " (older RTL!)"))
    return bad
