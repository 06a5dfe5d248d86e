"""``make soak``: thousands of random layers back to back on the PE array (Verilator).

    python -m sim.soak [--layers N] [--seed S] [--first I] [--chunk C] [--out build/soak]

Layer ``i`` is drawn from ``(seed, i)`` alone: a random shape (N up to three tiles and one row
more, K from 1 to the depth, M likewise), value flavor (:mod:`sim.payload`), bias, ReLU,
per-tensor or per-channel ``e0``, an independent stall probability (0..90 %) on each of the
three streams and on the AXI4-Lite responses, interrupt enables, and now and then a reset (at a
random clock, or after a random number of weight words, activation beats or result beats: during
weight loading, compute and drain), a second ``START`` while the layer runs, a stream sent
without its inner ``tlast`` s, or a ``START`` with a bad register. Layers run in chunks of
``C`` (default 200) per simulator process, the chunks cycling through the array configurations
of ``make sim`` (:data:`sim.array_regress.ARRAY_CONFIGS`); the bench is :mod:`sim.soak_tb`.

Checked for every layer: every result equals the golden model; the beats of every stream are
counted (activation beats, weight words, result beats as the framing says: fewer are lost,
more are duplicated, and result beats after a reset or between layers are duplicated); ``tlast``
where the framing says on all three streams; the AXI protocol monitors on every port;
``STATUS``, ``ERROR`` (and write-1-to-clear), ``STATUS.IRQ`` and the ``irq`` output, and the
counters (``CYCLES_ACTIVE`` equals the activation beats, ``STALL_RES`` the clocks a result waited
for ``tready``, ``STALL_ACT`` at most the clocks without an activation beat, ``CYCLES_BUSY``
between its parts' sum and the layer's clocks); after a reset: no result beat, ``STATUS``,
``ERROR``, ``IRQ_EN`` and every counter 0, and the next layer right.

Writes ``<out>/report.json`` after every chunk (``layers``, ``outputs``, ``mismatches``,
``lost_beats``, ``duplicated_beats``, ``resets``, ``protocol_violations`` and more) and prints
the seed and, for a failure, the command that replays its chunk. Exit code 0 when every count
of a problem is 0, else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from contract.array import ERROR, STATUS, ArrayConfig, channel_words, result_order

from .array_layers import estimated_clocks, golden, random_layer
from .axi_monitor import framing_problems
from .soak_top import WRAPPER_TOP, soak_wrapper

__all__ = ["layer_entry", "run_chunk", "check_chunk", "build_soak", "main", "Totals",
           "REPORT_KEYS"]

ROOT = Path(__file__).resolve().parents[1]
STALLS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
STALL_P = (0.3, 0.15, 0.15, 0.15, 0.1, 0.1, 0.05)
PROBES = ("K=0", "K=depth+1", "N=0", "M=0", "N=2**24", "E0 high", "E0 low")
REPORT_KEYS = ("layers", "outputs", "mismatches", "lost_beats", "duplicated_beats", "resets",
               "protocol_violations")
_PROBLEM_KEYS = ("mismatches", "lost_beats", "duplicated_beats", "protocol_violations",
                 "counter_errors", "status_errors", "timeouts")


def _configs():
    from .array_regress import ARRAY_CONFIGS

    return ARRAY_CONFIGS


def layer_entry(cfg: ArrayConfig, seed: int, index: int):
    """``(entry, arrays)`` of layer ``index``: the bench's description and the layer's
    :class:`~sim.array_driver.Layer` (None for a register probe)."""
    rng = np.random.default_rng([seed, index, 0x50A4])
    if rng.random() < 0.02:
        kind = str(rng.choice(PROBES))
        regs = {"N": 1, "K": 1, "M": 1, "E0": 0}
        want = {"K=0": ("K", 0, "K_RANGE"), "K=depth+1": ("K", cfg.depth + 1, "K_RANGE"),
                "N=0": ("N", 0, "SHAPE"), "M=0": ("M", 0, "SHAPE"),
                "N=2**24": ("N", 1 << 24, "SHAPE"), "E0 high": ("E0", cfg.e0_max + 1, "E0_RANGE"),
                "E0 low": ("E0", cfg.e0_min - 1, "E0_RANGE")}[kind]
        regs[want[0]] = want[1]
        return {"kind": "probe", "probe": kind, "regs": regs, "expect": ERROR[want[2]]}, None
    n = int(rng.integers(1, 3 * cfg.rows + 2))
    m = int(rng.integers(1, 3 * cfg.cols + 2))
    r = rng.random()
    k = int(rng.integers(1, min(cfg.depth, 64) + 1)) if r < 0.6 else (
        int(rng.integers(1, cfg.depth + 1)) if r < 0.92 else cfg.depth)
    stall = tuple(float(rng.choice(STALLS, p=STALL_P)) for _ in range(3))
    layer = random_layer(cfg, rng, n, k, m)
    f = cfg.framing(n, k, m)
    entry = {"kind": "layer", "n": n, "k": k, "m": m, "relu": bool(layer.relu),
             "bias": layer.bias_bits is not None, "per_channel": layer.per_channel,
             "e0": None if layer.per_channel else int(layer.e0), "stall": stall,
             "axil_stall": float(rng.choice([0.0, 0.3, 0.7])),
             "irq_en": int(rng.integers(0, 4)) << 1, "idle_check": bool(rng.random() < 0.1),
             "merge_frames": None, "start_busy": 0, "reset": None,
             "budget": 8 * estimated_clocks(cfg, n, k, m, max(stall)) + 5000}
    r = rng.random()
    if r < 0.03:
        entry["merge_frames"] = "act"
    elif r < 0.06:
        entry["merge_frames"] = "wgt"
    elif r < 0.09 and f["act_beats"] > 1:
        entry["start_busy"] = int(rng.integers(1, f["act_beats"]))
    if rng.random() < 0.1:
        on = str(rng.choice(["wgt", "act", "res", "clock"]))
        top = {"wgt": f["wgt_words"], "act": f["act_beats"], "res": n * m,
               "clock": estimated_clocks(cfg, n, k, m, max(stall))}[on]
        entry["reset"] = {"on": on, "after": int(rng.integers(0, max(1, top))),
                          "cycles": int(rng.integers(1, 5))}
    return entry, layer


def build_soak(cfg: ArrayConfig, *, sim: str = "verilator", verilog: str | None = None,
               variant: str | None = None):
    """Build the wrapped array (cached); returns ``(runner, build_dir, seconds, portmap)``.
    ``verilog``/``variant``: this array text instead, built in its own folder (tests with
    broken RTL)."""
    from .array_driver import BUILD_ROOT, TOP, array_verilog
    from .runner import build_top

    if (verilog is None) != (variant is None):
        raise ValueError("a replacement RTL text needs its own variant folder, and vice versa")
    text = array_verilog(cfg) if verilog is None else verilog
    wrapped, pm = soak_wrapper(text, TOP)
    folder = BUILD_ROOT / cfg.name / (f"{sim}-soak" + (f"-{variant}" if variant else ""))
    runner, bdir, secs = build_top(WRAPPER_TOP, wrapped, folder, sim, recipe="densehw-soak-1")
    return runner, bdir, secs, pm


def run_chunk(cfg: ArrayConfig, entries, layers, *, seed: int, folder: Path, faults=None,
              sim: str = "verilator", verilog: str | None = None,
              variant: str | None = None) -> tuple[dict, dict, float]:
    """Run ``entries`` (with their ``layers``) in one simulator process in ``folder``;
    returns ``(results, outputs, build_seconds)``."""
    from .runner import run_cocotb

    runner, bdir, build_s, pm = build_soak(cfg, sim=sim, verilog=verilog, variant=variant)
    folder = Path(folder).resolve()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    arrays = {}
    for i, (e, layer) in enumerate(zip(entries, layers, strict=True)):
        if layer is None:
            continue
        arrays[f"x{i}"] = np.asarray(layer.x_bits, dtype=np.uint64)
        arrays[f"codes{i}"] = np.asarray(layer.codes, dtype=np.uint8)
        if e["per_channel"]:
            arrays[f"e0_{i}"] = np.asarray(layer.e0, dtype=np.int64)
        if e["bias"]:
            arrays[f"bias{i}"] = np.asarray(layer.bias_bits, dtype=np.uint64)
    np.savez(folder / "inputs.npz", **arrays)
    job = {"config": cfg.to_dict(), "seed": int(seed), "layers": entries,
           "faults": faults or {}, "portmap": pm.to_dict()}
    (folder / "job.json").write_text(json.dumps(job))
    error = run_cocotb(runner, top=WRAPPER_TOP, test_module="sim.soak_tb", build_dir=bdir,
                       run_dir=folder, testcases=["soak"],
                       env={"DENSEHW_SOAK_JOB": str(folder), "COCOTB_LOG_LEVEL": "WARNING"},
                       log=folder / "sim.log", results_xml=folder / "results.xml")
    res_file = folder / "results.json"
    if not res_file.exists():
        tail = (folder / "sim.log").read_text()[-2000:] if (folder / "sim.log").exists() else ""
        raise RuntimeError(f"the soak bench wrote no results ({error}); log "
                           f"{folder / 'sim.log'}:\n{tail}")
    results = json.loads(res_file.read_text())
    with np.load(folder / "outputs.npz") as z:
        outputs = {k: z[k] for k in z.files}
    return results, outputs, build_s


class Totals:
    """Counts over a soak."""

    KEYS = ("layers", "probes", "completed", "outputs", "mismatches", "lost_beats",
            "duplicated_beats", "resets", "protocol_violations", "counter_errors",
            "status_errors", "timeouts", "clocks", "start_busy", "merged_frames")

    def __init__(self):
        for k in self.KEYS:
            setattr(self, k, 0)
        self.resets_by_trigger = {"wgt": 0, "act": 0, "res": 0, "clock": 0}
        self.resets_in_phase = {"weight loading": 0, "compute": 0, "drain": 0, "idle": 0}
        self.problems: list[str] = []

    def add_problem(self, key, text, count=1):
        setattr(self, key, getattr(self, key) + count)
        if len(self.problems) < 100:
            self.problems.append(text)

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.KEYS}
        d["resets_by_trigger"] = dict(self.resets_by_trigger)
        d["resets_in_phase"] = dict(self.resets_in_phase)
        return d

    @property
    def bad(self) -> int:
        return sum(getattr(self, k) for k in _PROBLEM_KEYS)


def _check_counts(t, where, name, got, want):
    if got < want:
        t.add_problem("lost_beats", f"{where}: {name} {got} beats, expected {want}", want - got)
    elif got > want:
        t.add_problem("duplicated_beats", f"{where}: {name} {got} beats, expected {want}",
                      got - want)


def check_chunk(cfg: ArrayConfig, entries, layers, results, outputs, *, first: int,
                totals: Totals) -> None:
    """Compare a chunk's bench results with the golden model and the framing; add to
    ``totals``."""
    res_layers = results["layers"]
    if len(res_layers) != len(entries):
        totals.add_problem("timeouts", f"layers {first}..: the bench finished "
                                       f"{len(res_layers)} of {len(entries)} layers")
    for name, mon in results["streams"].items():
        if mon["violations"]:
            totals.add_problem("protocol_violations", f"layers {first}..: {name}: "
                               + "; ".join(mon["messages"][:3]), mon["violations"])
    ax = results["axil"]
    if ax["violations"] or ax["idle_problems"]:
        totals.add_problem("protocol_violations", f"layers {first}..: s_axil: "
                           + "; ".join((ax["messages"] + ax["idle_problems"])[:3]),
                           ax["violations"] + len(ax["idle_problems"]))
    xz = results.get("xz", {})
    if xz.get("clocks"):
        totals.add_problem("protocol_violations", f"layers {first}..: X/Z on the ports on "
                           f"{xz['clocks']} clocks: " + "; ".join(xz["messages"][:2]),
                           xz["clocks"])
    totals.clocks += int(results.get("cycles", 0))
    for i, (e, layer, r) in enumerate(zip(entries, layers, res_layers, strict=False)):
        where = f"layer {first + i}"
        for p in r.get("problems", []):
            totals.add_problem("status_errors", f"{where}: {p}")
        if e["kind"] == "probe":
            totals.probes += 1
            st, err = r["STATUS"], r["ERROR"]
            if err != e["expect"] or st & STATUS["BUSY"] or not st & STATUS["ERROR"] \
                    or r["ERROR_after_clear"]:
                totals.add_problem("status_errors",
                                   f"{where}: START with {e['probe']}: STATUS={st:#x} "
                                   f"ERROR={err:#x} (expected {e['expect']:#x}, not BUSY), "
                                   f"after clearing {r['ERROR_after_clear']:#x}")
            continue
        totals.layers += 1
        n, k, m = e["n"], e["k"], e["m"]
        if r.get("beats_between_layers"):
            totals.add_problem("duplicated_beats", f"{where}: {r['beats_between_layers']} "
                               f"result beats between layers", r["beats_between_layers"])
        f = cfg.framing(n, k, m)
        win = r.get("window", {})
        if r.get("aborted"):
            _check_reset(cfg, e, r, f, win, where, totals)
            continue
        if r.get("timed_out"):
            totals.add_problem("timeouts", f"{where}: timed out")
        totals.completed += 1
        totals.start_busy += bool(e["start_busy"])
        totals.merged_frames += bool(e["merge_frames"])
        # result beats: values, counts, framing
        beats = outputs.get(f"m_axis_res_{i}_data", np.zeros(0, np.uint64))
        _check_counts(totals, where, "m_axis_res", len(beats), n * m)
        _check_counts(totals, where, "s_axis_act", win["s_axis_act"]["transfers"],
                      f["act_beats"])
        _check_counts(totals, where, "s_axis_wgt", win["s_axis_wgt"]["transfers"],
                      f["wgt_words"])
        tiles = cfg.tiles(n, k, m)
        frames = {"m_axis_res": [rv * cv for _, rv, _, cv in tiles],
                  "s_axis_act": [k] * len(tiles) if e["merge_frames"] != "act"
                  else [f["act_beats"]],
                  "s_axis_wgt": [channel_words(k, cfg.wbits)] * m if e["merge_frames"] != "wgt"
                  else [f["wgt_words"]]}
        for name, want in frames.items():
            got = outputs.get(f"{name}_{i}_last", np.zeros(0, np.uint8))
            for p in framing_problems(name, got.tolist(), want):
                totals.add_problem("protocol_violations", f"{where}: {p}")
        want = golden(cfg, layer)
        order = result_order(cfg, n, k, m)
        count = min(len(beats), len(order))
        y = np.full((n, m), -1, dtype=np.int64)
        idx = np.asarray(order[:count], dtype=np.int64).reshape(-1, 3)
        y[idx[:, 0], idx[:, 1]] = beats[:count].astype(np.int64)
        totals.outputs += n * m
        bad = int((y != want).sum())
        if bad:
            from .array_layers import mismatches

            lines = mismatches(cfg, layer, y, want, seed=0, index=first + i, limit=2)
            totals.add_problem("mismatches", f"{where}: {bad} outputs differ: "
                               + " | ".join(lines), bad)
        if r.get("timed_out"):
            continue
        _check_status(cfg, e, r, f, win, where, totals)


def _expected_error(cfg, e) -> int:
    """The ``ERROR`` bits a layer sets: a merged stream of more than one frame, a second
    ``START``."""
    f = cfg.framing(e["n"], e["k"], e["m"])
    return ((ERROR["ACT_FRAMING"] if e["merge_frames"] == "act" and f["act_tlasts"] > 1 else 0)
            | (ERROR["WGT_FRAMING"] if e["merge_frames"] == "wgt" and f["wgt_tlasts"] > 1
               else 0)
            | (ERROR["START_BUSY"] if e["start_busy"] else 0))


def _check_status(cfg, e, r, f, win, where, t):
    st, err = r["STATUS"], r["ERROR"]
    want_err = _expected_error(cfg, e)
    if st is None or not st & STATUS["DONE"] or st & STATUS["BUSY"] \
            or bool(st & STATUS["ERROR"]) != bool(want_err):
        t.add_problem("status_errors", f"{where}: STATUS={st} after the last result "
                                       f"(expected DONE, not BUSY, ERROR={bool(want_err)})")
    if err != want_err:
        t.add_problem("status_errors", f"{where}: ERROR={err:#x}, expected {want_err:#x}")
    if err and r.get("ERROR_after_clear"):
        t.add_problem("status_errors", f"{where}: ERROR={r['ERROR_after_clear']:#x} after "
                                       f"writing {err:#x} to clear it")
    irq_want = int(bool(st & e["irq_en"] & (STATUS["DONE"] | STATUS["ERROR"])))
    if bool(st & STATUS["IRQ"]) != irq_want or r["irq"] != irq_want:
        t.add_problem("status_errors", f"{where}: IRQ_EN={e['irq_en']:#x} STATUS={st:#x}: "
                                       f"STATUS.IRQ / irq = {bool(st & STATUS['IRQ'])} / "
                                       f"{r['irq']}, expected {irq_want}")
    c = r["counters"]
    act, res = win["s_axis_act"], win["m_axis_res"]
    checks = [
        ("CYCLES_ACTIVE equals the activation beats", c["CYCLES_ACTIVE"] == act["transfers"]),
        ("STALL_RES equals the clocks a result waited", c["STALL_RES"] == res["stalls"]),
        ("STALL_ACT at most the clocks without an activation beat",
         c["STALL_ACT"] <= act["idle"]),
        ("CYCLES_BUSY at least the sum of active, stall_act, stall_wgt and stall_drain",
         c["CYCLES_BUSY"] >= c["CYCLES_ACTIVE"] + c["STALL_ACT"] + c["STALL_WGT"]
         + c["STALL_DRAIN"]),
        ("CYCLES_BUSY at most the layer's clocks", c["CYCLES_BUSY"] <= r["cycles"] + 64),
    ]
    for text, ok in checks:
        if not ok:
            t.add_problem("counter_errors", f"{where}: {text}: counters {c}, monitors act "
                                            f"{act} res {res}, {r['cycles']} clocks")


def _check_reset(cfg, e, r, f, win, where, t):
    t.resets += 1
    t.resets_by_trigger[e["reset"]["on"]] += 1
    wgt = win["s_axis_wgt"]["transfers"]
    act = win["s_axis_act"]["transfers"]
    if r["beats_before_reset"] > 0:
        phase = "drain"
    elif 0 < wgt < f["wgt_words"] and act == 0:
        phase = "weight loading"
    elif act > 0 or wgt > 0:
        phase = "compute"
    else:
        phase = "idle"
    t.resets_in_phase[phase] += 1
    if r["late_beats"]:
        t.add_problem("duplicated_beats", f"{where}: {r['late_beats']} result beats after the "
                                          f"reset", r["late_beats"])
    a = r["after_reset"]
    if a["STATUS"] or a["ERROR"] or a["IRQ_EN"] or any(a["counters"]):
        t.add_problem("status_errors", f"{where}: after the reset STATUS={a['STATUS']} "
                                       f"ERROR={a['ERROR']} IRQ_EN={a['IRQ_EN']} counters "
                                       f"{a['counters']} (expected all 0)")


def _write_report(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, path)


def soak(layers: int, *, seed: int, first: int = 0, chunk: int = 200, out: Path,
         configs=None, echo=print, faults=None, sim: str = "verilator", verilog=None,
         variant=None) -> dict:
    """Run ``layers`` layers from global index ``first``; returns the report (also written to
    ``out/report.json``). ``faults``/``verilog``/``variant``: a broken driver or broken RTL
    (see :func:`run_chunk`; the tests that show the checks can fail)."""
    configs = list(configs or _configs())
    totals = Totals()
    t0 = time.perf_counter()
    build_s = 0.0
    report = {}
    index = first
    end = first + layers
    while index < end:
        c = index // chunk
        stop = min(end, (c + 1) * chunk)
        cfg = configs[c % len(configs)]
        pairs = [layer_entry(cfg, seed, i) for i in range(index, stop)]
        entries = [p[0] for p in pairs]
        lays = [p[1] for p in pairs]
        t1 = time.perf_counter()
        try:
            results, outputs, b = run_chunk(cfg, entries, lays, seed=seed * 100003 + c,
                                            folder=out / "run", faults=faults, sim=sim,
                                            verilog=verilog, variant=variant)
        except RuntimeError as exc:
            totals.add_problem("timeouts", f"layers {index}..{stop - 1}: {exc}".splitlines()[0],
                               stop - index)
            results, outputs, b = None, {}, 0.0
        build_s += b
        if results is not None:
            check_chunk(cfg, entries, lays, results, outputs, first=index, totals=totals)
        wall = time.perf_counter() - t0
        report = {"seed": seed, "first": first, "chunk": chunk, "requested": layers,
                  **totals.as_dict(), "seconds": round(wall, 1),
                  "build_seconds": round(build_s, 1),
                  "layers_per_s": round(totals.layers / max(wall - build_s, 1e-9), 2),
                  "configs": [cf.name for cf in configs], "passed": totals.bad == 0,
                  "problems": totals.problems,
                  "replay": f"python -m sim.soak --seed {seed} --first {c * chunk} "
                            f"--layers {stop - c * chunk} --chunk {chunk}" if totals.bad else None}
        _write_report(out / "report.json", report)
        echo(f"soak: layers {index}..{stop - 1} on {cfg.name}: {time.perf_counter() - t1:.0f} s"
             f"; total {totals.layers} layers, {totals.outputs} outputs, {totals.resets} resets, "
             f"problems {totals.bad}" + (f" (first: {totals.problems[0]})" if totals.bad else ""))
        index = stop
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.soak", description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=int(os.environ.get("SOAK_LAYERS", 10000)),
                   help="layers to run (default $SOAK_LAYERS or 10000)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: a random one, "
                                                          "printed)")
    p.add_argument("--first", type=int, default=0, help="global index of the first layer")
    p.add_argument("--chunk", type=int, default=200, help="layers per simulator process")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "soak")
    args = p.parse_args(argv)
    if args.layers < 1 or args.chunk < 1 or args.first < 0:
        print("soak: error: --layers and --chunk must be at least 1, --first at least 0",
              file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"soak: seed {seed}, {args.layers} layers from {args.first}, chunks of {args.chunk} "
          f"(replay: python -m sim.soak --seed {seed} --layers {args.layers}"
          f"{f' --first {args.first}' if args.first else ''})", flush=True)
    report = soak(args.layers, seed=seed, first=args.first, chunk=args.chunk, out=args.out,
                  echo=lambda s: print(s, flush=True))
    print("soak: " + ", ".join(f"{k} {report[k]}" for k in REPORT_KEYS)
          + f", counter_errors {report['counter_errors']}, status_errors "
            f"{report['status_errors']}, timeouts {report['timeouts']}; {report['seconds']} s; "
          + ("PASS" if report["passed"] else f"FAIL (replay: {report['replay']})"))
    print(f"soak: report {args.out / 'report.json'}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    from sim import soak as _soak

    sys.exit(_soak.main())
