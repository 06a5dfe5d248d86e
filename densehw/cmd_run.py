"""``densehw run PROGRAM_DIR --data digits|speech --backend NAME``: run a compiled program on the
test split and report accuracy, per-layer bit-exactness against the golden model, cycles, MAC
utilization and projected latency / frames per second.

Backends: ``golden`` (built in) and any backend registered with
``sw.runtime.register_backend`` (simulation backends register themselves when
:data:`PROVIDERS` modules are imported), or a ``densehw gemm`` backend of
``densehw.cmd_gemm.BACKENDS`` (adapted). An RTL backend (``icarus``, ``verilator``) that is not
available exits with code 3 and one line on stderr, so scripts can tell "not built yet" from
"wrong"; an unknown name is an ordinary error (code 2). A run with bit mismatches exits 1.

The JSON report (``--report``) holds ``samples``, ``accuracy``, ``torch_accuracy``,
``mismatches`` (array-step output patterns that differ from the golden model; 0 for golden),
``cycles``, ``mac_utilization``, ``projection`` and the list of ``ops`` with where each ran.
"""

from __future__ import annotations

import glob
import importlib
import json
import sys
import time
from pathlib import Path

from .cli import UserError, load_config

HELP = "run a compiled program on a data set (golden model or simulated RTL) and report"

PROVIDERS = ("sim.backends",)        # modules that register RTL backends when imported
EXIT_UNAVAILABLE = 3
ROOT = Path(__file__).resolve().parents[1]


def add_arguments(p) -> None:
    p.add_argument("program", type=Path, metavar="PROGRAM_DIR", help="from `densehw compile`")
    p.add_argument("--data", required=True, choices=["digits", "speech"],
                   help="test split to run (digits: sklearn 8x8; speech: espeak-ng commands)")
    p.add_argument("--backend", default="golden", metavar="NAME",
                   help="golden (default), icarus, verilator, or another registered backend")
    p.add_argument("--limit", type=int, metavar="N", help="first N test samples only")
    p.add_argument("--report", type=Path, metavar="R.json", help="write the JSON report")
    p.add_argument("--batch-size", type=int, default=256, metavar="B",
                   help="samples per batch (results do not depend on it; default 256)")
    p.add_argument("--no-compare", action="store_true",
                   help="do not run the golden model beside a non-golden backend")
    p.add_argument("--config", metavar="CFG",
                   help="refuse the program unless it was compiled for this ArrayConfig")
    p.add_argument("--reports-dir", type=Path, default=ROOT / "build" / "reports",
                   help="board reports for the projection (default build/reports)")


# -- backends -----------------------------------------------------------------------------------

class Unavailable(Exception):
    pass


def resolve_backend(name: str, args):
    """The gemm callable factory for ``name``; raises :class:`Unavailable`."""
    from sw import runtime

    if name in runtime.available_backends():
        return runtime.get_backend(name)
    tried = []
    for module in PROVIDERS:
        try:
            importlib.import_module(module)
            known = ", ".join(runtime.available_backends())
            tried.append(f"{module} (imported; registered: {known})")
        except ImportError as exc:
            missing = isinstance(exc, ModuleNotFoundError) and (
                exc.name == module or module.startswith(f"{exc.name}."))
            tried.append(f"{module} (not present)" if missing else
                         f"{module} (import failed: {exc})")
        if name in runtime.available_backends():
            return runtime.get_backend(name)
    if name in ("icarus", "verilator"):
        raise Unavailable(f"backend {name!r} is not available yet: no RTL array backend is "
                          f"registered (looked in sw.runtime, {'; '.join(tried)}); "
                          f"use --backend golden")
    known = sorted(runtime.available_backends())
    raise Unavailable(f"unknown backend {name!r}; available: {', '.join(known)}")


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


def torch_model(program_dir: Path, program):
    """The PyTorch model (eval mode) the program was compiled from, or None."""
    from sw.export import load
    from sw.models import build_model

    src = program.source.get("file")
    if not src or not (program_dir / src).is_file() or not program.model:
        return None
    exported = load(program_dir / src)
    model = build_model(exported.model)
    exported.load_into(model)
    return model.eval()


def layer_deviation(program, model, x, samples: int = 64) -> list:
    """Per step with a PyTorch counterpart: how far the program's values (golden model, fp16
    activations) are from the fp32 PyTorch model's, on the first ``samples`` inputs."""
    from sw.compile import torch_node_outputs
    from sw.runtime import decode, run_program

    x = x[:samples]
    res = run_program(program, x, backend="golden", compare=False, keep_values=True)
    ref = torch_node_outputs(model, x)
    out = []
    for s in program.steps:
        node = s.get("torch_node")
        if node is None or node not in ref:
            continue
        got = decode(res.values[s["output"]], program.fmt(s["output"]))
        want = ref[node].double().reshape(got.shape)
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


