"""Shared by the formal test modules: report a proof's outcome and clean up after it."""

from __future__ import annotations

import shutil


def finish(result):
    """Print the outcome (visible with -s / on failure) and remove a passing run's folder."""
    print(f"{result.workdir.name}: {result.status} by {result.method} in {result.seconds:.1f} s"
          f"\n{result.summary}")
    if result.passed:
        shutil.rmtree(result.workdir, ignore_errors=True)
    return result
