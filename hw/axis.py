"""AXI4-Stream port signatures and adapters to ``lib.stream``.

An AXI4-Stream port here has ``tdata``, ``tvalid``, ``tready`` and ``tlast`` (no ``tkeep``,
``tstrb``, ``tid``, ``tdest``, ``tuser``: every byte of every beat is valid). Verilog names
are ``<port>__<signal>``. The adapters are wiring only (no registers, no added latency).
"""

from __future__ import annotations

from amaranth.hdl import Module, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AXIStreamSignature", "connect_axis_in", "connect_axis_out"]


def AXIStreamSignature(width):
    """An AXI4-Stream source (manager) of ``width``-bit ``tdata``; flip it for a sink."""
    if not isinstance(width, int) or isinstance(width, bool) or width <= 0 or width % 8:
        raise ValueError(f"tdata width must be a positive multiple of 8, not {width!r}")
    return wiring.Signature({
        "tdata": Out(width), "tvalid": Out(1), "tready": In(1), "tlast": Out(1),
    })


def connect_axis_in(m: Module, axis, stream, data_field: str, last_field: str = "last"):
    """Drive the ``lib.stream`` input ``stream`` (payload a struct with ``data_field`` and
    ``last_field``) from the AXI4-Stream sink port ``axis``."""
    payload = stream.payload
    field = getattr(payload, data_field)
    m.d.comb += [
        stream.valid.eq(axis.tvalid),
        axis.tready.eq(stream.ready),
        field.eq(axis.tdata[:len(Value.cast(field))]),
        getattr(payload, last_field).eq(axis.tlast),
    ]


def connect_axis_out(m: Module, stream, axis, data_field: str, last_field: str = "last"):
    """Drive the AXI4-Stream source port ``axis`` from the ``lib.stream`` output ``stream``
    (``tdata`` zero-extended)."""
    payload = stream.payload
    m.d.comb += [
        axis.tvalid.eq(stream.valid),
        stream.ready.eq(axis.tready),
        axis.tdata.eq(getattr(payload, data_field)),
        axis.tlast.eq(getattr(payload, last_field)),
    ]
