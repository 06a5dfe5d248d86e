"""The host side of the UART bridge (:mod:`boards.uart_link`, :mod:`boards.board_array`) against
the simulated board image (``LinkTop`` under Verilator on a pseudo-terminal), and its errors
against fake boards on a bare pseudo-terminal: one that never answers, one that answers garbage,
one that never stops sending."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from boards.board_array import BoardArray, config_from_registers
from boards.boards import CMD_GET, CMD_PUSH
from boards.uart_link import BadAnswer, BoardUnavailable, NoAnswer, UartLink
from contract.array import STATUS, ArrayConfig
from densehw.cli import main
from sw.golden import gemm_golden


class FakeBoard:
    """A bare pseudo-terminal: ``answer(chunk) -> bytes`` (or None: silent) for what the host
    sends; ``stream``: bytes sent continuously."""

    def __init__(self, answer=None, stream=None):
        self.master, slave = os.openpty()
        self.port = os.ttyname(slave)
        self._slave = slave
        self._answer, self._stream = answer, stream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        import select

        while not self._stop.is_set():
            if self._stream is not None:
                os.write(self.master, self._stream)
                time.sleep(0.001)
            ready, _, _ = select.select([self.master], [], [], 0.01)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    return
                reply = self._answer(chunk) if self._answer else None
                if reply:
                    os.write(self.master, reply)

    def close(self):
        self._stop.set()
        self._thread.join()
        os.close(self.master)
        os.close(self._slave)


@pytest.fixture
def silent_board():
    board = FakeBoard()
    yield board
    board.close()


def test_no_answer_is_unavailable_and_names_the_port(silent_board, tmp_path, capsys):
    t0 = time.perf_counter()
    with pytest.raises(BoardUnavailable, match=rf"no answer from a board on "
                                               rf"{silent_board.port} within 0.3 s"):
        UartLink(silent_board.port, timeout=0.3).connect()
    assert time.perf_counter() - t0 < 3
    np.save(tmp_path / "x.npy", np.ones((2, 3), np.float16))
    np.save(tmp_path / "w.npy", np.ones((2, 3)))
    for argv in (["board", "info"],
                 ["board", "gemm", "--fmt", "fp16", "--wbits", "3", "--x", str(tmp_path / "x.npy"),
                  "--w", str(tmp_path / "w.npy"), "--out", str(tmp_path / "y.npy")],
                 ["gemm", "--backend", "board", "--fmt", "fp16", "--wbits", "3", "--x",
                  str(tmp_path / "x.npy"), "--w", str(tmp_path / "w.npy"), "--out",
                  str(tmp_path / "y.npy")]):
        rc = main(argv + ["--port", silent_board.port, "--timeout", "0.3"])
        err = capsys.readouterr().err
        assert rc == 3, (argv, err)
        assert err.count("\n") == 1 and silent_board.port in err and "no answer" in err, err
        assert not (tmp_path / "y.npy").exists()


def test_missing_port_is_unavailable(capsys):
    assert main(["board", "info", "--port", "/dev/densehw-no-such-port"]) == 3
    err = capsys.readouterr().err
    assert "cannot open serial port '/dev/densehw-no-such-port'" in err
    assert err.count("\n") == 1


def test_garbage_answer_is_a_clear_error(capsys):
    board = FakeBoard(answer=lambda chunk: b"x" * len(chunk))
    try:
        with pytest.raises(BadAnswer, match=rf"on {board.port} answered 78 to the link check "
                                            r"'I', expected 'D'"):
            UartLink(board.port, timeout=0.5).connect()
        assert main(["board", "info", "--port", board.port, "--timeout", "0.5"]) == 2
        err = capsys.readouterr().err
        assert "answered 78 to the link check" in err and err.count("\n") == 1
    finally:
        board.close()
    board = FakeBoard(stream=b"\x55" * 64)
    try:
        with pytest.raises(BadAnswer, match=rf"the board on {board.port} does not stop sending"):
            UartLink(board.port, timeout=0.3).connect()
    finally:
        board.close()


def test_link_errors_and_arguments():
    with pytest.raises(ValueError, match="baud must be a positive integer, not 0"):
        UartLink("/dev/null", baud=0)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        UartLink("/dev/null", timeout=0)
    with pytest.raises(TypeError, match="port must be a non-empty string"):
        UartLink("")
    regs = ArrayConfig().register_resets()
    assert config_from_registers(regs) == ArrayConfig()
    assert config_from_registers(ArrayConfig(in_fmt="bf16", out_fmt="fp32", rows=3, cols=5,
                                             depth=64, e0_min=-20, e0_max=-3, pipeline=1,
                                             wbits=5).register_resets()) == ArrayConfig(
        in_fmt="bf16", out_fmt="fp32", rows=3, cols=5, depth=64, e0_min=-20, e0_max=-3,
        pipeline=1, wbits=5)
    with pytest.raises(ValueError, match="depth must be a power of two"):
        config_from_registers(dict(regs, DEPTH=100))
    with pytest.raises(ValueError, match=r"identification registers .* describe no array"):
        config_from_registers(dict(regs, GEOMETRY=regs["GEOMETRY"] | 1 << 30))


def test_resync_after_interrupted_commands(simulated_board):
    """A host that gave up in the middle of a command (a get that waits for a beat, a push that
    waits for its channel, a half-sent push) leaves the bridge waiting; ``sync`` brings it back
    (a byte ends any wait) and ``'R'`` restarts the array."""
    link = UartLink(simulated_board.port, timeout=0.3)
    board = BoardArray(link)
    cfg = board.connect()
    assert cfg == ArrayConfig()
    ins, outs = board._ins, board._outs
    # a get of a result that never comes
    with pytest.raises(NoAnswer, match=rf"no answer from the board on {simulated_board.port} "
                                       r"within 0.3 s to a get from output channel 0"):
        link.get(*outs["m_axis_res.t"])
    link.sync()
    assert board.read("ID") == 0x44534841
    # pushes that wait: the array takes no activation before a layer starts
    ch, nb = ins["s_axis_act.t"]
    link.push(ch, 1, nb)                        # held by the bridge
    with pytest.raises(NoAnswer, match="to a push to input channel 0"):
        link.push(ch, 2, nb)                    # waits for the first to be taken
    link.sync()
    # half a command
    link._write(bytes([CMD_PUSH, ins["s_axil.w"][0], 1, 2]))
    link.sync()
    link._write(bytes([CMD_GET]))
    link.sync()
    link.reset_design()                         # drops the beats the bridge still held
    assert board.read("STATUS") == 0 and board.read("ERROR") == 0
    # a layer left running: BUSY until the array is reset
    board.write("N", 4)
    board.write("K", 8)
    board.write("M", 4)
    board.write("CTRL", 1)
    assert board.read("STATUS") & STATUS["BUSY"]
    link.reset_design()
    assert board.read("STATUS") == 0 and board.read("ERROR") == 0
    rng = np.random.default_rng(5)
    x = rng.integers(0, 0x7C00, (3, 8))
    codes = rng.integers(0, 8, (4, 8))
    y, stats = board.gemm(x, codes, -2)
    want = gemm_golden(x, codes, -2, in_fmt="fp16", wbits=3).numpy()
    assert np.array_equal(y, want)
    assert stats["cycles"] > 0 and stats["macs"] == 3 * 8 * 4
    link.close()


def test_board_array_refuses_gemms_that_do_not_fit(simulated_board):
    board = BoardArray(UartLink(simulated_board.port))
    board.connect()
    x = np.zeros((2, 3), np.int64)
    codes = np.zeros((4, 3), np.int64)
    with pytest.raises(ValueError, match="K=513 exceeds the depth 512"):
        board.gemm(np.zeros((2, 513), np.int64), np.zeros((4, 513), np.int64), 0)
    with pytest.raises(ValueError, match=r"e0 8..8 is outside the range \[-8, 7\]"):
        board.gemm(x, codes, 8)
    with pytest.raises(ValueError, match="codes hold a value outside"):
        board.gemm(x, codes + 8, 0)
    with pytest.raises(ValueError, match="X holds a value outside the raw fp16"):
        board.gemm(x + (1 << 16), codes, 0)
    y, _ = board.gemm(x, codes, 0)             # the link is still in step
    assert y.shape == (2, 4)
    board.link.close()


@pytest.mark.slow
def test_icebreaker_image_without_counters():
    """The iCEBreaker image's array (configs/icebreaker.toml, no performance counters) under
    Verilator: a GEMM over the link is bit-exact against the golden model, and the host reports
    no cycles (the counters read 0) rather than a count of zero."""
    import shutil

    if shutil.which("verilator") is None:
        pytest.skip("verilator not installed")
    from boards.board_sim import SimulatedBoard
    from boards.boards import board_spec

    cfg = ArrayConfig.from_dict(board_spec("icebreaker")["config"])
    assert not cfg.counters
    with SimulatedBoard(config=cfg) as sim:
        board = BoardArray(UartLink(sim.port))
        have = board.connect()
        assert have.register_resets() == cfg.register_resets()
        rng = np.random.default_rng(7)
        x = rng.integers(0, 0x7C00, (3, 8))
        codes = rng.integers(0, 8, (5, 8))
        y, stats = board.gemm(x, codes, 1, relu=True)
        want = gemm_golden(x, codes, 1, in_fmt="fp16", wbits=3, relu=True).numpy()
        assert np.array_equal(y, want), "seed 7: mismatch"
        assert stats["cycles"] is None and stats["macs"] == 3 * 8 * 5, stats
        assert board.read("CYCLES_BUSY") == 0
        board.link.close()
