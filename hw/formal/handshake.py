"""Harness: valid/ready rules on every channel of any component (``lib.stream``,
AXI4-Stream, AXI4-Lite): on every channel it drives, valid and data hold while stalled, given
inputs that do the same. Sequential: prove with :func:`hw.formal.run_sby`."""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cat, Const, Module, Signal
from amaranth.lib import wiring

__all__ = ["HandshakeRulesProof", "handshake_channels"]


def handshake_channels(component):
    """The valid/ready channels of a component's interfaces: ``(name, source, valid, ready,
    data)`` where ``source`` tells whether the component drives ``valid``. A channel is a
    pair of ports ``<p>valid``/``<p>ready`` inside one interface member (``lib.stream``:
    ``valid``/``ready``/``payload``; AXI4-Stream: ``tvalid``/``tready``/``tdata``/``tlast``;
    AXI4-Lite: the ``aw``, ``w``, ``b``, ``ar``, ``r`` channels); its data are the other ports
    of the member that start with ``<p>`` (for ``p = ""``: those of no other channel)."""
    channels = []
    for name, member in component.signature.members.items():
        if member.is_port:
            continue
        sub = member.signature.members
        iface = getattr(component, name)
        prefixes = [k[:-len("valid")] for k in sub
                    if k.endswith("valid") and k[:-len("valid")] + "ready" in sub]
        taken = {p + suffix for p in prefixes for suffix in ("valid", "ready")}
        for p in sorted(prefixes, key=len, reverse=True):
            data_keys = [k for k in sub if k.startswith(p) and k not in taken
                         and sub[k].is_port]
            taken.update(data_keys)
            channels.append((f"{name}.{p}valid", sub[p + "valid"].flow == wiring.Out,
                             getattr(iface, p + "valid"), getattr(iface, p + "ready"),
                             [getattr(iface, k) for k in data_keys]))
    return channels


class HandshakeRulesProof(wiring.Component):
    """Harness: valid/ready rules on every channel of a component (see
    :func:`handshake_channels`).

    The harness has the component's own signature (its inputs are free inputs of the proof,
    reset included). Channels the component receives on are assumed to follow the rule
    (once ``valid`` is high and ``ready`` low, ``valid`` stays high and the data stay put);
    on channels it drives, the same rule is asserted."""

    def __init__(self, *, dut):
        if not isinstance(dut, wiring.Component):
            raise TypeError(f"dut must be a wiring.Component, not {dut!r}")
        self._dut = dut
        self._channels = handshake_channels(dut)
        if not self._channels:
            raise ValueError(f"{dut!r} has no valid/ready channel")
        super().__init__(dut.signature)

    @property
    def channels(self):
        return [(name, source) for name, source, *_ in self._channels]

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self._dut
        wiring.connect(m, wiring.flipped(self), self._dut)
        for name, source, valid, ready, fields in self._channels:
            tag = name.replace(".", "_")
            stalled = Signal(name=f"{tag}_stalled")
            data_now = Cat(*fields) if fields else Const(0, 1)
            held = Signal(len(data_now), name=f"{tag}_held")
            m.d.sync += [stalled.eq(valid & ~ready), held.eq(data_now)]
            with m.If(stalled):
                if source:
                    m.d.comb += [Assert(valid, f"{name} dropped while stalled"),
                                 Assert(data_now == held, f"{name} data changed while stalled")]
                else:
                    m.d.comb += [Assume(valid), Assume(data_now == held)]
        return m
