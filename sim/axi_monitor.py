"""Passive AXI protocol monitors, fed one sample of a port per clock (pure Python).

A bench samples the port's signals once per clock at a point where they are stable for the
coming clock edge (e.g. the falling edge, when inputs change at the rising edge) and calls
``sample``. The monitors only read signals: they never see the drivers' intent, so a broken
driver is caught as readily as a broken design.

:class:`StreamMonitor` (AXI4-Stream: ``tvalid``, ``tready``, ``tdata``, ``tlast``)
    Once ``tvalid`` is high and ``tready`` low, ``tvalid`` stays high and ``tdata``/``tlast``
    stay put until the transfer. Counts transfers, ``tlast`` s, stalled clocks (``tvalid`` and
    not ``tready``) and clocks without ``tvalid``, and keeps the transferred beats.
:class:`AxiLiteMonitor` (AXI4-Lite: ``aw``, ``w``, ``b``, ``ar``, ``r``)
    The same rule on each of the five channels (address, data, strobes, responses); a write
    response only for a write whose address and data were both taken, a read response only
    for a taken read address; responses ``OKAY``; the transactions in order, with
    :meth:`AxiLiteMonitor.idle_problems` for what is still outstanding.

:func:`framing_problems` compares the ``tlast`` positions of a sequence of beats with the
frame lengths a framing rule demands.

While reset is high the monitors drop their state: AXI requires nothing of a channel in reset.
"""

from __future__ import annotations

__all__ = ["StreamMonitor", "AxiLiteMonitor", "framing_problems", "Counts"]

_MAX_VIOLATIONS = 50        # messages kept per monitor (all are counted)


class Counts:
    """Running counters of a monitor; :meth:`snapshot` and differences give a window's."""

    FIELDS = ("transfers", "lasts", "stalls", "idle", "clocks")

    def __init__(self):
        for f in self.FIELDS:
            setattr(self, f, 0)

    def snapshot(self) -> dict:
        return {f: getattr(self, f) for f in self.FIELDS}

    def since(self, snap: dict) -> dict:
        return {f: getattr(self, f) - snap[f] for f in self.FIELDS}


class StreamMonitor:
    """AXI4-Stream rules on one port. ``keep_beats``: record every transfer's
    ``(tdata, tlast)`` in :attr:`beats` (the consumer takes and clears them)."""

    def __init__(self, name: str, *, keep_beats: bool = True):
        self.name = name
        self.keep_beats = keep_beats
        self.beats: list[tuple[int, int]] = []
        self.counts = Counts()
        self.violations = 0
        self.messages: list[str] = []
        self._held = None                     # (tdata, tlast) stalled in the previous clock

    def _violate(self, cycle: int, text: str) -> None:
        self.violations += 1
        if len(self.messages) < _MAX_VIOLATIONS:
            self.messages.append(f"{self.name} clock {cycle}: {text}")

    def sample(self, cycle: int, rst: int, valid: int, ready: int, data: int, last: int) -> None:
        c = self.counts
        if rst:
            self._held = None
            return
        c.clocks += 1
        held = self._held
        if held is not None:
            if not valid:
                self._violate(cycle, f"tvalid dropped before tready (beat {held[0]:#x} "
                                     f"withdrawn)")
            elif (data, last) != held:
                self._violate(cycle, f"tdata/tlast changed while stalled: {held[0]:#x}/"
                                     f"{held[1]} -> {data:#x}/{last}")
        if not valid:
            c.idle += 1
            self._held = None
            return
        if ready:
            c.transfers += 1
            c.lasts += last
            if self.keep_beats:
                self.beats.append((data, last))
            self._held = None
        else:
            c.stalls += 1
            self._held = (data, last)


def framing_problems(name: str, lasts, frames) -> list[str]:
    """``lasts``: the ``tlast`` bit of each transferred beat, in order; ``frames``: the frame
    lengths the framing demands (``tlast`` on the last beat of each). Problems as text."""
    lasts = list(lasts)
    want = []
    for n in frames:
        want += [0] * (n - 1) + [1]
    if lasts == want:
        return []
    if len(lasts) != len(want):
        head = f"{name}: {len(lasts)} beats, expected {len(want)}"
    else:
        head = f"{name}: {len(lasts)} beats"
    diff = next((i for i, (a, b) in enumerate(zip(lasts, want, strict=False)) if a != b), None)
    if diff is not None:
        head += f"; tlast at beat {diff} is {lasts[diff]}, the framing says {want[diff]}"
    return [head]


