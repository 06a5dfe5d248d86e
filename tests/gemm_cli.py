"""Shared by the tests of ``densehw gemm``: operand files and the one-line error check."""

from __future__ import annotations

import numpy as np

from densehw.cli import main


def save(tmp_path, name, arr):
    """Write ``arr`` to ``tmp_path/name`` (``.npy``) and return the path as a string."""
    path = tmp_path / name
    np.save(path, arr)
    return str(path)


def expect_gemm_error(tmp_path, capsys, args, *fragments):
    """``densehw ARGS --out tmp_path/y.npy`` exits 2 with one line on stderr holding every
    fragment, and leaves neither the output nor a temporary file behind."""
    out = tmp_path / "y.npy"
    if out.exists():
        out.unlink()
    assert main(args + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("densehw gemm: error: ") and err.count("\n") == 1, err
    for f in fragments:
        assert f in err, err
    assert not out.exists()
    assert not list(tmp_path.glob(".y.npy.*")), "temporary file left behind"
