"""Test helpers: synthetic embeddings directories and small real image corpora."""

from __future__ import annotations

import io
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from subsets.embed import _finalize, shard_name
from subsets.sources import open_source

ROOT = Path(__file__).resolve().parents[1]
# Two CPU processes over gloo, as a user would start them.
ACCELERATE_2PROC = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                    "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(n: int, d: int, centers: int, spread: float = 0.05, seed: int = 0, sizes=None):
    """Unit vectors around `centers` random directions; returns (vectors, cluster of each row)."""
    rng = np.random.default_rng(seed)
    c = unit(rng.standard_normal((centers, d)))
    lab = np.repeat(np.arange(centers), sizes) if sizes is not None else rng.integers(centers, size=n)
    return unit(c[lab] + spread * rng.standard_normal((len(lab), d))), lab


def write_embeddings(out: Path, vectors: np.ndarray, labels: np.ndarray | None = None,
                     shard_size: int = 1000, source: str = "synthetic") -> Path:
    """An embeddings directory holding `vectors`, written by the real finaliser."""
    out = Path(out)
    out.mkdir(parents=True)
    n, d = vectors.shape
    keys = [f"img-{i:06d}" for i in range(n)]
    labels = np.full(n, -1) if labels is None else np.asarray(labels)
    for s, start in enumerate(range(0, n, shard_size)):
        sl = slice(start, start + shard_size)
        save_file({"emb": torch.from_numpy(unit(vectors[sl])).half(), "label": torch.from_numpy(labels[sl]).long()},
                  str(out / shard_name(s)), metadata={"info": json.dumps({"keys": keys[sl], "skipped": []})})
    identity = {"source": source, "corpus_hash": f"synthetic-{n}-{d}", "count_in_source": n,
                "encoder": {"name": "synthetic", "sha256": "0" * 64}, "dim": d, "shard_size": shard_size}
    _finalize(out, identity, -(-n // shard_size))
    return out


def write_image_folder(out: Path, n: int, split: str = "builtin:cifar10-demo-test") -> Path:
    """The first n images of a built-in set as PNG files in class subfolders."""
    src = open_source(split)
    for key, image, label in itertools.islice(src.iter_images(strict=True), n):
        folder = Path(out) / src.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{key}.png")
    return Path(out)


def launch_processes(*args: str, processes: int, threads: int = 1, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` in `processes` processes over gloo, started with the environment torchrun gives each
    (RANK, WORLD_SIZE, MASTER_ADDR and _PORT) but without its launcher, whose own import of torch costs about 4 s
    a job. The tests that run `accelerate launch` and `torch.distributed.run` themselves keep the launchers covered.
    The output is each process's in rank order; the exit code the first failure's. A process that fails leaves the
    others 30 s to end (they may wait in a collective for it), as torchrun would not wait for them either."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    files = [(tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")) for _ in range(processes)]
    jobs = [subprocess.Popen([sys.executable, "-m", *map(str, args)], stdout=out, stderr=err, text=True, cwd=ROOT,
                             env=cli_env({"RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(processes),
                                          "LOCAL_WORLD_SIZE": str(processes), "MASTER_ADDR": "127.0.0.1",
                                          "MASTER_PORT": str(port), "OMP_NUM_THREADS": str(threads)}))
            for r, (out, err) in enumerate(files)]
    deadline = time.monotonic() + timeout
    while any(j.poll() is None for j in jobs) and time.monotonic() < deadline:
        if any(j.returncode for j in jobs):
            deadline = min(deadline, time.monotonic() + 30)
        time.sleep(0.1)
    for j in jobs:
        if j.poll() is None:
            j.kill()
            j.wait()
    code = next((j.returncode for j in jobs if j.returncode), 0)
    text = [[f.seek(0) or f.read() for f in pair] for pair in files]
    for pair in files:
        for f in pair:
            f.close()
    return subprocess.CompletedProcess(list(args), code, "".join(o for o, _ in text), "".join(e for _, e in text))


def run_cli(*args: str, launcher: list[str] | None = None, **kw) -> subprocess.CompletedProcess:
    """Run `python -m distill ...` (or under a launcher such as accelerate) and capture its output. Without a launcher
    or settings of its own (env, cwd, timeout) it runs in this process (`distill.cli.main`, what `python -m distill`
    runs), which saves the 3 s of a new interpreter importing torch."""
    if launcher is None and not kw:
        return run_cli_in_process(*args)
    cmd = (launcher or [sys.executable]) + ["-m", "distill", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=cli_env(kw.pop("env_extra", {})),
                          cwd=kw.pop("cwd", ROOT), **kw)


def cli_env(extra: dict) -> dict:
    """A new `distill` process's environment: this one's, unbuffered and offline, with `extra` over it."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", **extra}


def run_cli_in_process(*args: str) -> subprocess.CompletedProcess:
    """`distill.cli.main` in this process with its output captured, as `run_cli` returns a new process's."""
    from distill.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):  # offline: conftest sets HF_HUB_OFFLINE
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(["distill", *map(str, args)], code, out.getvalue(), err.getvalue())


def run_cli_in_new_process(*commands: list, env_extra: dict, record: Path) -> list[subprocess.CompletedProcess]:
    """Several `distill` commands, one after the other, in one new interpreter with env_extra set: for settings
    read once at import (HF_HUB_CACHE), at the cost of one import of torch rather than one per command."""
    code = ("import json, sys; from tests.helpers import run_cli_in_process; "
            "done = [run_cli_in_process(*c) for c in json.loads(sys.argv[1])]; "
            "open(sys.argv[2], 'w').write(json.dumps([[d.returncode, d.stdout, d.stderr] for d in done]))")
    ran = subprocess.run([sys.executable, "-c", code, json.dumps([[str(a) for a in c] for c in commands]), str(record)],
                         capture_output=True, text=True, env=cli_env(env_extra), cwd=ROOT)
    assert ran.returncode == 0, ran.stderr
    return [subprocess.CompletedProcess(["distill", *map(str, c)], *d)
            for c, d in zip(commands, json.loads(Path(record).read_text()))]


def run_metrics(run: Path) -> list[dict]:
    """The lines of a run's metrics.jsonl."""
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def error_line(res: subprocess.CompletedProcess) -> str:
    """The one `error:` line a failed command printed (progress bars may share stderr)."""
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and res.stderr.rstrip().endswith(errors[0]), res.stderr
    assert "Traceback" not in res.stderr
    return errors[0]
