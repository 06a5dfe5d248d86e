"""File helpers shared by every layer (pure Python)."""

from __future__ import annotations

import os
import pathlib
import tempfile

__all__ = ["write_atomic", "source_fingerprint", "RTL_SOURCES"]

#: The sources that decide the array RTL: the contract and the Amaranth generators.
RTL_SOURCES = ("contract/*.py", "hw/*.py")

_ROOT = pathlib.Path(__file__).resolve().parent.parent


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path, data: str | bytes, *, make_parents: bool = False) -> pathlib.Path:
    """Write ``data`` (text or bytes) to ``path`` through a temporary file in the same folder and
    a rename, so readers see the old file or the whole new one, never a part. On any error the
    temporary file is removed and the error propagates (a missing folder raises ``OSError``
    unless ``make_parents``)."""
    path = pathlib.Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())       # as open() would have made it
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def source_fingerprint(patterns) -> str:
    """Short hash of the repository files matching the glob ``patterns`` (relative to the
    repository root): their paths and contents, in sorted order. Equal fingerprints mean the
    same sources (e.g. of the RTL generator, :data:`RTL_SOURCES`)."""
    import hashlib

    digest = hashlib.sha1()
    for path in sorted({p for pattern in patterns for p in _ROOT.glob(pattern)}):
        digest.update(path.relative_to(_ROOT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]
