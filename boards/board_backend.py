"""The ``board`` backend: array GEMMs on a board image (``make bitstream``) over its serial port.

Importing this module registers ``board`` in :mod:`sw.backends`, with the options ``--port``
(required: the board's serial device, e.g. ``/dev/ttyUSB0``), ``--baud`` (115200, the images')
and ``--timeout`` (seconds allowed for each answer, default 2). The factory
``factory(array_config, *, port, baud, timeout, progress=None)`` opens the port, synchronises
with the UART bridge, resets the array and reads its configuration
(:class:`boards.board_array.BoardArray`); a port that cannot be opened or a board that does not
answer raises :class:`sw.backends.BackendUnavailable` (``densehw`` exits with code 3). With an
``array_config`` (a compiled program's) the board must hold exactly that array, else
``ValueError`` naming both; with ``None`` the GEMMs run on whatever array the board holds.

Each ``gemm(...)`` call (signature of :func:`sw.golden.gemm_golden`) streams the whole GEMM
through the link and returns ``(bits, stats)``: the array's counters after the layer
(``cycles`` = ``CYCLES_BUSY``; on a board the UART, not the array, sets the pace), ``macs``,
``mac_utilization``, the link's bytes and seconds. ``progress``: a bar on stderr per GEMM
(``None``: when stderr is a terminal). One connection per port is open at a time: a new factory
call on the same port closes the previous one.
"""

from __future__ import annotations

import atexit
import sys

from sw.backends import BackendUnavailable, Option, register_backend

from .uart_link import DEFAULT_BAUD, DEFAULT_TIMEOUT

__all__ = ["OPTIONS", "factory", "close_all"]

OPTIONS = (
    Option("--port", "serial port of the board image, e.g. /dev/ttyUSB0",
           metavar="DEV"),
    Option("--baud", f"baud rate of the board's UART (default {DEFAULT_BAUD}, the images')",
           type=int, default=DEFAULT_BAUD, metavar="B"),
    Option("--timeout", f"seconds allowed for each answer of the board (default "
           f"{DEFAULT_TIMEOUT:g})", type=float, default=DEFAULT_TIMEOUT, metavar="S"),
)

_OPEN: dict = {}            # port -> BoardArray with an open link


def close_all() -> None:
    """Close every open board connection."""
    for board in list(_OPEN.values()):
        board.link.close()
    _OPEN.clear()


atexit.register(close_all)


def _same_array(a, b) -> bool:
    """Same identification registers (all the board can tell about its array)."""
    from .board_array import IDENT_REGISTERS

    ra, rb = a.register_resets(), b.register_resets()
    return all(ra[k] == rb[k] for k in IDENT_REGISTERS)


def factory(array_config, *, port=None, baud=DEFAULT_BAUD, timeout=DEFAULT_TIMEOUT,
            progress=None):
    """``gemm`` running on the board at ``port`` (see the module docstring)."""
    from .board_array import BoardArray
    from .uart_link import BoardUnavailable, UartLink

    if not port:
        raise ValueError("--backend board needs --port, the serial port of the board image "
                         "(e.g. /dev/ttyUSB0)")
    previous = _OPEN.pop(port, None)
    if previous is not None:
        previous.link.close()
    board = BoardArray(UartLink(port, baud=baud, timeout=timeout))
    try:
        have = board.connect()
    except BoardUnavailable as exc:
        raise BackendUnavailable(str(exc)) from None
    except BaseException:
        board.link.close()
        raise
    if array_config is not None and not _same_array(have, array_config):
        board.link.close()
        raise ValueError(f"the board on {port} holds the array {have.name} ({have.rows}x"
                         f"{have.cols}, depth {have.depth}, {have.in_fmt.name}, B={have.wbits}); "
                         f"this needs {array_config.name} ({array_config.rows}x"
                         f"{array_config.cols}, depth {array_config.depth}, "
                         f"{array_config.in_fmt.name}, B={array_config.wbits}): flash an image "
                         f"of that array (make bitstream CONFIG=...) or compile for the board's "
                         f"(densehw board info --port {port} --save CFG.json)")
    _OPEN[port] = board
    want = have if array_config is None else array_config
    show = sys.stderr.isatty() if progress is None else bool(progress)

    def gemm(x_bits, codes, e0, *, in_fmt, wbits, out_fmt, bias_bits, relu, config):
        from contract import get_format

        for what, got, need in (("in_fmt", get_format(in_fmt), want.in_fmt),
                                ("out_fmt", get_format(out_fmt or in_fmt), want.out_fmt)):
            if (got.exp_bits, got.frac_bits) != (need.exp_bits, need.frac_bits):
                raise ValueError(f"the board on {port} holds {want.name}: GEMM has {what}="
                                 f"{got.name}, the array has {need.name}")
        if wbits != want.wbits:
            raise ValueError(f"the board on {port} holds {want.name}: GEMM has wbits={wbits}, "
                             f"the array has {want.wbits}")
        if config is not None and config != want.dot_config:
            raise ValueError(f"the board on {port} holds {want.name}: GEMM has config="
                             f"{config!r}, the array has {want.dot_config!r}")
        x, c, e, b = _np(x_bits), _np(codes), _np(e0), None if bias_bits is None else \
            _np(bias_bits)
        e = e if e.ndim else int(e)
        bar = None
        if show:
            from tqdm import tqdm

            n, k, m = x.shape[0], x.shape[1], c.shape[0]
            bar = tqdm(total=1, unit="beat", desc=f"board ({n}, {k}, {m})", leave=False,
                       file=sys.stderr, dynamic_ncols=True)

        def step(done, total):
            bar.total = total
            bar.update(done - bar.n)

        try:
            return board.gemm(x, c, e, bias_bits=b, relu=bool(relu),
                              progress=step if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()

    gemm.__name__ = "board_gemm"
    gemm.close = board.link.close
    gemm.board = board
    return gemm


def _np(v):
    import numpy as np

    if hasattr(v, "detach"):                    # torch tensor
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=np.int64)


register_backend("board", factory, options=OPTIONS, replace=True,
                 description="a board image (make bitstream) over its serial port")
