"""Co-simulation of the generated ``densehw_dot`` Verilog against the golden model (cocotb).

The default run checks a representative subset on Icarus and Verilator; ``-m slow`` adds the
exhaustive fp16 and bf16 product sets and long random runs on Verilator. Failures print the
seed, the vector index, its inputs and both outputs (see ``docs/verification.md``).
"""

import numpy as np
import pytest

from contract import DotConfig
from sim import payload
from sim.runner import run_tests

DEFAULT = DotConfig()
FP8_B2 = DotConfig(in_fmt="fp8_e5m2", wbits=2, lanes=1)
BF16_B5 = DotConfig(in_fmt="bf16", wbits=5, lanes=2)
FP16_FP32 = DotConfig(in_fmt="fp16", out_fmt="fp32")
CONFIGS = {"fp16-b3-l4": DEFAULT, "fp8-b2-l1": FP8_B2, "fp16-fp32out": FP16_FP32,
           "bf16-b5-l2": BF16_B5}
# bf16 needs a ~290-bit accumulator: its Verilator build takes minutes and it simulates about
# 5x slower than fp16, so its co-simulation runs with the slow tests only.
DEFAULT_RUN = ["fp16-b3-l4", "fp8-b2-l1", "fp16-fp32out"]

# exhaustive stride per input width: all fp8 patterns, a sample of the 16-bit formats
_VERILATOR = dict(RANDOM_N=300, KMAX=1024, BP_N=300, RESET_N=3)
_ICARUS = dict(RANDOM_N=30, KMAX=64, BP_N=60, RESET_N=2)


def _params(config, sim):
    params = dict(_VERILATOR if sim == "verilator" else _ICARUS)
    wide = config.in_fmt.width > 8
    if sim == "verilator":
        params.update(EXH_STRIDE=64 if wide else 1,
                      EXH_E0=f"0,{config.e0_min},{config.e0_max}")
    else:
        params.update(EXH_STRIDE=1024 if wide else 2, EXH_E0=f"0,{config.e0_min}")
    return params


def _assert_passed(res):
    assert res.passed, res.summary()
    for name, entry in res.tests.items():
        assert entry["vectors"] > 0, name
        assert entry["mismatches"] == 0, name


# -- payload layout and beat construction (no simulator) ----------------------------------------
@pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))
def test_in_fields_match_gateware(config):
    from hw.dot import in_layout

    layout = in_layout(config)
    ours = payload.in_fields(config)
    theirs = {name: (fld.offset, fld.width) for name, fld in layout}
    assert ours == theirs
    assert payload.in_width(config) == layout.size


@pytest.mark.parametrize("config", [DEFAULT, FP8_B2, BF16_B5], ids=["fp16", "fp8", "bf16"])
def test_build_beats_round_trip(config):
    """Unpacking the beats gives back every term, in order, and the last-beat fields."""
    rng = np.random.default_rng(5)
    vecs, _ = payload.random_dots(config, rng, 200, kmax=40)
    beats, last = payload.build_beats(config, vecs, rng, scatter=0.5)
    starts = vecs.starts
    first = 0
    for i, lb in enumerate(last):
        xs, ws = [], []
        for b in range(first, lb + 1):
            f = payload.unpack_beat(config, beats[b])
            assert f["last"] == (b == lb)
            for j in range(config.lanes):
                if f["keep"] >> j & 1:
                    xs.append(f["x"][j])
                    ws.append(f["w"][j])
        s, e = starts[i], starts[i + 1]
        assert xs == [int(v) for v in vecs.x[s:e]], i
        assert ws == [int(v) for v in vecs.w[s:e]], i
        assert f["e0"] == vecs.e0[i] and f["relu"] == vecs.relu[i]
        assert f["has_bias"] == vecs.has_bias[i]
        if vecs.has_bias[i]:
            assert f["bias"] == vecs.bias[i]
        first = lb + 1
    assert first == len(beats)


def test_pack_fields_rejects_wide_value():
    with pytest.raises(ValueError, match="exceeds 3 bits"):
        payload.pack_fields(70, [(60, 3, np.array([8]))])


def test_pack_fields_straddles_words():
    assert payload.pack_fields(130, [(62, 5, np.array([0b10111])), (129, 1, np.array([1]))]) \
        == [(0b10111 << 62) | (1 << 129)]


