"""The errors of the synthesis flows."""

from __future__ import annotations

__all__ = ["FlowError", "ToolTimeout"]


class FlowError(RuntimeError):
    """A tool failed or its log could not be understood; the message names the log file."""


class ToolTimeout(FlowError):
    """A tool ran past its time limit (``seconds``) and was stopped."""

    def __init__(self, message: str, *, seconds: float):
        super().__init__(message)
        self.seconds = seconds
