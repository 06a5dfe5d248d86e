"""Whole-device throughput: for each device and design, the largest array that places.

Usage: ``python benchmarks/bench_hw.py [--devices up5k,25f,85f] [--designs shift,fma16,...]
[--seeds 1] [--out build/bench] [--docs]`` (``make bench-hw``).

Designs (:data:`DESIGNS`): the shift array (exact fp16 accumulation, B = 3 weights; its
board's floorplan, without the optional performance counters, which the baselines do not have
either: ``counters = false`` as in the iCEBreaker image), the
pipelined FMA arrays (``boards.fpmac``: fp16 inputs with fp16 or fp32 accumulation, bf16 inputs
with fp32 accumulation), the int8 MAC arrays (``boards.intmac``) with multiplier blocks and with
LUT multipliers only; and the shift product with a naive one-clock fp16 adder loop (``naive``,
what exact accumulation buys). The FMA and int8-DSP arrays give one multiplier block to each PE
while the device has them and LUT multipliers to the rest; on ECP5 their PEs use the
MULT18X18D primitive with its own input and output registers (:data:`BLOCK`).

The search, per (device, design), every point a cached job of :mod:`boards.sweep` without
the per-block synthesis (the cache key holds the generator and flow sources, so a changed
design is measured again):

* ECP5: synthesise two probe sizes alone (no harness) and fit the share of the device they use
  (the largest of LUT sites, flip-flops, block RAMs, multiplier blocks) as a line in the number
  of PEs; for a design past the device's multiplier blocks, one more probe with LUT
  multipliers only gives what each PE past them adds. Place and route (exploration mode,
  against the device's default clock) only the largest candidate shape (:func:`shapes`,
  near-square) predicted under :data:`FILL`; if it does not place (or its synthesis fails),
  the prediction is scaled by what that shape measured and the largest shape under the fill
  with at most :data:`STEP_DOWN` of its PEs is placed instead, at most ``--max-pnr`` runs in
  all.
* iCE40, whose logic-cell count only the placer knows: place and route two probe sizes, then
  the largest shape predicted under the fill on the line through the two largest points,
  refitting until the next larger shape is predicted over it, and that next shape too while it
  is predicted within the device (the line overestimates: the placer packs LUTs and
  flip-flops into shared cells); a shape that does not place caps the search.

The record of a (device, design) is its largest placed array: ``rows``, ``cols``, ``luts``,
``ffs``, ``dsps``, ``brams``, ``fmax_mhz`` (median over the seeds), ``gmacs`` (PEs x Fmax, the
whole device), ``stages`` (pipeline depth of the MAC datapath), ``meets_clock`` (Fmax at least
the device's default clock) and ``ratio_vs_best_fp16`` (GMAC/s over the best fp16 FMA array's
on the same device), ``commit`` and ``rtl_fingerprint`` of the sources it was measured with,
``tool_versions`` and ``tool_seconds`` (the flows' time over every point of the search),
``max_pes``, ``max_dsps`` and ``router`` (nextpnr's, ``--router``; ``None`` its default) of the
search, ``command`` (:func:`result_command`: the run's options that decide what is measured) and
``date`` of the run, ``measured`` (false for a cell ``--cached-only`` did not
find). Writes ``<out>/bench.json`` (this run's records; ``commits`` and ``commands`` list
theirs), ``bench.md`` and ``bench.png``; ``--docs`` also merges this run's records into
``docs/results/bench.json`` (:func:`merge`: the cells it did not measure are kept, with their
own commit and command) and writes the merged tables between the markers of
``docs/synthesis.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boards.devices import DEFAULT_TARGET_MHZ, DEVICES  # noqa: E402
from boards.executor import SchedulerError, open_executor, run_side_by_side  # noqa: E402
from boards.flow import ROUTERS  # noqa: E402
from boards.report import add_ratios_vs_best_fp16, write_atomic  # noqa: E402
from boards.report import cell as _fmt  # noqa: E402
from boards.specs import default_array  # noqa: E402
from boards.sweep import job_key, make_job, run_jobs, save_figure  # noqa: E402

#: (board, device) by the short names of ``--devices``.
DEVICE_NAMES = {"up5k": ("ice40", "up5k"), "25f": ("ecp5", "25f"), "85f": ("ecp5", "85f")}

#: The designs: label, spec of an array ``rows x cols`` on a device with ``dsps`` blocks.
DESIGNS = {
    "shift": "shift array, exact fp16, B=3",
    "fma16": "fp16 FMA, fp16 acc",
    "fma16-32": "fp16 FMA, fp32 acc",
    "bf16": "bf16 FMA, fp32 acc",
    "int8-dsp": "int8 MAC, DSP",
    "int8-lut": "int8 MAC, LUT",
    "naive": "shift + naive one-clock fp16 adder",
}
#: The FMA baselines: (input format, accumulation format).
FMA_FORMATS = {"fma16": ("fp16", "fp16"), "fma16-32": ("fp16", "fp32"),
               "bf16": ("bf16", "fp32")}

#: Largest share of a device's LUT sites or flip-flops a searched shape may use: predicted
#: from synthesis on the ECP5 (LUT4s and carry cells), counted by the placer on the iCE40
#: (logic cells: a LUT and a flip-flop share one only when they connect).
FILL = {"ice40": 0.94, "ecp5": 0.85}
#: ... per device where it differs: on the ECP5-85F the shapes predicted past 75 % did not
#: place or route within the limit (docs/synthesis.md), each costing the 2400 s limit.
DEVICE_FILL = {"85f": 0.75}


def fill_for(board: str, device: str) -> float:
    """The fill of a device (:data:`DEVICE_FILL`, else its family's :data:`FILL`)."""
    return DEVICE_FILL.get(device, FILL[board])
#: Whether the resource fit measures a shape by place and route (else synthesis alone).
PROBE_PNR = {"ice40": True, "ecp5": False}
#: Time limit of a place-and-route seed per device (seconds; part of the cache key): a few
#: times what a placement near the fill takes there, so that a stalled placer stops.
PNR_TIMEOUT = {"up5k": 600.0, "25f": 1200.0, "85f": 2400.0}
#: A shape that does not place is replaced by the largest with at most this share of its PEs.
STEP_DOWN = 0.9
#: Probe sizes of the resource fit, per board (iCE40: placed; ECP5: synthesised alone).
PROBES = {"ice40": ((1, 1), (1, 2)), "ecp5": ((2, 2), (4, 4))}
#: Designs that give a multiplier block to each PE while the device has them.
DSP_DESIGNS = ("fma16", "fma16-32", "bf16", "int8-dsp")
#: How the FMA and int8 PEs use a multiplier block, per board (the arrays' ``mult``): on ECP5
#: the MULT18X18D primitive with its own input and output registers; elsewhere ``*``.
BLOCK = {"ecp5": "mult18x18d"}


def design_spec(design: str, rows: int, cols: int, *, dsps: int, depth: int = 512,
                floorplan: str = "compact", block: str = "dsp") -> dict:
    """The :mod:`boards.sweep` spec of ``design`` at ``rows x cols`` on a device with ``dsps``
    multiplier blocks; the shift array with ``floorplan`` (the device's default configuration's,
    :func:`board_floorplan`) and without performance counters (the baselines have none); the
    FMA and int8 arrays' PEs use their blocks as ``block`` says (:data:`BLOCK`)."""
    n = rows * cols
    extra = {} if n <= dsps else {"dsps": dsps}
    fma_extra = {} if block == "dsp" else {"mult": block}   # the default stays out of the key
    if design == "shift":
        config = {"in_fmt": "fp16", "wbits": 3, "rows": rows, "cols": cols, "depth": depth,
                  "counters": False}
        if floorplan != "compact":          # the default stays out of the spec (cache keys)
            config["floorplan"] = floorplan
        return {"kind": "array", "config": config}
    if design in FMA_FORMATS:
        i, a = FMA_FORMATS[design]
        return {"kind": "fma-array", "in_fmt": i, "acc_fmt": a, "rows": rows, "cols": cols,
                **extra, **fma_extra}
    if design == "int8-dsp":
        return {"kind": "int8-array", "mult": block, "rows": rows, "cols": cols, **extra}
    if design == "int8-lut":
        return {"kind": "int8-array", "mult": "lut", "rows": rows, "cols": cols}
    if design == "naive":
        return {"kind": "shift-fpadd", "fmt": "fp16", "wbits": 3, "rows": rows, "cols": cols}
    raise ValueError(f"unknown design {design!r}; expected one of {', '.join(DESIGNS)}")


def stages(spec: dict) -> int:
    """Pipeline depth of a design's MAC datapath: register stages from the operands entering
    the array to the accumulator. Shift array (and its PE): ``ArrayConfig.capture_latency``
    (alignment, PE input register, the PE's own stages); FMA: unpack (2), the operand copies
    (1, arrays), exact product (``boards.fpmac.PRODUCT_STAGES``) and the adder
    (``boards.fpadd.STAGES``); int8: the input copies (1, arrays), operands, product,
    accumulator (3)."""
    if spec["kind"] in ("array", "shift-pe"):
        from contract.array import ArrayConfig

        return ArrayConfig.from_dict(spec["config"]).capture_latency
    if spec["kind"] in ("fma-array", "fma-pe"):
        from boards.fpadd import STAGES
        from boards.fpmac import PRODUCT_STAGES

        return 2 + (spec["kind"] == "fma-array") + PRODUCT_STAGES + STAGES
    if spec["kind"] == "int8-array":
        return 4
    if spec["kind"] == "shift-fpadd":
        return 2                    # product register, one-clock adder loop
    return 3


def shapes(limit: int = 1024) -> list[tuple[int, int]]:
    """Candidate shapes, by PEs: for each product up to ``limit``, its most square
    ``rows x cols`` with ``rows <= cols <= 2 * rows`` (products without one are skipped)."""
    best = {}
    for r in range(1, 33):
        for c in range(r, min(2 * r, 64) + 1):
            n = r * c
            if n <= limit and (n not in best or c - r < best[n][1] - best[n][0]):
                best[n] = (r, c)
    return [best[n] for n in sorted(best)]


def shares(res: dict, board: str, device: str, *, placed: bool = True) -> dict:
    """The shares of the device a synthesised or placed point uses, by resource: block RAMs
    and LUT sites (ECP5: LUT4s plus two per carry cell; iCE40: logic cells, at least the LUTs,
    the flip-flops and the carries) and flip-flops; after place and route (unless ``placed``
    is false), the placer's own counts. Multiplier blocks are not a limit: a design gets LUT
    multipliers past them (:func:`design_spec`)."""
    cap = DEVICES[board][device]
    out = {"bram": res.get("brams", 0) / cap["brams"]}
    for run in (res.get("runs") or []) if placed else []:
        for name, (used, avail) in (run.get("utilisation") or {}).items():
            if name in ("ICESTORM_LC", "TRELLIS_COMB", "TRELLIS_FF"):
                out[name] = max(out.get(name, 0.0), used / avail)
    if len(out) == 1:
        if board == "ecp5":
            out["lut sites"] = (res["luts"] + 2 * res.get("carries", 0)) / cap["luts"]
            out["ffs"] = res["ffs"] / cap["luts"]
        else:
            out["cells"] = max(res["luts"], res["ffs"], res.get("carries", 0)) / cap["luts"]
    return out


def usage(res: dict, board: str, device: str, *, placed: bool = True) -> float:
    """Largest of :func:`shares`."""
    return max(shares(res, board, device, placed=placed).values())


def _predict(points: dict, n: int, extra: dict | None = None, past: int = 0) -> float:
    """Usage at ``n`` PEs: each resource's share on the line through the two largest measured
    points (``points``: PEs -> :func:`shares`), plus ``extra[resource]`` per PE past ``past``;
    the largest."""
    (n0, s0), (n1, s1) = sorted(points.items())[-2:]
    out = []
    for k in s0.keys() & s1.keys():
        u = s1[k] + (s1[k] - s0[k]) / (n1 - n0) * (n - n1)
        out.append(u + (extra or {}).get(k, 0.0) * max(0, n - past))
    return max(out)


def board_floorplan(board: str, device: str) -> str:
    """The floorplan of the device's default array (``configs/<board>_<device>.toml``): the
    whole-device shift array is built the way the board's own configuration is."""
    return default_array(board, device).get("floorplan", "compact")


class NotMeasured(Exception):
    """A point the search needs is not in the cache (``--cached-only``)."""


class Search:
    """The search of one (device, design) (module docstring); ``log`` gets one line per
    point. Every job skips the per-block synthesis (``blocks: False``)."""

    def __init__(self, board, device, design, *, seeds, root, pnr_timeout, max_pnr=2,
                 max_pes=None, max_dsps=None, force=False, cached_only=False, log=print,
                 executor=None, router=None):
        if max_pes is not None and (not isinstance(max_pes, int) or max_pes < 1):
            raise ValueError(f"max_pes must be a positive integer or None, not {max_pes!r}")
        if max_dsps is not None and (not isinstance(max_dsps, int) or isinstance(max_dsps, bool)
                                     or max_dsps < 0):
            raise ValueError(f"max_dsps must be a non-negative integer or None, not "
                             f"{max_dsps!r}")
        self.board, self.device, self.design = board, device, design
        self.executor = executor    # boards.executor (None: this process)
        self.seeds, self.root, self.pnr_timeout = tuple(seeds), root, pnr_timeout
        self.max_pnr, self.force, self.log = max_pnr, force, log
        self.max_pes = max_pes  # no shape with more PEs is searched (None: no cap)
        self.cached_only = cached_only
        # multiplier blocks the arrays may use: the device's, or fewer (LUT multipliers beyond)
        self.dsps = DEVICES[board][device]["dsps"]
        if max_dsps is not None:
            self.dsps = min(self.dsps, max_dsps)
        self.max_dsps = max_dsps
        if router is not None and router not in ROUTERS:
            raise ValueError(f"router must be one of {', '.join(ROUTERS)} or None, not "
                             f"{router!r}")
        self.router = router    # nextpnr's router (None: its default)
        self.points = {}        # PEs -> shares of the device (the fit's measurements)
        self.tried = []         # every placed or failed P&R result
        self.lut_extra = None   # ECP5: extra shares of a PE with LUT multipliers
        self.tool_seconds = 0.0  # the flows' own time over every point used
        self.commit = None      # the commit the last point was measured at

    def _job(self, rows, cols, pnr, dsps=None):
        spec = design_spec(self.design, rows, cols,
                           dsps=self.dsps if dsps is None else dsps,
                           floorplan=board_floorplan(self.board, self.device),
                           block=BLOCK.get(self.board, "dsp"))
        job = make_job(spec, self.board, self.device, seeds=self.seeds if pnr else (),
                       explore=True, root=self.root, pnr_timeout=self.pnr_timeout,
                       router=self.router if pnr else None)
        job.update(pnr=pnr, blocks=False)
        job["workdir"] = str(pathlib.Path(self.root) / job_key(job))
        return job

    @staticmethod
    def _placed(res):
        return not res.get("error") and res.get("fmax_mhz") is not None

    def _run(self, rows, cols, pnr, dsps=None):
        """Run (or read from the cache) one point; returns its result, its usage in
        ``self.points`` unless ``dsps`` overrides the device's multiplier blocks."""
        t0 = time.monotonic()
        job = self._job(rows, cols, pnr, dsps)
        what = "P&R" if pnr else "synth"
        cached = pathlib.Path(job["workdir"]) / "result.json"
        if self.cached_only and not cached.exists():
            raise NotMeasured(f"{rows}x{cols} {what}"
                              + ("" if dsps is None else f" with {dsps} multiplier blocks")
                              + " not measured (--cached-only)")
        if self.cached_only:        # as cached, a failure too (run_jobs would run it again)
            res = json.loads(cached.read_text())
        else:
            res = run_jobs([job], executor=self.executor, force=self.force, progress=False)[0]
        self.tool_seconds += res.get("seconds") or 0.0
        self.commit = res.get("commit") or self.commit
        if res.get("error"):
            self.log(f"  {self.device} {self.design} {rows}x{cols} {what}: {res['error']}")
            if pnr and dsps is None:
                self.tried.append(res)
            return res
        if pnr and dsps is None:
            self.tried.append(res)
        u = usage(res, self.board, self.device)
        fail = pnr and not self._placed(res)
        self.log(f"  {self.device} {self.design} {rows}x{cols} {what}: {res['luts']} LUT "
                 f"{res.get('carries', 0)} carry {res['ffs']} FF {res['dsps']} DSP "
                 f"{res['brams']} BRAM, {u:.0%} of the device"
                 + (f", {res['fmax_mhz']} MHz" if pnr and not fail else "")
                 + (f", not placed: {res.get('pnr_error')}" if fail else "")
                 + f" ({time.monotonic() - t0:.0f} s)")
        if dsps is None and not (fail and self.board == "ice40"):
            # kept as if every PE had a multiplier block (the fit adds the LUT multipliers);
            # measured as the probes are (ECP5: synthesis counts, also of a placed point, so
            # that every point of the fit has the same resources)
            past = max(0, rows * cols - self.dsps)
            self.points[rows * cols] = {
                k: v - (self.lut_extra or {}).get(k, 0.0) * past
                for k, v in shares(res, self.board, self.device,
                                   placed=PROBE_PNR[self.board]).items()}
        return res

    def _measure_lut_extra(self, pick) -> str | None:
        """If ``pick`` has more PEs than the device has multiplier blocks, measure what a PE
        with LUT multipliers adds (the first probe size with none); the error, if any."""
        if (self.design not in DSP_DESIGNS or self.lut_extra is not None or pick is None
                or pick[0] * pick[1] <= self.dsps):
            return None
        r, c = PROBES[self.board][0]
        res = self._run(r, c, PROBE_PNR[self.board], dsps=0)
        if res.get("error") or (PROBE_PNR[self.board] and not self._placed(res)):
            return res.get("error") or res.get("pnr_error")
        lut = shares(res, self.board, self.device)
        probe = self.points[r * c]
        differ = min(r * c, self.dsps)   # the probe's PEs on a block (none: nothing to add)
        self.lut_extra = {k: (v - probe[k]) / differ if differ else 0.0
                          for k, v in lut.items() if k in probe}
        # the points so far as if every PE had a block, as the later ones are kept
        for n, point in self.points.items():
            past = max(0, n - self.dsps)
            self.points[n] = {k: v - self.lut_extra.get(k, 0.0) * past for k, v in point.items()}
        return None

    def run(self) -> dict:
        """The record of the search; with ``cached_only``, a record without a result naming
        the first point the cache does not hold."""
        try:
            return self._search()
        except NotMeasured as exc:
            return dict(self._record(None, str(exc)), measured=False, commit=None)

    def _search(self) -> dict:
        for r, c in PROBES[self.board]:
            res = self._run(r, c, PROBE_PNR[self.board])
            if res.get("error") or r * c not in self.points:
                return self._record(None, res.get("error") or res.get("pnr_error"))
        return self._run_placed() if PROBE_PNR[self.board] else self._run_fitted()

    # -- ECP5: fit from synthesis, place and route the predicted largest shape --------------

    def _fitted(self, n: int) -> float:
        """Usage predicted at ``n`` PEs: the line through the probes, plus
        :attr:`lut_extra` for each PE past the device's multiplier blocks."""
        return _predict(self.points, n, self.lut_extra, self.dsps)

    def _largest(self, cands, *, scale=1.0, limit=math.inf):
        under = [s for s in cands if s[0] * s[1] <= limit
                 and scale * self._fitted(s[0] * s[1]) <= fill_for(self.board, self.device)]
        return under[-1] if under else None

    def _run_fitted(self) -> dict:
        cands = shapes()
        limit = math.inf if self.max_pes is None else self.max_pes
        pick = self._largest(cands, limit=limit)
        error = self._measure_lut_extra(pick)
        if error:
            return self._record(None, error)
        pick = self._largest(cands, limit=limit)
        scale = 1.0
        for _ in range(self.max_pnr):
            if pick is None:
                break
            n = pick[0] * pick[1]
            predicted = self._fitted(n)
            res = self._run(*pick, True)
            if self._placed(res):
                return self._record(res, None, predicted=predicted)
            # refit: scale the prediction by what the shape measured (a shape whose synthesis
            # failed measured nothing), at most STEP_DOWN of it
            scale = 1.0 if (res.get("error") and not res.get("luts")) or predicted <= 0 else max(
                1.0, usage(res, self.board, self.device, placed=False) / predicted)
            limit = STEP_DOWN * n
            pick = self._largest(cands, scale=scale, limit=limit)
        last = self.tried[-1] if self.tried else {}
        return self._record(None, last.get("error") or last.get("pnr_error")
                            or "no shape placed")

    # -- iCE40: every point placed, refit from the two largest ------------------------------

    def _run_placed(self) -> dict:
        cands = shapes()
        fill = fill_for(self.board, self.device)
        # PEs of the smallest shape measured that did not place (or past --max-pes)
        ceiling = math.inf if self.max_pes is None else self.max_pes + 1
        best = max((r for r in self.tried if self._placed(r)), default=None,
                   key=lambda r: r["macs_per_cycle"])
        for _ in range(5):
            under = [s for s in cands if s[0] * s[1] < ceiling
                     and self._fitted(s[0] * s[1]) <= fill]
            guess = under[-1] if under else cands[0]
            if (self.lut_extra is None and self.design in DSP_DESIGNS
                    and guess[0] * guess[1] > self.dsps):
                error = self._measure_lut_extra(guess)
                if error:
                    return self._record(None, error)
                continue            # refit with the LUT multipliers
            n = guess[0] * guess[1]
            if n <= (best["macs_per_cycle"] if best else 0) or n >= ceiling:
                break
            res = self._run(*guess, True)
            if not self._placed(res):
                ceiling = n
                continue
            best = res
            nxt = cands[cands.index(guess) + 1] if guess != cands[-1] else None
            if (usage(res, self.board, self.device) > fill or nxt is None
                    or self._fitted(nxt[0] * nxt[1]) > fill):
                break
        # the line overestimates a shape's cells where the placer packs LUTs and flip-flops
        # together: the next shape is placed too while it is predicted within the device
        if best is not None:
            nxt = next((s for s in cands if s[0] * s[1] > best["macs_per_cycle"]), None)
            if (nxt is not None and nxt[0] * nxt[1] < ceiling and self._fitted(nxt[0] * nxt[1]) <= 1
                    and not (self.design in DSP_DESIGNS and nxt[0] * nxt[1] > self.dsps
                             and self.lut_extra is None)):
                res = self._run(*nxt, True)
                if self._placed(res):
                    best = res
        if best is not None:
            return self._record(best, None)
        last = self.tried[-1] if self.tried else {}
        return self._record(None, last.get("error") or last.get("pnr_error")
                            or "no shape placed")

    def _record(self, res, error, predicted=None) -> dict:
        rec = {"device": self.device, "board": self.board, "design": self.design,
               "label": DESIGNS[self.design],
               "stages": stages(design_spec(self.design, 1, 1, dsps=self.dsps,
                                             block=BLOCK.get(self.board, "dsp"))),
               "target_mhz": DEFAULT_TARGET_MHZ[self.board], "error": error,
               "measured": True, "commit": self.commit, "max_pes": self.max_pes,
               "max_dsps": self.max_dsps, "router": self.router,
               "tool_seconds": round(self.tool_seconds),
               "searched": [{"rows": r["spec"].get("config", r["spec"])["rows"],
                             "cols": r["spec"].get("config", r["spec"])["cols"],
                             "fmax_mhz": r.get("fmax_mhz"),
                             "error": r.get("error") or r.get("pnr_error")}
                            for r in self.tried]}
        if res is not None:
            cfg = res["spec"].get("config", res["spec"])
            rec.update(stages=stages(res["spec"]), rows=cfg["rows"], cols=cfg["cols"],
                       macs=res["macs_per_cycle"],
                       luts=res["luts"], ffs=res["ffs"], carries=res.get("carries"),
                       dsps=res["dsps"], brams=res["brams"], fmax_mhz=res["fmax_mhz"],
                       gmacs=res["gmacs"], seeds=res.get("seeds"),
                       usage=round(usage(res, self.board, self.device), 3),
                       predicted_usage=None if predicted is None else round(predicted, 3),
                       meets_clock=res["fmax_mhz"] >= DEFAULT_TARGET_MHZ[self.board],
                       tool_versions=res.get("tool_versions"), spec=res["spec"],
                       commit=res.get("commit") or "unknown",
                       rtl_fingerprint=res.get("rtl_fingerprint"))
        return rec


#: Stand-alone PEs (one multiplier block each where the device has them): the unit compared
#: with the HardFloat yardstick.
PE_SPECS = {
    "shift PE, exact fp16, B=3": {"kind": "shift-pe", "config": {"in_fmt": "fp16", "wbits": 3}},
    "fp16 FMA PE, fp16 acc": {"kind": "fma-pe", "in_fmt": "fp16", "acc_fmt": "fp16"},
    "fp16 FMA PE, fp32 acc": {"kind": "fma-pe", "in_fmt": "fp16", "acc_fmt": "fp32"},
    "bf16 FMA PE, fp32 acc": {"kind": "fma-pe", "in_fmt": "bf16", "acc_fmt": "fp32"},
    "int8 MAC PE, DSP": {"kind": "int8-pe", "mult": "dsp"},
    "int8 MAC PE, LUT": {"kind": "int8-pe", "mult": "lut"},
}


def pe_records(board, device, *, seeds, root, pnr_timeout, force=False, cached_only=False,
               executor=None):
    """One record per :data:`PE_SPECS` entry on a device (place and route of the PE alone)."""
    out = []
    for label, spec in PE_SPECS.items():
        if board in BLOCK and (spec["kind"] == "fma-pe" or spec.get("mult") == "dsp"):
            spec = {**spec, "mult": BLOCK[board]}
        job = make_job(spec, board, device, seeds=seeds, explore=True, root=root,
                       pnr_timeout=pnr_timeout)
        job["blocks"] = False
        job["workdir"] = str(pathlib.Path(root) / job_key(job))
        cached = pathlib.Path(job["workdir"]) / "result.json"
        measured = not cached_only or cached.exists()
        if not measured:
            res = {"error": "not measured (--cached-only)"}
        elif cached_only:           # as cached, a failure too
            res = json.loads(cached.read_text())
        else:
            res = run_jobs([job], executor=executor, force=force, progress=False)[0]
        rec = {"device": device, "board": board, "design": label, "spec": spec,
               "stages": stages(spec), "error": res.get("error") or res.get("pnr_error"),
               "measured": measured, "commit": res.get("commit")}
        if not res.get("error"):
            rec.update({k: res.get(k) for k in ("luts", "carries", "ffs", "dsps", "fmax_mhz",
                                                "tool_versions", "rtl_fingerprint")})
            rec["commit"] = res.get("commit") or "unknown"
        out.append(rec)
    return out


def pe_table(records) -> str:
    out = ["| device | PE | stages | LUT4 | carries | FFs | DSPs | Fmax MHz | commit |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        out.append(f"| {DEVICES[r['board']][r['device']]['name']} | {r['design']} | "
                   f"{r['stages']} | {_fmt(r.get('luts'))} | {_fmt(r.get('carries'))} | "
                   f"{_fmt(r.get('ffs'))} | {_fmt(r.get('dsps'))} | "
                   f"{_fmt(r.get('fmax_mhz'), '{:.1f}')} | {_fmt(r.get('commit'))} |")
    notes = [f"- {DEVICES[r['board']][r['device']]['name']} {r['design']}: {r['error']}"
             for r in records if r.get("error")]
    return "\n".join(out) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def add_ratios(records) -> None:
    """``ratio_vs_best_fp16``: GMAC/s over the best fp16 FMA array's on the same device."""
    add_ratios_vs_best_fp16(records, group=lambda r: r["device"], metric="gmacs")


def table(records) -> str:
    """The Markdown table of the records, one block of rows per device."""
    out = ["| device | design | array | LUTs | carries | FFs | DSPs | BRAMs | stages | "
           "Fmax MHz | meets clock | GMAC/s | vs best fp16 FMA | flow s | commit |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        name = DEVICES[r["board"]][r["device"]]["name"]
        if r.get("gmacs") is None:
            out.append(f"| {name} | {r['label']} | - | - | - | - | - | - | {r['stages']} | - | "
                       f"- | - | - | {_fmt(r.get('tool_seconds') or None)} | "
                       f"{_fmt(r.get('commit'))} |")
            continue
        out.append(f"| {name} | {r['label']} | {r['rows']}x{r['cols']} | {r['luts']} | "
                   f"{_fmt(r.get('carries'))} | {r['ffs']} | {r['dsps']} | {r['brams']} | "
                   f"{r['stages']} | {r['fmax_mhz']:.1f} | "
                   f"{'yes' if r['meets_clock'] else 'no'} ({r['target_mhz']:g}) | "
                   f"{r['gmacs']:.2f} | {_fmt(r.get('ratio_vs_best_fp16'), '{:.2f}x')} | "
                   f"{_fmt(r.get('tool_seconds') or None)} | {_fmt(r.get('commit'))} |")
    notes = [f"- {DEVICES[r['board']][r['device']]['name']} {r['label']}: {r['error']}"
             + "".join(f"; {t['rows']}x{t['cols']} tried: {t['error']}"
                       for t in r.get("searched") or [] if t.get("error") != r["error"])
             for r in records if r.get("gmacs") is None]
    return "\n".join(out) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def plot(records, path) -> pathlib.Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    devices = list(dict.fromkeys(r["device"] for r in records))
    designs = list(dict.fromkeys(r["design"] for r in records))
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(designs))
    for k, d in enumerate(designs):
        vals = [next((r.get("gmacs") or 0 for r in records
                      if r["device"] == dev and r["design"] == d), 0) for dev in devices]
        ax.bar([i + k * width for i in range(len(devices))], vals, width, label=DESIGNS[d])
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(devices))])
    ax.set_xticklabels([DEVICES[DEVICE_NAMES[d][0]][d]["name"] for d in devices])
    ax.set_ylabel("GMAC/s, whole device")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)
    return save_figure(fig, path)


