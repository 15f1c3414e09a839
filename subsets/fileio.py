"""File helpers: atomic writes (a reader never sees a half-written file or directory), JSON, hashes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DiskFull, InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_disk_full(e: BaseException) -> bool:
    """ENOSPC, as an OSError or inside the message of an error that wraps one (safetensors', torch's)."""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return True
    return "No space left on device" in str(e) or "os error 28" in str(e)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary name, then rename: `path` is whole or absent, never half-written.

    A full disk becomes a DiskFull error naming the file; the temporary file is removed.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes files private; outputs are ordinary files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if is_disk_full(e):
            raise DiskFull(f"{path}: disk full while writing {len(data):,} bytes; nothing was left half-written, "
                           "free some space and rerun the same command to resume") from None
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_npy_atomic(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    write_bytes_atomic(path, buf.getvalue())


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: Path, what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: not found ({what})")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None


def refuse_to_replace(out: Path, overwrite: bool, own_file: str, what: str) -> None:
    """Refuse an existing `out` unless --overwrite, and even then unless it is empty or an earlier `what` (it holds
    `own_file`): --overwrite replaces the folder whole, so `--out ~/data --overwrite` must not delete ~/data."""
    out = Path(out)
    if not out.exists():
        return
    if not overwrite:
        raise InputError(f"{out}: already exists (pass --overwrite to replace it)")
    if not out.is_dir():
        raise InputError(f"{out}: is a file, not a folder; choose another --out")
    if any(out.iterdir()) and not (out / own_file).is_file():
        raise InputError(f"{out}: --overwrite replaces an earlier {what} only, and this folder is none (it has no "
                         f"{own_file}); choose another --out")


@contextlib.contextmanager
def output_dir_atomic(out: Path, overwrite: bool, own_file: str, what: str) -> Iterator[Path]:
    """Yield a temporary directory that becomes `out` (an earlier `what` replaced only under `refuse_to_replace`'s
    rule) only if the block finishes without error."""
    out = Path(out)
    refuse_to_replace(out, overwrite, own_file, what)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes folders private; outputs are ordinary folders
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
