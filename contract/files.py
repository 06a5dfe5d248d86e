"""File helpers shared by every layer (pure Python)."""

from __future__ import annotations

import os
import pathlib
import tempfile

__all__ = ["write_atomic", "source_fingerprint", "RTL_SOURCES", "load_npy", "NpyError"]

#: The sources that decide the array RTL: the contract and the Amaranth generators.
RTL_SOURCES = ("contract/*.py", "hw/**/*.py")

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


class NpyError(ValueError):
    """A ``.npy`` file that cannot be read as one plain array; the message names the file."""


def load_npy(path, what: str = "array"):
    """The array of the ``.npy`` file ``path``, checked before anything is allocated: the
    header must parse, hold a plain (non-object, non-structured) dtype and a shape of
    non-negative integers, and the data must fill the rest of the file exactly (no truncated
    data, no trailing bytes, so a header claiming a huge shape fails without allocating it).
    Every problem raises :class:`NpyError` naming ``what`` and the file."""
    import numpy as np
    from numpy.lib import format as npformat

    path = pathlib.Path(path)
    where = f"{what} file {str(path)!r}"
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            version = npformat.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = npformat.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = npformat.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = f.tell()
    except FileNotFoundError:
        raise NpyError(f"{where} does not exist") from None
    except IsADirectoryError:
        raise NpyError(f"{where} is a directory, not a .npy file") from None
    except OSError as exc:
        raise NpyError(f"cannot read {where}: {exc.strerror or exc}") from None
    except Exception as exc:      # noqa: BLE001 (numpy's header parser raises many kinds)
        raise NpyError(f"cannot read {where} as .npy: {str(exc)[:200]}") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise NpyError(f"{where} holds dtype {dtype}; expected a plain numeric array")
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise NpyError(f"{where} has an invalid shape {shape}")
    count = 1
    for d in shape:
        count *= d
    need = count * dtype.itemsize
    if need != size - offset:
        problem = "is truncated" if need > size - offset else "has trailing bytes"
        raise NpyError(f"{where} {problem}: its header says {tuple(shape)} {dtype} "
                       f"({need} bytes of data) but the file holds {size - offset}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, OverflowError, MemoryError) as exc:
        raise NpyError(f"cannot read {where} as .npy: {str(exc)[:200]}") from None
    if not isinstance(arr, np.ndarray):
        raise NpyError(f"{where} holds an archive, expected one .npy array")
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr
