# amaranth: UnusedElaboratable=no
"""Shared by the formal test modules: run a proof, report its outcome, clean up after it."""

from __future__ import annotations

import shutil

import pytest


def finish(result):
    """Print the outcome (visible with -s / on failure) and remove a passing run's folder."""
    print(f"{result.workdir.name}: {result.status} by {result.method} in {result.seconds:.1f} s"
          f"\n{result.summary}")
    if result.passed:
        shutil.rmtree(result.workdir, ignore_errors=True)
    return result


def prove(run, harness, *, name, root, **kw):
    """Run ``harness`` with ``run`` (``run_sat`` or ``run_sby``) and assert that it holds."""
    result = finish(run(harness, name=name, root=root, **kw))
    assert result.passed, f"{name}: {result.status}\n{result.summary}\nsee {result.workdir}"
    return result


def refute(run, harness, *, name, root, **kw):
    """Run a broken variant's harness and assert that the proof fails on it."""
    result = finish(run(harness, name=name, root=root, **kw))
    assert result.status == "FAIL", f"{name}: {result.status}\n{result.summary}"
    return result


def check_fault_parameter(make_proof, **good):
    """``make_proof(**good, fault="nope")`` names the accepted faults in its ValueError."""
    with pytest.raises(ValueError, match="fault must be None or one of"):
        make_proof(**good, fault="nope")