DOC_BEGIN = "<!-- bench table: generated by benchmarks/bench_hw.py --docs -->"
DOC_END = "<!-- end of bench table -->"


def _order(rec) -> tuple:
    """Sort key of a record: device, then design (or PE) in the order of the tables."""
    devices = [d for _, d in DEVICE_NAMES.values()]
    designs = list(DESIGNS) + list(PE_SPECS)
    return (devices.index(rec["device"]) if rec["device"] in devices else len(devices),
            designs.index(rec["design"]) if rec["design"] in designs else len(designs),
            rec["design"])


#: Options that change where results go or how they are run, not what is measured: the
#: command a record names leaves them out, so it reads the same on every machine and whether
#: the run measured the cell or read it from the cache.
RUN_ONLY = {"--out": 1, "--jobs": 1, "--scheduler": 1, "--docs": 0, "--cached-only": 0,
            "--force": 0}


def result_command(argv) -> str:
    """The command that measures what a run of ``argv`` reports: ``argv`` without the
    :data:`RUN_ONLY` options (run at the record's commit it measures the same cells; with
    ``--cached-only`` it replays them from a cache)."""
    words, skip = [], 0
    for word in argv:
        if skip:
            skip -= 1
            continue
        name = word.split("=", 1)[0]
        if name in RUN_ONLY:
            skip = RUN_ONLY[name] if "=" not in word else 0
            continue
        words.append(word)
    return " ".join(["python benchmarks/bench_hw.py", *words])


