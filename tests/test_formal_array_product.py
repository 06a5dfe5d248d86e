# amaranth: UnusedElaboratable=no
"""Formal proofs of ``hw.formal.array_product``: a row aligner into a PE accumulates the exact
products (SymbiYosys k-induction); the broken variant fails."""

from __future__ import annotations

import pytest
from formal_runs import finish, prove  # noqa: E402  (tests/ helper)

from contract.array import ArrayConfig
from hw.formal import ArrayProductProof, run_sby


@pytest.mark.parametrize("wbits,pipeline,floorplan", [
    (2, 1, "compact"), (3, 2, "compact"), (3, 2, "spread"),
    pytest.param(4, 1, "compact", marks=pytest.mark.slow),
    pytest.param(5, 2, "compact", marks=pytest.mark.slow),
])
def test_array_product_path_fp8(wbits, pipeline, floorplan, formal_root):
    """RowAligner -> ShiftPE accumulates exact products for all inputs (k-induction); with
    "spread" its pending carries take two registers and the drain reads copies of them."""
    cfg = ArrayConfig(in_fmt="fp8_e5m2", wbits=wbits, rows=1, cols=1, depth=16,
                      pipeline=pipeline, floorplan=floorplan)
    assert cfg.pe_pieces == 2
    prove(run_sby, ArrayProductProof(config=cfg),
          name=f"array_fp8_b{wbits}_p{pipeline}_{floorplan}",
          root=formal_root, mode="prove", depth=3)


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", [1, 2])
def test_array_product_path_fp16_b3(pipeline, formal_root):
    cfg = ArrayConfig(in_fmt="fp16", wbits=3, rows=1, cols=1, pipeline=pipeline)
    prove(run_sby, ArrayProductProof(config=cfg), name=f"array_fp16_b3_p{pipeline}",
          root=formal_root, mode="prove", depth=3)


def test_broken_array_alignment_is_caught(formal_root):
    cfg = ArrayConfig(in_fmt="fp8_e5m2", wbits=3, rows=1, cols=1, depth=16, pipeline=2)
    result = finish(run_sby(ArrayProductProof(config=cfg, fault="align"),
                           name="broken_array_align", root=formal_root, mode="prove", depth=3))
    assert result.status == "FAIL", result.summary
    assert ("PE accumulator (with its pending carries) differs from the sum of exact products"
            in result.failed)
