"""The backend registry (:mod:`sw.backends`): registration, availability, options, and how the
command line reports an unknown or unavailable backend."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from sw import backends
from sw.backends import BackendUnavailable, Option


@pytest.fixture
def registry():
    saved = dict(backends._REGISTRY)
    yield backends
    backends._REGISTRY.clear()
    backends._REGISTRY.update(saved)


def test_register_options_and_availability(registry):
    seen = {}

    def factory(array_config, *, level=1, name="x"):
        seen.update(config=array_config, level=level, name=name)
        return lambda *a, **k: None

    why = ["not today"]
    registry.register_backend("t-one", factory, description="test",
                              options=(Option("--level", "a number", type=int, default=1),
                                       Option("--name", "a name", default="x")),
                              missing=lambda: why[0])
    registry.register_backend("t-two", factory, options=(Option("--level", "a number",
                                                                type=int, default=1),))
    assert "t-one" in registry.registered_backends()
    assert "t-one" not in registry.available_backends() and "t-two" in \
        registry.available_backends()
    with pytest.raises(BackendUnavailable, match="backend 't-one' is not available: not today"):
        registry.get_backend("t-one")
    why[0] = None
    assert registry.get_backend("t-one") is factory
    with pytest.raises(BackendUnavailable, match="backend 'nope' is not registered"):
        registry.get_backend("nope")
    with pytest.raises(ValueError, match="already registered"):
        registry.register_backend("t-one", factory)
    with pytest.raises(TypeError, match="Option instances"):
        registry.register_backend("t-three", factory, options=("--x",))
    with pytest.raises(ValueError, match="option flag must look like"):
        Option("level", "no dashes")
    p = argparse.ArgumentParser()
    registry.add_arguments(p, only=("t-one", "t-two"))
    text = p.format_help()
    assert text.count("--level LEVEL  a number") == 1 and "(--backend t-one/t-two)" in text
    args = p.parse_args(["--level", "7"])
    assert registry.options_from("t-one", args) == {"level": 7, "name": "x"}
    assert registry.options_from("t-two", argparse.Namespace()) == {"level": 1}
    registry.get_backend("t-one")(None, **registry.options_from("t-one", args))
    assert seen == {"config": None, "level": 7, "name": "x"}
    registry.unregister_backend("t-one")
    assert "t-one" not in registry.registered_backends()


def test_golden_is_built_in_and_providers_load():
    from sw.golden import gemm_golden

    assert backends.get_backend("golden")(None) is gemm_golden
    assert backends.load_providers(["sim.backends", "boards.board_backend"]) == []
    assert {"golden", "icarus", "verilator", "board"} <= set(backends.registered_backends())
    notes = backends.load_providers(["densehw_no_such_module"])
    assert notes == ["densehw_no_such_module (not present)"]


def test_cli_reports_unknown_and_unavailable_backends(tmp_path, capsys, registry):
    from densehw.cli import EXIT_UNAVAILABLE, main

    np.save(tmp_path / "x.npy", np.ones((2, 3), np.float16))
    np.save(tmp_path / "w.npy", np.ones((2, 3)))
    base = ["gemm", "--fmt", "fp16", "--wbits", "3", "--x", str(tmp_path / "x.npy"), "--w",
            str(tmp_path / "w.npy"), "--out", str(tmp_path / "y.npy")]
    assert main(base + ["--backend", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown backend 'nope'; expected one of golden" in err and err.count("\n") == 1
    registry.register_backend("t-off", lambda c: None, missing=lambda: "its tool is missing")
    assert main(base + ["--backend", "t-off"]) == EXIT_UNAVAILABLE == 3
    err = capsys.readouterr().err
    assert err == "densehw gemm: backend 't-off' is not available: its tool is missing\n"
    assert not (tmp_path / "y.npy").exists()
    assert main(base) == 0 and (tmp_path / "y.npy").exists()
