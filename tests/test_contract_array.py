# amaranth: UnusedElaboratable=no
"""ArrayConfig validation, derived geometry, register map and stream framing (pure Python)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from contract import FP16, FloatFormat, pack_codes
from contract.array import (
    CSR_ADDR_WIDTH,
    ERROR,
    REGISTER_BY_NAME,
    REGISTERS,
    ArrayConfig,
    activation_stream,
    channel_words,
    pack_activation_beat,
    result_order,
    weight_stream,
)


def test_defaults():
    cfg = ArrayConfig()
    assert (cfg.in_fmt, cfg.out_fmt, cfg.wbits, cfg.rows, cfg.cols, cfg.depth) == (
        FP16, FP16, 3, 4, 4, 512)
    assert cfg.accumulator == "exact"
    assert cfg.dot_config.max_k == 512
    assert cfg.acc_width == cfg.dot_config.acc_width


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"rows": 0}, ValueError, "rows must be in [1, 64], not 0"),
    ({"cols": 65}, ValueError, "cols must be in [1, 64], not 65"),
    ({"rows": 2.0}, TypeError, "rows must be an integer, not 2.0"),
    ({"rows": 64, "cols": 32}, ValueError, "rows * cols must be at most 1024, not 2048"),
    ({"depth": 8}, ValueError, "depth must be in [16, 65536], not 8"),
    ({"depth": 48}, ValueError, "depth must be a power of two in [16, 65536], not 48"),
    ({"depth": True}, TypeError, "depth must be an integer, not True"),
    ({"wbits": 6}, ValueError, "Weight bits must be in [2, 5], not 6"),
    ({"wbits": "3"}, TypeError, "Weight bits must be an integer, not '3'"),
    ({"e0_min": 3, "e0_max": 2}, ValueError, "e0_min (3) must not exceed e0_max (2)"),
    ({"e0_max": 65}, ValueError, "e0_max must be in [-64, 64], not 65"),
    ({"pipeline": 3}, ValueError, "pipeline must be in [1, 2], not 3"),
    ({"accumulator": "fast"}, ValueError, "accumulator must be 'exact', not 'fast'"),
    ({"accumulator": 1}, TypeError, "accumulator must be a string, not 1"),
    ({"in_fmt": "fp64"}, ValueError, "Unknown format 'fp64'"),
    ({"in_fmt": 16}, TypeError, "in_fmt must be a FloatFormat or a format name, not 16"),
    ({"out_fmt": FloatFormat("wide", 11, 30)}, ValueError,
     "out_fmt wide is 42 bits wide; the array supports formats of at most 32 bits"),
])
def test_init_wrong(kwargs, exc, msg):
    with pytest.raises(exc, match=msg.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        ArrayConfig(**kwargs)


def test_roundtrip_and_json():
    for cfg in (ArrayConfig(), ArrayConfig(in_fmt="fp8_e5m2", out_fmt="bf16", wbits=5,
                                           rows=3, cols=7, depth=64, e0_min=-30, e0_max=-2,
                                           pipeline=1)):
        d = json.loads(json.dumps(cfg.to_dict()))
        assert ArrayConfig.from_dict(d) == cfg
        assert ArrayConfig.from_dict({"in_fmt": "fp16", "rows": 2}) == ArrayConfig(rows=2)
    with pytest.raises(ValueError, match="unknown array configuration keys: bogus"):
        ArrayConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="in_fmt needs name, exp_bits and frac_bits"):
        ArrayConfig.from_dict({"in_fmt": {"exp_bits": 5}})
    assert ArrayConfig().name != ArrayConfig(rows=2).name


def test_pe_accumulator_is_exact_and_tight():
    """The largest |sum| of depth products fits pe_acc_width signed bits, and not one fewer."""
    for fmt in ("fp16", "bf16", "fp8_e5m2", "fp32"):
        for wbits in (2, 5):
            cfg = ArrayConfig(in_fmt=fmt, wbits=wbits, depth=256)
            f = cfg.in_fmt
            # largest finite magnitude in units of 2**lsb_exp, times 2**pmax
            big = f.to_fraction(f.max_finite) / (2 ** f.lsb_exp) * 2 ** cfg.pmax
            total = int(big) * cfg.depth
            assert -(1 << (cfg.pe_acc_width - 1)) <= -total
            assert total < 1 << (cfg.pe_acc_width - 1)
            assert total >= 1 << (cfg.pe_acc_width - 3)
            assert cfg.align_width + cfg.pmax <= cfg.pe_acc_width


def test_ports():
    cfg = ArrayConfig(rows=3, in_fmt="fp8_e5m2", out_fmt="fp16")
    assert cfg.act_tdata_width == 24
    assert cfg.res_tdata_width == 16
    assert cfg.wgt_tdata_width == 32
    assert ArrayConfig(rows=3).act_tdata_width == 48
    assert cfg.csr_addr_width == CSR_ADDR_WIDTH


def test_register_map_consistent():
    offsets = [r.offset for r in REGISTERS]
    assert len(set(offsets)) == len(offsets)
    assert all(o % 4 == 0 and o < (1 << CSR_ADDR_WIDTH) for o in offsets)
    for r in REGISTERS:
        assert r.access in ("ro", "rw", "rw1c", "rc")
        used = 0
        for f in r.fields:
            assert f.lsb + f.width <= 32
            assert used & f.mask == 0, f"{r.name}.{f.name} overlaps"
            used |= f.mask
    err = REGISTER_BY_NAME["ERROR"]
    assert {f.name: 1 << f.lsb for f in err.fields} == ERROR
    resets = ArrayConfig(rows=3, cols=5, wbits=4, depth=1024, e0_min=-3, e0_max=9,
                         pipeline=1).register_resets()
    geo = REGISTER_BY_NAME["GEOMETRY"]
    assert (resets["GEOMETRY"] >> geo.field("COLS").lsb) & 0xFF == 5
    assert resets["DEPTH"] == 1024
    assert resets["E0_RANGE"] == 0x09FD
    md = ArrayConfig().metadata()
    json.dumps(md)
    assert [r["name"] for r in md["registers"]] == [r.name for r in REGISTERS]


def test_tiles_and_framing():
    cfg = ArrayConfig(rows=2, cols=3, depth=16)
    assert cfg.tiles(3, 5, 4) == [(0, 2, 0, 3), (2, 1, 0, 3), (0, 2, 3, 1), (2, 1, 3, 1)]
    f = cfg.framing(3, 5, 4)
    assert f == {"m_tiles": 2, "n_tiles": 2, "act_beats": 20, "act_tlasts": 4,
                 "wgt_words": 4 * channel_words(5, 3), "wgt_tlasts": 4, "res_beats": 12,
                 "res_tlasts": 4}
    for bad in ((0, 5, 4), (3, 17, 4), (3, 5, 0), (3, 0, 1)):
        with pytest.raises(ValueError):
            cfg.check_layer(*bad)
    assert channel_words(10, 3) == 2 + 1
    assert channel_words(11, 3) == 2 + 2


def test_stream_builders():
    cfg = ArrayConfig(rows=2, cols=2, depth=16, wbits=5)
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 32, (3, 7))
    words = weight_stream(cfg, codes, [-1, 2, 3], [0x3C00, 0x8000, 0x1])
    packed = pack_codes(codes, 5)
    assert len(words) == 3 * channel_words(7, 5)
    assert words[:4] == [(0x3C00, 0), (0xFFFFFFFF, 0), (int(packed[0, 0]), 0),
                         (int(packed[0, 1]), 1)]
    x = rng.integers(0, 1 << 16, (3, 4))
    act = activation_stream(cfg, x, 3)
    assert len(act) == 2 * 2 * 4                            # 2 M tiles x 2 N tiles x K
    assert act[0] == (int(x[0, 0]) | int(x[1, 0]) << 16, 0)
    assert act[4 + 3] == (int(x[2, 3]), 1)                  # ragged N tile: lane 1 is 0
    assert pack_activation_beat([1, 2], 8) == 0x0201
    order = result_order(cfg, 3, 4, 3)
    assert order[:5] == [(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 1), (2, 0, 0)]
    assert len(order) == 9 and order[-1] == (2, 2, 1)
