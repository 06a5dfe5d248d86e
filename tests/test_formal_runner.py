# amaranth: UnusedElaboratable=no
"""``hw.formal``: the harnesses' and the runner's parameter checks."""

from __future__ import annotations

import pytest

from contract import DotConfig
from hw.formal import (
    ArrayProductProof,
    BiasAlignerProof,
    DotStreamProof,
    ProductLanesProof,
    run_sat,
    run_sby,
)


def test_bad_parameters():
    cfg = DotConfig(in_fmt="fp8_e5m2", wbits=2)
    with pytest.raises(TypeError, match="config must be a DotConfig, not 3"):
        ProductLanesProof(config=3)
    with pytest.raises(ValueError, match="fault must be None or one of align, neg0, not 'x'"):
        ProductLanesProof(config=cfg, fault="x")
    with pytest.raises(ValueError, match="fault must be None or one of align, not 'neg0'"):
        BiasAlignerProof(config=cfg, fault="neg0")
    with pytest.raises(TypeError, match="invariant must be a bool, not 1"):
        DotStreamProof(config=cfg, invariant=1)
    with pytest.raises(ValueError, match="mode must be 'bmc' or 'prove', not 'cover'"):
        run_sby(DotStreamProof(config=cfg), name="x", mode="cover")
    with pytest.raises(ValueError, match="depth must be a positive integer, not 0"):
        run_sby(DotStreamProof(config=cfg), name="x", depth=0)
    with pytest.raises(ValueError, match="proof name must be a plain file name, not '../x'"):
        run_sat(ProductLanesProof(config=cfg), name="../x")
    with pytest.raises(ValueError, match="seq must be None or a positive integer, not 0"):
        run_sat(ProductLanesProof(config=cfg), name="x", seq=0)
    with pytest.raises(ValueError, match=r"track_data needs e0 = 0 in the configured range, "
                                         r"not \[1, 3\]"):
        DotStreamProof(config=DotConfig(wbits=2, e0_min=1, e0_max=3), track_data=True)
    with pytest.raises(TypeError, match="config must be an ArrayConfig, not"):
        ArrayProductProof(config=cfg)