def _stamped(rec: dict, doc: dict) -> dict:
    """A record read from an earlier ``doc``, with the fields of this format: ``command`` and
    ``date`` of the run that wrote it when it has none; ``measured`` false for a cell that
    run's ``--cached-only`` did not find."""
    rec = dict(rec)
    rec.setdefault("command", doc.get("command"))
    if (rec["command"] or "").startswith("python benchmarks/bench_hw.py"):
        rec["command"] = result_command(rec["command"].split()[2:])
    rec.setdefault("date", doc.get("date"))
    rec.setdefault("measured", not (rec.get("error") or "").endswith(
        "not measured (--cached-only)"))
    return rec


def merge(old: dict | None, records, pes) -> tuple[list, list]:
    """The records and PE records of ``old`` (an earlier document, or ``None``) with this run's:
    a record of this run replaces the one of the same (device, design), unless this run did
    not measure it (``measured`` false, ``--cached-only``) and ``old`` has a measured one; the
    others are kept as they are, with their own commit and command. Ratios are recomputed over
    the merged records of each device."""
    def merged(old_recs, new_recs):
        out = {(r["device"], r["design"]): _stamped(r, old or {}) for r in old_recs}
        for r in new_recs:
            key = (r["device"], r["design"])
            if r.get("measured", True) or key not in out or not out[key]["measured"]:
                out[key] = r
        return sorted(out.values(), key=_order)
    recs = merged((old or {}).get("records", []), records)
    add_ratios(recs)
    return recs, merged((old or {}).get("pes", []), pes)