def performance(program, measured: dict, samples: int = 1) -> dict:
    """Cycles per layer (one sample) from the cycle model, MAC utilization, the model used, and
    what the backend measured (``cycles`` or ``cycles_busy`` of its stats, over the whole run,
    divided by the number of samples)."""
    from sw.runtime import cycle_model

    cfg = program.config
    model, source = cycle_model(cfg)
    layers, total, macs = [], 0, 0
    for s in program.array_steps():
        n, k, m = s["n"], s["k"], s["m"]
        cycles = model(n, k, m)
        mac = n * k * m
        layers.append({"step": s["id"], "name": s.get("name"), "n": n, "k": k, "m": m,
                       "macs": mac, "cycles": cycles,
                       "mac_utilization": round(mac / (cycles * cfg.rows * cfg.cols), 4),
                       "measured": measured.get(s["id"])})
        total += cycles
        macs += mac
    out = {"per_layer": layers, "total_per_sample": total, "macs_per_sample": macs,
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


def run(args) -> int:
    import torch

    from sw.program import ProgramError, check_config, load
    from sw.runtime import run_program

    torch.set_num_threads(1)
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be a positive integer, not {args.limit}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be a positive integer, not {args.batch_size}")
    try:
        program = load(args.program)
        if args.config is not None:
            check_config(program, load_config(args.config))
    except ProgramError as exc:
        raise UserError(str(exc)) from None
    try:
        factory = resolve_backend(args.backend, args)
    except Unavailable as exc:
        if args.backend not in ("icarus", "verilator"):
            raise UserError(str(exc)) from None
        print(f"densehw run: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if program.dataset is not None and program.dataset != args.data:
        raise UserError(f"the program was compiled for {program.dataset} inputs, not "
                        f"--data {args.data}")
    x, y = load_data(args.data)
    if list(x.shape[1:]) != list(program.input["shape"]):
        raise UserError(f"--data {args.data} gives inputs of shape {list(x.shape[1:])}; the "
                        f"program expects {program.input['shape']}")
    if args.limit is not None:
        x, y = x[:args.limit], y[:args.limit]
    t0 = time.perf_counter()
    model = torch_model(args.program, program)
    ref = None
    if model is not None:
        with torch.no_grad():
            ref = torch.cat([model(x[i:i + 512]) for i in range(0, len(x), 512)])
    t_torch = time.perf_counter() - t0
    fn = factory(program.config)
    compare = args.backend != "golden" and not args.no_compare

    def progress(done, total):
        print(f"\r  {args.backend}: {done}/{total} samples", end="", file=sys.stderr,
              flush=True)

    result = run_program(program, x, backend=args.backend, backend_fn=fn, compare=compare,
                         batch_size=args.batch_size,
                         progress=progress if sys.stderr.isatty() else None)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    n = len(y)
    acc = 100.0 * float((result.predictions == y).sum()) / n
    report = {"format": "densehw-run-report", "version": 1, "program": str(args.program),
              "config": program.config.to_dict(), "config_name": program.config.name,
              "backend": args.backend, "data": args.data, "split": "test", "samples": n,
              "accuracy": round(acc, 4)}
    if ref is not None:
        tpred = ref.argmax(1)
        diff = (ref.double() - result.logits).abs()
        report.update(
            torch_accuracy=round(100.0 * float((tpred == y).sum()) / n, 4),
            agreement_with_torch=round(float((tpred == result.predictions).float().mean()), 6),
            disagreements_with_torch=int((tpred != result.predictions).sum()),
            logits_vs_torch={"max_abs_diff": float(diff.max()),
                             "mean_abs_diff": float(diff.mean()),
                             "note": "program logits (fp16 activations, exact array GEMMs, "
                                     "float64 host ops) minus the PyTorch fp32 model's"})
        report["layers_vs_torch"] = layer_deviation(program, model, x)
        report["layers_vs_torch_note"] = (
            "golden-model values (fp16 activations) minus PyTorch fp32 activations at the same "
            "graph node, first 64 samples; max_diff_rel_to_max = max |diff| / max |torch|")
    else:
        report.update(torch_accuracy=None, torch_note="no source export in the program")
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
    report["ops"] = [r.to_dict() for r in result.steps]
    report["seconds"] = {"run": round(result.seconds, 3), "torch_reference": round(t_torch, 3),
                         "array_steps": round(sum(r.seconds for r in result.steps
                                                  if r.where == "array"), 3),
                         "host_steps": round(sum(r.seconds for r in result.steps
                                                 if r.where == "host"), 3)}
    report["predictions"] = result.predictions.tolist()
    report["labels"] = y.tolist()
    if args.report is not None:
        _write_json(args.report, report)
    torch_txt = (f"PyTorch {report['torch_accuracy']:.2f} %, agreement "
                 f"{100 * report['agreement_with_torch']:.2f} %" if ref is not None else
                 "PyTorch n/a")
    mm = (f"{report['mismatches']} bit mismatches vs golden over "
          f"{sum(per_step[s['id']].compared for s in program.array_steps())} outputs"
          if compare else "golden reference")
    print(f"run: {args.data} {n} samples on {args.backend}: accuracy {acc:.2f} % ({torch_txt}); "
          f"{mm}; {perf['total_per_sample']} array cycles/sample, MAC utilization "
          f"{perf['mac_utilization']}; {result.seconds:.2f} s"
          + (f" -> {args.report}" if args.report else ""))
    if compare and report["mismatches"]:
        for r in result.steps:
            if r.mismatches:
                print(f"  step {r.id} {r.name}: {r.mismatches} mismatches, first "
                      f"{r.first_mismatch}", file=sys.stderr)
        return 1
    return 0


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
