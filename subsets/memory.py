"""The memory a process can still take: the machine's, or less where a cgroup limits it (a container, a SLURM job).

psutil sees the machine: inside a job limited to 32 GiB on a 512 GiB node it reports hundreds of GiB free, and a
selection that trusts it is killed by the cgroup's out-of-memory killer instead of being refused up front.
"""

from __future__ import annotations

from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
UNLIMITED = 2**60  # cgroup v1 writes "no limit" as a page-rounded 2**63 - 1


def available_memory(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """Bytes this process can still allocate without swapping or meeting its cgroup's limit."""
    import psutil

    free = psutil.virtual_memory().available
    left = cgroup_memory_left(root, proc_cgroup)
    return free if left is None else min(free, left)


def cgroup_memory_left(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """The tightest (limit - usage, less reclaimable file cache) over this process's memory cgroup and its ancestors,
    under cgroup v2 or v1; None where no limit applies or the hierarchy cannot be read."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    lefts = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one unified hierarchy
            files = (root, "memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            files = (root / "memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        lefts += _left_along(files, path)
    return min(lefts) if lefts else None


def _left_along(files: tuple[Path, str, str, str], path: str) -> list[int]:
    """limit - (usage - inactive file cache) of every cgroup from `path` up to the root that has a limit. A container
    often sees its own cgroup as the root: the mount's top folder counts too."""
    base, limit_name, usage_name, inactive_name = files
    folders = [base / path.strip("/")]
    folders += [f for f in folders[0].parents if f.is_relative_to(base)]
    lefts = []
    for folder in folders:
        limit, usage = _number(folder / limit_name), _number(folder / usage_name)
        if limit is None or usage is None or limit >= UNLIMITED:
            continue
        lefts.append(max(0, limit - max(0, usage - _stat(folder / "memory.stat", inactive_name))))
    return lefts


def _number(file: Path) -> int | None:
    try:
        text = file.read_text().strip()
    except OSError:
        return None
    return UNLIMITED if text == "max" else int(text) if text.isdigit() else None


def _stat(file: Path, key: str) -> int:
    try:
        for line in file.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0