def document(records, pes, *, date) -> dict:
    """The JSON document of ``records`` and ``pes``: each record carries its ``commit``,
    ``command`` and ``date``; ``commits`` and ``commands`` list those of the measured ones."""
    done = [r for r in records + pes if r.get("measured", True)]
    return {"date": date, "fill": {**FILL, **DEVICE_FILL}, "records": records, "pes": pes,
            "commits": sorted({r["commit"] for r in done if r.get("commit")}),
            "commands": list(dict.fromkeys(r["command"] for r in done if r.get("command")))}


def commands_md(records, pes) -> str:
    """Markdown list: each command with the cells it measured, by device (the arrays by
    design name, the stand-alone PEs counted)."""
    cells: dict = {}
    for kind, recs in (("array", records), ("pe", pes)):
        for r in recs:
            if r.get("measured", True) and r.get("command"):
                name = DEVICES[r["board"]][r["device"]]["name"]
                by_dev = cells.setdefault(r["command"], {}).setdefault(name, ([], []))
                by_dev[kind == "pe"].append(r["design"])
    if not cells:
        return ""
    out = ["Commands (each row's commit is in its row; run at that commit, a command measures "
           "its cells, with `--cached-only` it replays them from the cache):", ""]
    for cmd, by_dev in cells.items():
        out.append(f"- `{cmd}`: " + "; ".join(
            f"{dev} " + ", ".join(arrays + ([f"{len(pe)} PEs"] if pe else []))
            for dev, (arrays, pe) in by_dev.items()))
    return "\n".join(out) + "\n"