class _Channel:
    """valid/ready rule of one AXI4-Lite channel."""

    def __init__(self, owner, name):
        self.owner = owner
        self.name = name
        self.held = None
        self.count = 0

    def sample(self, cycle, valid, ready, payload) -> bool:
        """True when a transfer happens at the coming edge."""
        held = self.held
        if held is not None:
            if not valid:
                self.owner._violate(cycle, f"{self.name}valid dropped before {self.name}ready")
            elif payload != held:
                self.owner._violate(cycle, f"{self.name} channel changed while stalled: "
                                           f"{held} -> {payload}")
        if valid and ready:
            self.held = None
            self.count += 1
            return True
        self.held = payload if valid else None
        return False


class AxiLiteMonitor:
    """AXI4-Lite rules on one register port. :attr:`writes` and :attr:`reads` list the
    completed transactions in order: ``(addr, data, strb)`` and ``(addr, data)``."""

    def __init__(self, name: str = "s_axil"):
        self.name = name
        self.violations = 0
        self.messages: list[str] = []
        self.writes: list[tuple[int, int, int]] = []
        self.reads: list[tuple[int, int]] = []
        self._reset_state()

    def _reset_state(self):
        self.aw, self.w, self.b = (_Channel(self, n) for n in ("aw", "w", "b"))
        self.ar, self.r = (_Channel(self, n) for n in ("ar", "r"))
        self._aw_q: list[int] = []
        self._w_q: list[tuple[int, int]] = []
        self._write_q: list[tuple[int, int, int]] = []   # both taken, awaiting b
        self._ar_q: list[int] = []

    def _violate(self, cycle: int, text: str) -> None:
        self.violations += 1
        if len(self.messages) < _MAX_VIOLATIONS:
            self.messages.append(f"{self.name} clock {cycle}: {text}")

    def sample(self, cycle: int, rst: int, s: dict) -> None:
        """``s``: the port's signals by AXI name (``awvalid``, ``awready``, ``awaddr``,
        ``wvalid``, ``wready``, ``wdata``, ``wstrb``, ``bvalid``, ``bready``, ``bresp``,
        ``arvalid``, ``arready``, ``araddr``, ``rvalid``, ``rready``, ``rdata``, ``rresp``)."""
        if rst:
            self._reset_state()
            return
        if self.aw.sample(cycle, s["awvalid"], s["awready"], s["awaddr"]):
            self._aw_q.append(s["awaddr"])
        if self.w.sample(cycle, s["wvalid"], s["wready"], (s["wdata"], s["wstrb"])):
            self._w_q.append((s["wdata"], s["wstrb"]))
        while self._aw_q and self._w_q:
            data, strb = self._w_q.pop(0)
            self._write_q.append((self._aw_q.pop(0), data, strb))
        if s["bvalid"] and not self._write_q:
            self._violate(cycle, "bvalid without a write whose address and data were taken")
        if self.b.sample(cycle, s["bvalid"], s["bready"], s["bresp"]):
            if s["bresp"] != 0:
                self._violate(cycle, f"bresp {s['bresp']} (expected OKAY)")
            if self._write_q:
                self.writes.append(self._write_q.pop(0))
        if self.ar.sample(cycle, s["arvalid"], s["arready"], s["araddr"]):
            self._ar_q.append(s["araddr"])
        if s["rvalid"] and not self._ar_q:
            self._violate(cycle, "rvalid without a read address taken")
        if self.r.sample(cycle, s["rvalid"], s["rready"], (s["rdata"], s["rresp"])):
            if s["rresp"] != 0:
                self._violate(cycle, f"rresp {s['rresp']} (expected OKAY)")
            if self._ar_q:
                self.reads.append((self._ar_q.pop(0), s["rdata"]))

    def idle_problems(self) -> list[str]:
        """What is outstanding now (call when the master has nothing in flight)."""
        out = []
        if self._aw_q or self._w_q:
            out.append(f"{self.name}: {len(self._aw_q)} write addresses and {len(self._w_q)} "
                       f"write data beats without their partner")
        if self._write_q:
            out.append(f"{self.name}: {len(self._write_q)} writes without a response")
        if self._ar_q:
            out.append(f"{self.name}: {len(self._ar_q)} reads without a response")
        return out