# -- co-simulation ------------------------------------------------------------------------------
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("name", DEFAULT_RUN)
def test_sim_dot(name, sim):
    config = CONFIGS[name]
    res = run_tests(config, sim, params=_params(config, sim), tag=f"pytest-{name}", seed=11)
    _assert_passed(res)


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_sim_dot_bf16(sim):
    config = BF16_B5
    res = run_tests(config, sim, params=_params(config, sim), tag="pytest-bf16", seed=11)
    _assert_passed(res)


def test_checker_detects_one_flipped_bit():
    """A golden expectation with one bit flipped must fail the run, at that vector only."""
    index, bit = 7, 0
    res = run_tests(DEFAULT, "verilator", tests="test_random_dots", tag="pytest-flip",
                    params=dict(RANDOM_N=40, KMAX=64, FLIP=f"{index}:{bit}"))
    assert not res.passed
    entry = res.tests["random_dots"]
    assert entry["flipped"] == [index, bit]
    assert entry["mismatches"] == 1
    (failure,) = entry["failures"]
    assert failure["index"] == index
    assert failure["got"] == failure["expected"] ^ (1 << bit)


def test_checker_catches_broken_rtl():
    """RTL whose only bug is a wrong canonical NaN (LSB set) must fail the run on Icarus."""
    import re

    from sim.runner import _cached_rtl

    config = DEFAULT
    width, nan = config.out_fmt.width, config.out_fmt.canonical_nan
    rtl = _cached_rtl(config)
    pattern = re.compile(r"^(\s*o__payload <= )(\S+) ;$", re.M)
    assert len(pattern.findall(rtl)) == 1, "the output register assignment was not found"
    broken = pattern.sub(
        lambda m: f"{m[1]}{m[2]} ^ {{{width - 1}'h0, {m[2]} == {width}'h{nan:x}}} ;", rtl)
    res = run_tests(config, "icarus", tag="pytest-broken", verilog=broken, variant="broken",
                    tests=["test_exhaustive_products", "test_random_dots"],
                    params=dict(EXH_STRIDE=1024, EXH_E0="0", RANDOM_N=30, KMAX=16))
    assert not res.passed
    exh = res.tests["exhaustive_products"]
    # every NaN input pattern (2 * 1023 of 65536, sampled 1 in 1024) gives a NaN product
    assert exh["mismatches"] > 0
    for failure in exh["failures"]:
        assert failure["expected"] == nan and failure["got"] == nan ^ 1


# -- long runs (make test-slow) ------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("wbits", [3, 4])
def test_exhaustive_fp16_products(wbits):
    """Every fp16 pattern times every B-bit code at e0 = 0, e0_min, e0_max (Verilator)."""
    config = DotConfig(wbits=wbits)
    res = run_tests(config, "verilator", tests="test_exhaustive_products", tag="pytest-exh",
                    params=dict(EXH_STRIDE=1, EXH_E0=f"0,{config.e0_min},{config.e0_max}"))
    _assert_passed(res)
    assert res.tests["exhaustive_products"]["vectors"] == 3 * 65536 * (1 << wbits)


@pytest.mark.slow
def test_exhaustive_bf16_products():
    """Every bf16 pattern times every 5-bit code at e0 = 0 (Verilator, 2**21 vectors)."""
    config = BF16_B5
    res = run_tests(config, "verilator", tests="test_exhaustive_products", tag="pytest-exh",
                    params=dict(EXH_STRIDE=1, EXH_E0="0"))
    _assert_passed(res)
    assert res.tests["exhaustive_products"]["vectors"] == 65536 * 32


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fp16-b3-l4", "fp16-fp32out", "bf16-b5-l2"])
def test_random_long(name):
    config = CONFIGS[name]
    res = run_tests(config, "verilator", tests=["test_random_dots", "test_backpressure",
                                                "test_reset_mid_dot"], tag="pytest-long",
                    seed=23, params=dict(RANDOM_N=10000, BP_N=5000, RESET_N=30))
    _assert_passed(res)


@pytest.mark.slow
def test_icarus_fp8_exhaustive():
    res = run_tests(FP8_B2, "icarus", tests="test_exhaustive_products", tag="pytest-exh",
                    params=dict(EXH_STRIDE=1))
    _assert_passed(res)
