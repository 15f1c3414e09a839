"""One job per output folder: an exclusive lock file beside the folder, with its owner's pid and host.

The lock lives beside the folder (`.NAME.lock` in its parent), not inside it, so a job that fails before it
writes anything leaves no folder behind. It is released when the job ends, however it ends short of kill -9;
a lock whose process is gone (same host, pid no longer running) is stale and is taken over with a line saying
so. A lock held from another host cannot be checked: the message says how to remove it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError


def lock_path(folder: Path) -> Path:
    folder = Path(folder)
    return folder.parent / f".{folder.name}.lock"


@contextlib.contextmanager
def folder_lock(folder: Path, accelerator=None) -> Iterator[None]:
    """Hold `folder` for this job; every process of an accelerate job shares the main process's lock."""
    error, held = None, None
    if accelerator is None or accelerator.is_main_process:
        try:
            held = _acquire(Path(folder))
        except InputError as e:
            error = str(e)
    if accelerator is not None and accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        error = broadcast_object_list([error])[0]
    if error:
        raise InputError(error)
    try:
        yield
    finally:
        if held is not None:
            held.unlink(missing_ok=True)


def _acquire(folder: Path) -> Path:
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
          "command": " ".join(sys.argv)}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _owner(path)
            if _stale(owner, path):
                path.unlink(missing_ok=True)
                print(f"{folder}: took over a stale lock (pid {owner.get('pid')} on {owner.get('host')} is gone)")
                continue
            raise InputError(f"{folder}: in use by another job ({_holder(owner)}: {owner.get('command')}); wait for it "
                             f"to end, or delete {path} if that job is gone") from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return path
    raise InputError(f"{path}: could not take the lock (another job keeps taking it)")


def held_by(folder: Path) -> str | None:
    """Who holds `folder` now ("pid P on HOST since T"), or None where no job does (no lock, or a stale one)."""
    path = lock_path(folder)
    if not path.exists():
        return None
    owner = _owner(path)
    if _stale(owner, path):
        return None
    return _holder(owner)


def _holder(owner: dict) -> str:
    return f"pid {owner.get('pid')} on {owner.get('host')} since {owner.get('since')}"


def _owner(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _stale(owner: dict, path: Path) -> bool:
    if not owner:  # a lock file its writer never finished: stale once it has had time to be written
        try:
            return time.time() - path.stat().st_mtime > 10
        except FileNotFoundError:
            return True
    if owner.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, KeyError):
        return False
    return False