def docs_markdown(records, pes) -> str:
    """The generated part of ``docs/synthesis.md``: the tables and the commands."""
    md = table(records) + ("\n" + pe_table(pes) if pes else "")
    cmds = commands_md(records, pes)
    return md + ("\n" + cmds if cmds else "")


def write_docs(records, pes, *, date, root=None) -> dict:
    """Merge this run's ``records`` and ``pes`` into ``docs/results/bench.json``
    (:func:`merge`) and write it and the table between the markers of ``docs/synthesis.md``;
    returns the merged document."""
    root = ROOT if root is None else root
    path = root / "docs" / "synthesis.md"
    text = path.read_text()
    if DOC_BEGIN not in text or DOC_END not in text:
        raise SystemExit(f"bench_hw: {path} has no bench table markers")
    js = root / "docs" / "results" / "bench.json"
    try:
        old = json.loads(js.read_text()) if js.exists() else None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"bench_hw: {js} is not JSON ({exc}); expected the document "
                         "an earlier --docs wrote") from None
    recs, pe_recs = merge(old, records, pes)
    doc = document(recs, pe_recs, date=date)
    head, rest = text.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    write_atomic(js, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    write_atomic(path, head + DOC_BEGIN + "\n\n" + docs_markdown(recs, pe_recs) + "\n"
                 + DOC_END + tail)
    return doc


def _parse_list(text, allowed, what):
    items = [t for t in text.split(",") if t]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        print(f"bench_hw: unknown {what} {bad[0] if bad else text!r}; expected some of "
              f"{', '.join(allowed)}", file=sys.stderr)
        raise SystemExit(2)
    return items


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/bench_hw.py",
                                description=__doc__.split("\n")[0])
    p.add_argument("--devices", default=",".join(DEVICE_NAMES))
    p.add_argument("--designs", default=",".join(DESIGNS))
    p.add_argument("--seeds", default="1")
    p.add_argument("--out", type=pathlib.Path, default=ROOT / "build" / "bench")
    p.add_argument("--max-pnr", type=int, default=2,
                   help="place-and-route runs per (device, design) at most")
    p.add_argument("--pnr-timeout", type=float, metavar="SECONDS",
                   help="stop a place-and-route seed after this long (default per device: "
                        + ", ".join(f"{d} {t:g} s" for d, t in PNR_TIMEOUT.items()) + ")")
    p.add_argument("--max-pes", type=int, metavar="N",
                   help="search only arrays of at most N PEs (e.g. below a shape known not to "
                        "place within the time limit)")
    p.add_argument("--max-dsps", type=int, metavar="N",
                   help="let the arrays use at most N multiplier blocks, LUT multipliers "
                        "beyond (e.g. 0 where arrays on the blocks do not route)")
    p.add_argument("--router", choices=ROUTERS,
                   help="nextpnr's router (default: nextpnr's, router1)")
    p.add_argument("--force", action="store_true", help="ignore cached points")
    p.add_argument("--cached-only", action="store_true",
                   help="run no tool: report what the cache holds, the rest as not measured")
    p.add_argument("--no-pes", action="store_true", help="no stand-alone PE table")
    p.add_argument("--jobs", type=int, default=1,
                   help="local processes: searches of several (device, design) at once")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run the jobs on the workers of this Dask distributed scheduler, as "
                        "many searches at once as it has worker threads")
    p.add_argument("--docs", action="store_true",
                   help="also write docs/results/bench.json and the table in docs/synthesis.md")
    args = p.parse_args(argv)
    devices = _parse_list(args.devices, DEVICE_NAMES, "device")
    designs = _parse_list(args.designs, DESIGNS, "design")
    try:
        seeds = tuple(int(s) for s in args.seeds.split(","))
    except ValueError:
        print(f"bench_hw: --seeds wants integers like 1,2,3, not {args.seeds!r}",
              file=sys.stderr)
        return 2
    if (args.max_pnr < 1 or (args.pnr_timeout is not None and not args.pnr_timeout > 0)
            or (args.max_pes is not None and args.max_pes < 1)):
        print("bench_hw: --max-pnr, --max-pes and --pnr-timeout must be positive",
              file=sys.stderr)
        return 2
    if args.max_dsps is not None and args.max_dsps < 0:
        print(f"bench_hw: --max-dsps must be 0 or more, not {args.max_dsps}", file=sys.stderr)
        return 2
    try:
        executor = open_executor(scheduler=args.scheduler, workers=args.jobs)
    except (SchedulerError, ValueError) as exc:
        print(f"bench_hw: --scheduler/--jobs: {exc}", file=sys.stderr)
        return 2
    with executor:
        return _bench(args, argv, devices, designs, seeds, executor)


