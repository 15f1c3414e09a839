"""What made a file of this tool: the code's version and git commit, the libraries that computed, the machine. A
figure is only comparable with another made by the same code, so embeddings, subsets, caches, runs and evaluations
each record it beside what they hold, and a comparison names the code that trained its runs."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout, where the package is installed editable or run in place
LIBRARIES = ("torch", "torchvision", "timm", "accelerate", "safetensors", "numpy", "faiss-cpu",
             "datasets")  # where installed: it reads hf: sources


@cache
def code_version() -> dict:
    """The package's version, and where it runs from a git checkout its commit and whether tracked files differ from
    it (`dirty`: the figures then come from code no commit holds)."""
    try:
        version = metadata.version("subset-distill")
    except metadata.PackageNotFoundError:
        version = None
    commit = dirty = None
    if (ROOT / ".git").exists():
        commit = _git("rev-parse", "HEAD")
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = None if status is None else bool(status)
    return {"version": version, "commit": commit, "dirty": dirty}


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _package_versions() -> dict:
    """The installed LIBRARIES' versions from their package records (none imported)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _library_versions() -> dict:
    versions = _package_versions()
    import torch

    versions["torch"] = torch.__version__  # with its build (+cpu, +cu130), which the package metadata leaves out
    return versions


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:  # not Linux
        return None


def environment() -> dict:
    """This process's code, libraries and machine, as recorded beside what it made (run.json, eval.json, a cache's
    index.json, a subset's manifest.json, the embeddings' meta.json)."""
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {"code": code_version(), "python": platform.python_version(), "libraries": _library_versions(),
            "platform": platform.platform(), "cpu": _cpu_model() or platform.processor() or platform.machine(),
            # the SIMD kernels torch chose (AVX2, AVX512, ...): they round differently, so over thousands of steps
            # the same run trained on two kinds of CPU ends in two places; the model name alone does not tell them apart
            "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
            "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "gpus": gpus}


def version_text() -> str:
    """What `distill --version` prints: this code's version and commit, Python's and the libraries' (read from their
    package records, without importing them)."""
    code = code_version()
    libraries = ", ".join(f"{name} {version}" for name, version in _package_versions().items())
    where = f"commit {_code_label(code)}" if code.get("commit") else "no git checkout"
    return f"distill {code.get('version')} ({where})\npython {platform.python_version()}, {libraries}"


def _code_label(code: dict) -> str:
    if not code.get("commit"):
        return f"version {code.get('version')} (no git checkout)"
    return code["commit"][:10] + (" with uncommitted changes" if code.get("dirty") else "")


def trained_by(records: list[dict]) -> str | None:
    """One line naming the code that trained the runs of these run.json records (each commit with its count of runs;
    a run resumed by other code counts under each); None where no run recorded it (runs made before run.json held
    invocations)."""
    counts: dict[str, int] = {}
    machines: dict[tuple[str, str | None], int] = {}
    unrecorded = 0
    for record in records:
        invocations = record.get("invocations", [])
        labels = dict.fromkeys(_code_label(i["environment"]["code"]) for i in invocations)
        unrecorded += not labels
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        for machine in dict.fromkeys(_machine(i["environment"]) for i in invocations):
            machines[machine] = machines.get(machine, 0) + 1
    if not counts:
        return None
    parts = [f"{label} ({n} run{'s' * (n != 1)})" for label, n in counts.items()]
    parts += [f"not recorded ({unrecorded} run{'s' * (unrecorded != 1)}, made before run.json named its code)"] * bool(unrecorded)
    line = "Trained by code: " + "; ".join(parts) + "."
    if (resumed := sum(counts.values()) + unrecorded - len(records)) > 0:  # else the counts seem to add up to too many runs
        line += (f" Of {len(records)} runs, {resumed} {'was' if resumed == 1 else 'were'} resumed by other code and "
                 f"count{'s' * (resumed == 1)} under each.")
    models, kernels = {m for m, _ in machines}, {k for _, k in machines if k}
    if len(models) > 1 or len(kernels) > 1:  # a run made before the kernels were recorded differs by model only
        line += (" On more than one kind of machine (" + "; ".join(
            f"{model}{f', {k} kernels' if k else ''}: {n} run{'s' * (n != 1)}" for (model, k), n in machines.items())
                 + "): their kernels round otherwise, so a run trained again on another kind ends elsewhere, within "
                   "its intervals.")
    return line


def _machine(env: dict) -> tuple[str, str | None]:
    """(the processor, torch's CPU kernels where recorded): what decides how a run's arithmetic rounds."""
    if env.get("gpus"):
        return ", ".join(dict.fromkeys(env["gpus"])), None
    return env.get("cpu", "?"), env.get("cpu_kernels")
