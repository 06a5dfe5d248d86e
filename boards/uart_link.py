"""Host side of the UART bridge of the board images (:class:`boards.boards.StreamBridge`).

:class:`UartLink` speaks the bridge's byte protocol over a serial port (pyserial): one command at
a time, each answer read in full before the next command (the bridge has no receive buffer).
Every answer has a deadline (``timeout`` seconds); a missing, short or wrong answer raises a
:class:`LinkError` naming the port, the command and what came back.

:meth:`UartLink.connect` opens the port and brings the bridge to a known state whatever it was
doing (a host that stopped in the middle of a command leaves it waiting): it sends
:data:`SYNC_BYTES` link checks (``'I'``; any wait of the bridge ends on a byte), drops what
comes back until the line is quiet, then expects exactly ``'D'`` for one more ``'I'``.
A port that cannot be opened, or a board that does not answer that link check, raises
:class:`BoardUnavailable`; a board that answers something else raises :class:`BadAnswer`.
"""

from __future__ import annotations

import time

from .boards import CMD_GET, CMD_INFO, CMD_PUSH, CMD_RESET, INFO_ANSWER

__all__ = ["UartLink", "LinkError", "NoAnswer", "BadAnswer", "BoardUnavailable", "SYNC_BYTES",
           "DEFAULT_BAUD", "DEFAULT_TIMEOUT"]

#: Link checks sent by :meth:`UartLink.connect`: more than the longest command (``'P'``, the
#: channel and an activation beat of 64 lanes of 32 bits), so any unfinished command completes.
SYNC_BYTES = 320
DEFAULT_BAUD = 115200
DEFAULT_TIMEOUT = 2.0


class LinkError(OSError):
    """The board answered wrongly or not at all (the message names the port). An ``OSError``,
    like pyserial's own errors."""


class NoAnswer(LinkError):
    """No answer, or a short one, within the timeout."""


class BadAnswer(LinkError):
    """An answer other than the protocol's."""


class BoardUnavailable(NoAnswer):
    """The port cannot be opened, or nothing answers the link check on it."""


def _show(data: bytes) -> str:
    text = data[:16].hex(" ")
    return f"{text} ..." if len(data) > 16 else text or "nothing"


