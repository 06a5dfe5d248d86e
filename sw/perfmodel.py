"""Cycle-level performance model of the PE array (``densehw_array``, ``docs/array.md``).

:func:`layer_cycles` predicts the ``CYCLES_BUSY`` register of a layer ``(N, K, M)`` on an
:class:`~contract.array.ArrayConfig` when every stream runs without stalls (valid data on both
input streams and ``tready`` on the result stream at every clock). It steps the array's
sequencing at tile granularity, following the documented dataflow:

* **weight loader**: per output channel ``2 + ceil(K*B/32) + K`` clocks (two header words,
  one clock per code word taken, one clock per code written); an M tile fills one of the two
  banks, and the loader moves on to the next M tile as soon as the other bank is free
  (double buffering: a bank is freed when the drain of the last N tile of its M tile is done),
  ``LOADER_DELAY`` clocks after the bank is free or its previous M tile is loaded;
* **compute**: a tile takes ``K`` activation beats, one per clock, once its bank is full; the
  clock after a tile's last beat is a bubble (``RESTART_BUBBLE``);
* **drain**: the last beat of a tile waits until the previous tile's shadow chain is empty; the
  chain is loaded ``CAPTURE_LATENCY`` clocks after that tile's last beat and shifts
  ``rows*cols`` entries, one per clock, into the finalizer;
* **finalizer**: ``config.final_latency`` clocks from an entry leaving the chain to its result beat
  being accepted (its output FIFO is deep enough that a tile's capture never waits for room when
  ``tready`` stays high); the layer ends (``BUSY`` falls) the clock after the last result
  beat, or a clock later in arrays with ``config.done_cut``.

The latencies are those of ``hw/array.py`` as :class:`~contract.array.ArrayConfig` states them
(``capture_latency``, ``final_latency``); ``tests/test_perfmodel.py`` measures the
RTL in the Amaranth simulator and requires agreement within 5%. No Amaranth, no PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.array import ArrayConfig
from contract.weights import WORD_BITS

__all__ = ["LayerPerf", "layer_cycles", "gemm_cycles", "steady_state_cycles", "RESTART_BUBBLE",
           "READY_DELAY", "LOADER_DELAY", "capture_latency"]

#: Clocks lost after the last beat of every tile (the accumulators restart).
RESTART_BUBBLE = 1
#: Clocks from the loader filling a bank to the compute side seeing it full (a register).
READY_DELAY = 1
#: Clocks from a bank being free (at the layer start, or released by the drain) to the loader
#: using it, and the loader's pause after each M tile (its enable is a register).
LOADER_DELAY = 1


def capture_latency(config: ArrayConfig) -> int:
    """Clocks from a tile's last accepted beat to the capture into the shadow chain
    (:attr:`contract.array.ArrayConfig.capture_latency`)."""
    return config.capture_latency


@dataclass(frozen=True)
class LayerPerf:
    """Predicted cost of one layer.

    ``cycles``: clocks with ``BUSY`` (the ``CYCLES_BUSY`` register); ``macs``: ``N*K*M``;
    ``utilization``: ``macs / (cycles * rows * cols)``; ``active_cycles``: clocks consuming an
    activation beat (``CYCLES_ACTIVE``); ``first_load_cycles``: clocks before the first beat
    can be taken (weights of the first M tile); ``tiles``: number of (N, M) tiles.
    """

    n: int
    k: int
    m: int
    cycles: int
    macs: int
    utilization: float
    active_cycles: int
    first_load_cycles: int
    tiles: int

    def macs_per_second(self, clock_hz: float) -> float:
        """Sustained MAC/s of the layer at ``clock_hz``."""
        return self.macs * clock_hz / self.cycles


def _check(config):
    if not isinstance(config, ArrayConfig):
        raise TypeError(f"config must be an ArrayConfig, not {config!r}")


def channel_load_cycles(config: ArrayConfig, k: int) -> int:
    """Clocks the weight loader spends on one output channel."""
    return 2 + -(-k * config.wbits // WORD_BITS) + k


def layer_cycles(config: ArrayConfig, n: int, k: int, m: int) -> LayerPerf:
    """Cycle count of one layer without stalls (see the module docstring)."""
    _check(config)
    config.check_layer(n, k, m)
    rc = config.rows * config.cols
    cap = capture_latency(config)
    chan = channel_load_cycles(config, k)
    m_tiles = [(m0, min(config.cols, m - m0)) for m0 in range(0, m, config.cols)]
    n_tiles = [(n0, min(config.rows, n - n0)) for n0 in range(0, n, config.rows)]

    # Times are clock indices; the START pulse is clock 0 and BUSY is high from clock 1.
    load_start = 1 + LOADER_DELAY  # the loader takes its first word at clock 2
    bank_ready = []              # first clock at which M tile t's bank is full
    bank_free = {}               # M tile t -> first clock its bank is free again
    prev_last = None             # clock of the previous tile's last beat
    last_beat = None
    for t, (_, cols_valid) in enumerate(m_tiles):
        # loader: tile t needs its bank (that of tile t - 2) released
        start = load_start if t < 2 else max(load_start, bank_free[t - 2] + LOADER_DELAY
                                             + config.release_cut)
        done = start + cols_valid * chan          # first clock after the last code write
        bank_ready.append(done)
        load_start = done + LOADER_DELAY
        for i, _ in enumerate(n_tiles):
            first = bank_ready[t] + READY_DELAY
            if prev_last is not None:
                # moving to the next M tile's bank costs one more clock
                first = max(first, prev_last + 1 + RESTART_BUBBLE + (i == 0))
            last_beat = first + k - 1
            if prev_last is not None:    # wait for the previous tile's chain to empty
                last_beat = max(last_beat, prev_last + cap + rc + 2)
            prev_last = last_beat
        # the bank is released when the last N tile's drain shifted its last entry
        bank_free[t] = last_beat + cap + rc + 1
    # last result: entry j of the last tile leaves the chain at capture + 1 + j
    rows_valid, cols_valid = n_tiles[-1][1], m_tiles[-1][1]
    j_last = (rows_valid - 1) * config.cols + (cols_valid - 1)
    last_result = last_beat + cap + 1 + j_last + config.final_latency
    cycles = last_result + config.done_cut    # BUSY high on clocks 1 .. cycles
    macs = n * k * m
    tiles = len(m_tiles) * len(n_tiles)
    return LayerPerf(n=n, k=k, m=m, cycles=cycles, macs=macs,
                     utilization=macs / (cycles * rc), active_cycles=tiles * k,
                     first_load_cycles=bank_ready[0] - 1, tiles=tiles)


def steady_state_cycles(config: ArrayConfig, k: int) -> int:
    """Clocks per tile once the pipeline is full and weights keep up: the larger of the
    compute time ``K + RESTART_BUBBLE`` and the drain period."""
    _check(config)
    rc = config.rows * config.cols
    return max(k + RESTART_BUBBLE, capture_latency(config) + rc + 2)


def gemm_cycles(config: ArrayConfig, n: int, k: int, m: int) -> int:
    """``CYCLES_BUSY`` of one ``(n, k, m)`` layer without stalls: the hook through which
    ``sw.runtime`` (and ``densehw run``'s reports and projections) use this model."""
    return layer_cycles(config, n, k, m).cycles
