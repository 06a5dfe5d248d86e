# amaranth: UnusedElaboratable=no
"""Board builds (``boards.boards``): the UART host link in simulation, the bitstreams."""


import pytest
from synth_data import ROOT, needs_yowasp  # noqa: E402  (tests/ helper)

from boards import logs
from boards.specs import default_spec

DIV = 4


async def _uart_send(ctx, pin, byte):
    for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
        ctx.set(pin, bit)
        await ctx.tick().repeat(DIV)


async def _uart_recv(ctx, pin, timeout=4000):
    for _ in range(timeout):
        if not ctx.get(pin):
            break
        await ctx.tick()
    else:
        raise AssertionError("no start bit on tx")
    await ctx.tick().repeat(DIV + DIV // 2)
    value = 0
    for i in range(8):
        value |= ctx.get(pin) << i
        await ctx.tick().repeat(DIV)
    return value


def test_board_link_one_transaction():
    """Push one beat into a 1x1 int8 MAC through the UART link, read the result back."""
    from amaranth.sim import Simulator

    from boards.baselines import MacArray
    from boards.boards import CMD_GET, CMD_INFO, CMD_PUSH, LinkTop, channels

    dut = LinkTop(MacArray(arith="int8", rows=1, cols=1), divisor=DIV)
    ins, outs = channels(dut.design)
    assert [(n, w) for n, *_, w in ins] == [("i", 23)] and [(n, w) for n, *_, w in outs] == \
        [("o", 32)]
    x, w = -7, 93                                      # payload: x | w << 8 | last << 16
    beat = (x & 0xFF) | ((w & 0xFF) << 8) | (1 << 16)
    replies = []

    async def host(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        await _uart_send(ctx, dut.rx, CMD_INFO)
        replies.append(await _uart_recv(ctx, dut.tx))
        for b in [CMD_PUSH, 0] + list(beat.to_bytes(3, "little")):
            await _uart_send(ctx, dut.rx, b)
        replies.append(await _uart_recv(ctx, dut.tx))
        for b in (CMD_GET, 0):
            await _uart_send(ctx, dut.rx, b)
        data = [await _uart_recv(ctx, dut.tx) for _ in range(4)]
        replies.append(int.from_bytes(bytes(data), "little"))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host)
    sim.run()
    assert replies == [ord("D"), CMD_PUSH, (x * w) & 0xFFFFFFFF], replies


def test_board_link_abort_and_reset():
    """A byte ends a get that waits for a beat (no answer, the byte is consumed), and ``'R'``
    resets the design: a result it held is gone, so a later get waits again (and is ended the
    same way). Without either, the link checks below get no ``'D'``."""
    from amaranth.sim import Simulator

    from boards.baselines import MacArray
    from boards.boards import CMD_GET, CMD_INFO, CMD_PUSH, CMD_RESET, LinkTop

    dut = LinkTop(MacArray(arith="int8", rows=1, cols=1), divisor=DIV)
    beat = 3 | (5 << 8) | (1 << 16)
    replies = []

    async def silent(ctx, clocks=600):
        try:
            return await _uart_recv(ctx, dut.tx, timeout=clocks)
        except AssertionError:
            return None

    async def host(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        for b in (CMD_GET, 0):                          # nothing to get: the bridge waits
            await _uart_send(ctx, dut.rx, b)
        replies.append(await silent(ctx))
        await _uart_send(ctx, dut.rx, CMD_INFO)         # ends the wait, consumed
        replies.append(await silent(ctx))
        await _uart_send(ctx, dut.rx, CMD_INFO)
        replies.append(await _uart_recv(ctx, dut.tx))
        for b in [CMD_PUSH, 0] + list(beat.to_bytes(3, "little")):
            await _uart_send(ctx, dut.rx, b)
        replies.append(await _uart_recv(ctx, dut.tx))
        await ctx.tick().repeat(50)                     # the MAC holds its result
        await _uart_send(ctx, dut.rx, CMD_RESET)
        replies.append(await _uart_recv(ctx, dut.tx))
        for b in (CMD_GET, 0):                          # the result went with the reset
            await _uart_send(ctx, dut.rx, b)
        replies.append(await silent(ctx))
        await _uart_send(ctx, dut.rx, CMD_INFO)
        await _uart_send(ctx, dut.rx, CMD_INFO)
        replies.append(await _uart_recv(ctx, dut.tx))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host)
    sim.run()
    assert replies == [None, None, ord("D"), CMD_PUSH, CMD_RESET, None, ord("D")], replies


def test_board_build_refuses_a_bad_configuration(tmp_path, capsys):
    from boards.boards import main

    bad = tmp_path / "bad.toml"
    bad.write_text("rows = 2\ncolumns = 2\n")
    for argv in (["--config", str(bad)], ["--config", str(tmp_path / "missing.toml")]):
        assert main(argv + ["--build-dir", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


@needs_yowasp
@pytest.mark.slow
def test_icebreaker_bitstream():
    from boards.baselines import MacArray
    from boards.boards import build_board

    out = build_board("icebreaker", lambda: MacArray(arith="int8", rows=1, cols=1),
                      build_dir=ROOT / "build" / "test-synth" / "boards")
    assert out.stat().st_size > 100_000            # a full UP5K image


@needs_yowasp
@pytest.mark.slow
def test_icebreaker_default_array_places():
    """The image `make bitstream` builds (configs/icebreaker.toml: the UP5K's default array
    without counters, behind the UART link) places and routes at the board's 12 MHz: the UP5K
    has few logic cells to spare (with the counters nextpnr finds no legal placement)."""
    from boards.boards import board_spec, build_board, component_from_spec
    from contract.array import ArrayConfig

    spec = board_spec("icebreaker")
    cfg = ArrayConfig.from_dict(spec["config"])
    up5k = ArrayConfig.from_dict(default_spec("ice40", "up5k")["config"])
    assert cfg.register_resets() == up5k.register_resets() and not cfg.counters
    out = build_board("icebreaker", lambda: component_from_spec(spec),
                      build_dir=ROOT / "build" / "test-synth" / "boards-default")
    assert out.stat().st_size > 100_000            # a full UP5K image
    timing = logs.parse_nextpnr_log((out.parent / "densehw_icebreaker.tim").read_text())
    assert timing["passed"], timing


#: The JTAG IDCODE each ULX3S image's VERIFY_ID command checks.
ULX3S_IDCODE = {"25f": "41111043", "85f": "41113043"}


@needs_yowasp
@pytest.mark.slow
@pytest.mark.parametrize("device", sorted(ULX3S_IDCODE))
def test_ulx3s_bitstream(device):
    """The ECP5 board images: a 2x2 shift array behind the UART link on the ULX3S-25F and the
    ULX3S-85F."""
    from boards.boards import build_board, component_from_spec

    spec = {"kind": "array", "config": {"rows": 2, "cols": 2}}
    board = f"ulx3s-{device}"
    out = build_board(board, lambda: component_from_spec(spec, family="ecp5"),
                      build_dir=ROOT / "build" / "test-synth" / "boards")
    # amaranth-boards packs ULX3S images with ``ecppack --compress`` (a 2x2 gives ~160 kB, not
    # the ~580 kB of an uncompressed LFE5U-25F image): check the image's header instead
    image = out.read_bytes()
    part = f"Part: LFE5U-{device.upper()}".encode()
    assert out.suffix == ".bit" and part in image[:64], image[:64]
    preamble = image.find(b"\xff\xff\xbd\xb3")
    verify_id = image.find(bytes.fromhex("e2000000" + ULX3S_IDCODE[device]))
    assert 0 <= preamble < verify_id < 128, (preamble, verify_id)
    assert len(image) > 100_000, len(image)
    timing = logs.parse_nextpnr_log((out.parent / f"densehw_ulx3s_{device}.tim").read_text())
    assert timing["passed"], timing


def test_board_link_array_register_access():
    """Through the UART link on the shift array: read the ID register (AXI4-Lite ar/r), write
    a register (aw and w held together, answered on b) and read it back."""
    from amaranth.sim import Simulator

    from boards.boards import CMD_GET, CMD_PUSH, LinkTop, channels, component_from_spec
    from contract.array import ID_MAGIC, REGISTER_BY_NAME

    dut = LinkTop(component_from_spec({"kind": "array", "config": {"rows": 2, "cols": 2,
                                                                    "depth": 16}}), divisor=DIV)
    ins, outs = channels(dut.design)
    cin = {n: (j, -(-w // 8)) for j, (n, *_, w) in enumerate(ins)}
    cout = {n: (j, -(-w // 8)) for j, (n, *_, w) in enumerate(outs)}
    n_addr = REGISTER_BY_NAME["N"].offset
    got = []

    async def push(ctx, name, value):
        j, nb = cin[name]
        for b in [CMD_PUSH, j] + list(value.to_bytes(nb, "little")):
            await _uart_send(ctx, dut.rx, b)
        assert await _uart_recv(ctx, dut.tx, timeout=20000) == CMD_PUSH

    async def get(ctx, name):
        j, nb = cout[name]
        for b in (CMD_GET, j):
            await _uart_send(ctx, dut.rx, b)
        data = [await _uart_recv(ctx, dut.tx, timeout=20000) for _ in range(nb)]
        return int.from_bytes(bytes(data), "little")

    async def host(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        await push(ctx, "s_axil.ar", 0x00)
        got.append(await get(ctx, "s_axil.r"))
        await push(ctx, "s_axil.aw", n_addr)
        await push(ctx, "s_axil.w", 1234 | (0xF << 32))        # wdata | wstrb << 32
        got.append(await get(ctx, "s_axil.b"))
        await push(ctx, "s_axil.ar", n_addr)
        got.append(await get(ctx, "s_axil.r"))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host)
    sim.run()
    assert got == [ID_MAGIC, 0, 1234], [hex(v) for v in got]   # rdata | rresp << 32 (OKAY)