class UartLink:
    """The bridge protocol on serial port ``port`` (a device path such as ``/dev/ttyUSB0``, or
    any URL pyserial's ``serial_for_url`` accepts) at ``baud``; ``timeout``: seconds allowed for
    each answer. Counts ``commands``, ``bytes_out`` and ``bytes_in``."""

    def __init__(self, port: str, *, baud: int = DEFAULT_BAUD,
                 timeout: float = DEFAULT_TIMEOUT):
        if not isinstance(port, str) or not port:
            raise TypeError(f"port must be a non-empty string, not {port!r}")
        if not isinstance(baud, int) or isinstance(baud, bool) or baud <= 0:
            raise ValueError(f"baud must be a positive integer, not {baud!r}")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.port, self.baud, self.timeout = port, baud, float(timeout)
        self.commands = self.bytes_out = self.bytes_in = 0
        self._serial = None

    # -- opening -------------------------------------------------------------------------------
    def connect(self) -> UartLink:
        """Open the port and synchronise with the bridge (see the module docstring)."""
        import serial

        self.close()
        try:
            self._serial = serial.serial_for_url(self.port, baudrate=self.baud,
                                                 timeout=self.timeout, write_timeout=self.timeout,
                                                 exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise BoardUnavailable(f"cannot open serial port {self.port!r}: "
                                   f"{getattr(exc, 'strerror', None) or exc}") from None
        try:
            self.sync()
        except NoAnswer as exc:
            self.close()
            raise BoardUnavailable(
                f"no answer from a board on {self.port} within {self.timeout:g} s to the link "
                f"check ('I' -> 'D'): is the densehw image flashed (make bitstream), the port "
                f"right and the baud rate {self.baud}? ({exc})") from None
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        ser, self._serial = self._serial, None
        if ser is not None:
            try:
                ser.close()
            except OSError:
                pass

    def __enter__(self) -> UartLink:
        return self.connect() if self._serial is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    # -- protocol ------------------------------------------------------------------------------
    def sync(self) -> None:
        """Bring the bridge back to waiting for a command, then check the link."""
        ser = self._port()
        ser.reset_input_buffer()
        self._write(bytes([CMD_INFO]) * SYNC_BYTES)
        # the answers take about SYNC_BYTES byte times; then the line must fall quiet
        byte_s = 10.0 / self.baud
        quiet = max(0.05, 16 * byte_s)
        deadline = time.monotonic() + self.timeout + SYNC_BYTES * byte_s
        saved, ser.timeout = ser.timeout, quiet
        try:
            dropped = 0
            while True:
                chunk = ser.read(4096)
                if not chunk:
                    break
                dropped += len(chunk)
                self.bytes_in += len(chunk)
                if time.monotonic() > deadline:
                    raise BadAnswer(f"the board on {self.port} does not stop sending ({dropped} "
                                    f"bytes in answer to {SYNC_BYTES} link checks, last "
                                    f"{_show(chunk)}): not a densehw board image, or a wrong "
                                    f"baud rate (--baud, the image's is 115200)?")
        finally:
            ser.timeout = saved
        self.ping()

    def ping(self) -> None:
        """Link check: ``'I'`` must be answered by ``'D'``."""
        got = self._command(bytes([CMD_INFO]), 1, "the link check 'I'")
        if got != bytes([INFO_ANSWER]):
            raise BadAnswer(f"the board on {self.port} answered {_show(got)} to the link check "
                            f"'I', expected 'D' (0x{INFO_ANSWER:02x}): not a densehw board "
                            f"image, or a wrong baud rate?")

    def reset_design(self) -> None:
        """``'R'``: reset the design behind the bridge and drop the beats it still holds."""
        got = self._command(bytes([CMD_RESET]), 1, "the design reset 'R'")
        if got != bytes([CMD_RESET]):
            raise BadAnswer(f"the board on {self.port} answered {_show(got)} to the design reset "
                            f"'R', expected 'R': an image built before the bridge had 'R' "
                            f"(rebuild it with make bitstream)?")

    def push(self, channel: int, value: int, nbytes: int, *, what: str = "") -> None:
        """Send one beat ``value`` (``nbytes`` bytes, little-endian) to input ``channel``."""
        got = self._command(bytes([CMD_PUSH, channel]) + int(value).to_bytes(nbytes, "little"),
                            1, f"a push to input channel {channel}{what and f' ({what})'}")
        if got != bytes([CMD_PUSH]):
            raise BadAnswer(f"the board on {self.port} answered {_show(got)} to a push to input "
                            f"channel {channel}{what and f' ({what})'}, expected 'P'")

    def get(self, channel: int, nbytes: int, *, what: str = "") -> int:
        """Take one beat (``nbytes`` bytes, little-endian) from output ``channel``."""
        got = self._command(bytes([CMD_GET, channel]), nbytes,
                            f"a get from output channel {channel}{what and f' ({what})'}")
        return int.from_bytes(got, "little")

    # -- bytes ---------------------------------------------------------------------------------
    def _port(self):
        if self._serial is None:
            raise LinkError(f"the link to {self.port} is not open (call connect())")
        return self._serial

    def _write(self, data: bytes) -> None:
        import serial

        try:
            self._port().write(data)
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"cannot write to {self.port}: {exc}") from None
        self.bytes_out += len(data)

    def _command(self, data: bytes, answer: int, what: str) -> bytes:
        import serial

        self._write(data)
        self.commands += 1
        try:
            got = self._port().read(answer)
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"cannot read from {self.port}: {exc}") from None
        self.bytes_in += len(got)
        if len(got) < answer:
            raise NoAnswer(f"no answer from the board on {self.port} within {self.timeout:g} s "
                           f"to {what}: got {len(got)} of {answer} bytes ({_show(got)})")
        return got