def _bench(args, argv, devices, designs, seeds, executor) -> int:
    t0 = time.monotonic()
    searches = []
    for dev in devices:
        board, device = DEVICE_NAMES[dev]
        for design in designs:
            searches.append(Search(board, device, design, seeds=seeds, root=args.out / "cache",
                                   pnr_timeout=args.pnr_timeout or PNR_TIMEOUT[dev],
                                   max_pnr=args.max_pnr, max_pes=args.max_pes,
                                   max_dsps=args.max_dsps, router=args.router,
                                   force=args.force,
                                   cached_only=args.cached_only,
                                   log=lambda s: print(s, flush=True), executor=executor))

    def search(s):
        print(f"{DEVICES[s.board][s.device]['name']}: {DESIGNS[s.design]}", flush=True)
        return s.run()
    records = run_side_by_side([lambda s=s: search(s) for s in searches], executor.width)
    add_ratios(records)
    pes = []
    for dev in ([] if args.no_pes else devices):
        if dev != "85f":            # the same fabric as the 25F
            pes += pe_records(*DEVICE_NAMES[dev], seeds=seeds, root=args.out / "cache",
                              pnr_timeout=args.pnr_timeout or PNR_TIMEOUT[dev], force=args.force,
                              cached_only=args.cached_only, executor=executor)
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    command = result_command(sys.argv[1:] if argv is None else argv)
    for r in records + pes:
        r.update(command=command, date=date)
    doc = document(records, pes, date=date)
    md = table(records) + ("\n" + pe_table(pes) if pes else "")
    write_atomic(args.out / "bench.json", json.dumps(doc, indent=2, sort_keys=True) + "\n")
    write_atomic(args.out / "bench.md", "# Whole-device throughput\n\n" + md)
    plot(records, args.out / "bench.png")
    if args.docs:
        write_docs(records, pes, date=date)
    print(md)
    print(f"bench_hw: {time.monotonic() - t0:.0f} s; {args.out / 'bench.md'}")
    # a cell this run searched without a result fails the run (a --cached-only miss does not)
    failed = [r for r in records if r.get("measured", True) and r.get("gmacs") is None]
    for r in failed:
        print(f"bench_hw: {DEVICES[r['board']][r['device']]['name']} {r['label']}: no result "
              f"({r.get('error')})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
