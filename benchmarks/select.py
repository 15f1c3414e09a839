"""Selection speed: kcenter and kmeans wall time as N doubles, and against plain numpy.

    python benchmarks/select.py                       # N = 50k, 100k, 200k; d = 384; k = 1000
    python benchmarks/select.py --sizes 20000 40000   # quicker
    python benchmarks/select.py --distributed --sizes 250000 500000 1000000 2000000   # k-center, 1 and 2 processes
    python benchmarks/select.py --distributed --method kmeans --sizes 250000 1000000    # balanced k-means, the same
    python benchmarks/select.py --job --sizes 250000 1000000 --ks 1000 [--dedup 0.95]   # the whole job, 1 and 2 processes
    python benchmarks/select.py --checkpoint-cost --method kmeans --sizes 1000000 --ks 1000    # saving at every pass

Data: unit vectors around 2,000 random centres with log-normal cluster sizes. The baselines:
kcenter with batch=1 (the textbook loop: one pass over the corpus per pick, matrix-vector products),
and a numpy Lloyd's k-means on the same training sample, levels and iterations as faiss.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name shadows the standard
# library's `select`, which subprocess (imported by faiss) needs.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from subsets import select  # noqa: E402


def clustered_source(d: int, seed: int = 0) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
    """A seeded generator, 2,000 random centres and their log-normal weights."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, d)).astype(np.float32)
    return rng, centres, rng.lognormal(0, 1, 2000)


def clustered_rows(rng: np.random.Generator, centres: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """n unit vectors around the centres, drawn in proportion to their weights."""
    d = centres.shape[1]
    lab = rng.choice(len(centres), size=n, p=weights / weights.sum())
    x = centres[lab] / np.sqrt(d) + 0.5 * rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered_data(n: int, d: int, seed: int = 0) -> np.ndarray:
    return clustered_rows(*clustered_source(d, seed), n)


def numpy_kmeans(x: np.ndarray, k: int, niter: int, seed: int, max_per_centroid: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    train = x[rng.choice(len(x), min(len(x), k * max_per_centroid), replace=False)]
    c = train[rng.choice(len(train), k, replace=False)].copy()
    for _ in range(niter):
        lab = _nearest(train, c)
        sums = np.zeros_like(c)
        np.add.at(sums, lab, train)
        counts = np.bincount(lab, minlength=k)[:, None]
        c = np.where(counts > 0, sums / np.maximum(counts, 1), c)
    return _nearest(x, c)


def _nearest(x: np.ndarray, c: np.ndarray, block: int = 16384) -> np.ndarray:
    cn = (c * c).sum(1)
    return np.concatenate([np.argmin(cn - 2 * x[i:i + block] @ c.T, axis=1) for i in range(0, len(x), block)])


def numpy_hierarchical(x: np.ndarray, clusters: list[int], niter: int, seed: int) -> None:
    points = x
    for level, k in enumerate(clusters):
        lab = numpy_kmeans(points, k, niter, seed + level)
        points = np.stack([points[lab == j].mean(0) if (lab == j).any() else points[j] for j in range(k)])


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def write_embeddings_dir(out: Path, n: int, d: int, shard_size: int = 65536, seed: int = 0) -> Path:
    """A complete embeddings directory of n clustered fp16 unit vectors, written shard by shard (never all in memory)."""
    import json

    import torch
    from safetensors.torch import save_file

    from subsets.embed import _finalize, shard_name

    if (out / "meta.json").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    source = clustered_source(d, seed)
    for s, start in enumerate(range(0, n, shard_size)):
        m = min(shard_size, n - start)
        x = clustered_rows(*source, m)
        keys = [f"r{start + i}" for i in range(m)]
        save_file({"emb": torch.from_numpy(x).half(), "label": torch.full((m,), -1)}, str(out / shard_name(s)),
                  metadata={"info": json.dumps({"keys": keys, "skipped": []})})
    identity = {"source": f"synthetic-{n}-{d}", "corpus_hash": f"synthetic-{n}-{d}-{seed}", "count_in_source": n,
                "encoder": {"name": "synthetic", "sha256": "0" * 64}, "dim": d, "shard_size": shard_size}
    _finalize(out, identity, -(-n // shard_size))
    return out


def distributed_select(emb: Path, k: int, processes: int, method: str = "kcenter", extra: tuple = ()) -> dict:
    """Wall time of `subsets.distributed_kcenter` (or `distributed_kmeans`) launched on `processes` gloo processes
    (one thread each when more than one, so they do not fight over the cores), and each rank's own figures."""
    import os
    import re
    import subprocess

    out = emb.parent / f"order-{method}-{emb.name}-{k}-{processes}.npy"
    threads = str(max(1, (os.cpu_count() or 1) // processes))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
           "-m", f"subsets.distributed_{method}", str(emb), "--k", str(k), "--out", str(out), *extra]
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": threads})
    wall = time.perf_counter() - start
    if res.returncode:
        raise SystemExit(res.stderr[-2000:])
    ranks = re.findall(r"rank \d+ of \d+: [\d,]+ picks in ([\d.]+) s, peak RSS ([\d,]+) MiB", res.stdout)
    mapped = [int(b.replace(",", "")) for b in re.findall(r"\(([\d,]+) bytes of vectors\)", res.stdout)]
    return {"wall": wall, "select": max(float(t) for t, _ in ranks), "peak_mib": max(int(m.replace(",", "")) for _, m in ranks),
            "mapped_mib": max(mapped) / 2**20, "order": np.load(out)}


def launches(a, run, equal):
    """(N, k, processes, run's result, "yes" when it equals the first process count's) for every --sizes, --ks and
    --processes, on synthetic embeddings directories written once."""
    for n in a.sizes:
        emb = write_embeddings_dir(a.work / f"emb-{n}-{a.dim}", n, a.dim)
        for k in a.ks:
            first = None
            for p in a.processes:
                r = run(emb, k, p)
                first = first or r
                yield n, k, p, r, "yes" if equal(r, first) else "NO"


def distributed_main(a) -> None:
    console = Console(width=130)
    what = "k-center" if a.method == "kcenter" else "balanced k-means (20 Lloyd iterations)"
    table = Table(title=f"{what} over mapped embedding shards, d = {a.dim} (fp16 on disk), 1 and 2 processes")
    for col in ("N", "k", "processes", "select s", "launch + select s", "rows / s / pick", "peak RSS per process MiB",
                "vectors mapped per process MiB", "same order as 1 process"):
        table.add_column(col, justify="right")
    for n, k, p, r, same in launches(a, lambda emb, k, p: distributed_select(emb, k, p, a.method),
                                     lambda r, one: np.array_equal(r["order"], one["order"])):
        rate = f"{n * k / r['select'] / 1e6:.1f}M" if a.method == "kcenter" else "-"  # per pick: k-center's
        table.add_row(f"{n:,}", f"{k:,}", str(p), f"{r['select']:.1f}", f"{r['wall']:.1f}",
                      rate, f"{r['peak_mib']:,}", f"{r['mapped_mib']:,.0f}", same)
        console.print(f"N = {n:,}, k = {k:,}, {p} process(es): {r['select']:.1f} s, peak {r['peak_mib']:,} MiB")
    console.print(table)
    console.print("rows / s / pick: N x k / select seconds (the per-row rate docs/benchmarks.md's cost model projects from).")


def checkpoint_main(a) -> None:
    """The ordering saving its checkpoint at every chance (k-center: each apply; k-means: each pass; the job saves
    once a minute) against no saving."""
    import shutil

    def plain_and_saving(emb: Path, k: int, p: int) -> dict:
        folder = a.work / f"checkpoint-{a.method}-{emb.name}-{k}-{p}"
        shutil.rmtree(folder, ignore_errors=True)
        saving = distributed_select(emb, k, p, a.method, extra=("--checkpoint", str(folder), "--save-every", "0"))
        size = sum(f.stat().st_size for f in folder.glob("*.npy"))  # the last save: one generation is kept
        return {"plain": distributed_select(emb, k, p, a.method), "saving": saving, "size": size}

    console = Console(width=130)
    each = "apply" if a.method == "kcenter" else "pass"
    what = "k-center" if a.method == "kcenter" else "balanced k-means (20 Lloyd iterations)"
    table = Table(title=f"{what} with a checkpoint saved at every {each}, d = {a.dim} (fp16 on disk)")
    for col in ("N", "k", "processes", "select s, no saves", f"select s, a save per {each}", "bytes a save",
                "same order as 1 process without saves"):
        table.add_column(col, justify="right")
    for n, k, p, r, same in launches(a, plain_and_saving,
                                     lambda r, one: np.array_equal(r["saving"]["order"], one["plain"]["order"])):
        table.add_row(f"{n:,}", f"{k:,}", str(p), f"{r['plain']['select']:.1f}", f"{r['saving']['select']:.1f}",
                      f"{r['size']:,}", same)
    console.print(table)


def job_select(emb: Path, k: int, processes: int, method: str, dedup: float | None, device: str = "cpu",
               mapped: bool = False) -> dict:
    """Wall time and peak RSS (the largest process) of the whole `distill subset select` job, torchrun on `processes`
    processes: checks of the shards, dedup, the ordering (its products on `device`), the coverage report and the
    manifest; `mapped`: --mapped (one process runs the k-means methods and dedup over the maps too)."""
    import json
    import os
    import shutil
    import subprocess

    out = emb.parent / f"job-{method}-{emb.name}-{k}-{processes}-{dedup}-{device}-{mapped}"
    shutil.rmtree(out, ignore_errors=True)
    threads = str(max(1, (os.cpu_count() or 1) // processes))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
           "-m", "distill", "subset", "select", "--embeddings", str(emb), "--method", method, "--k-max", str(k),
           "--out", str(out), "--device", device] + (["--dedup", str(dedup)] if dedup is not None else []) + \
        (["--mapped"] if mapped else [])
    # a wrapper process reports the largest of its descendants (a rank: torchrun waits for each) for this job alone
    wrapper = [sys.executable, "-c", "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
               "print('PEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"]
    start = time.perf_counter()
    res = subprocess.run(wrapper + cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": threads})
    wall = time.perf_counter() - start
    if res.returncode:
        raise SystemExit(res.stderr[-2000:])
    manifest = json.loads((out / "manifest.json").read_text())
    peak = int(res.stdout.rsplit("PEAK", 1)[1].split()[0]) / 1024
    return {"wall": wall, "select": manifest["select_seconds"], "peak_mib": peak, "hash": manifest["hash"],
            "order": np.load(out / "order.npy"), "coverage": manifest["coverage"]}


def job_main(a) -> None:
    console = Console(width=130)
    mapped = " --mapped" if a.mapped else ""
    table = Table(title=f"the whole selection job (`distill subset select{mapped}` under torchrun), d = {a.dim} "
                        "(fp16 on disk)")
    for col in ("N", "method", "dedup", "k", "processes", "job s", "selection s (dedup + order)",
                "coverage and the rest s", "peak RSS per process MiB", "vectors MiB", "same manifest"):
        table.add_column(col, justify="right")
    for n, k, p, r, same in launches(a, lambda emb, k, p: job_select(emb, k, p, a.method, a.dedup, a.device, a.mapped),
                                     lambda r, one: r["hash"] == one["hash"]):
        table.add_row(f"{n:,}", a.method, str(a.dedup), f"{k:,}", str(p), f"{r['wall']:.1f}",
                      f"{r['select']:.1f}", f"{r['wall'] - r['select']:.1f}", f"{r['peak_mib']:,.0f}",
                      f"{n * a.dim * 2 / 2**20:,.0f}", same)
        console.print(f"N = {n:,}, k = {k:,}, {p} process(es): job {r['wall']:.1f} s "
                      f"(selection {r['select']:.1f} s), peak {r['peak_mib']:,.0f} MiB")
    console.print(table)
    console.print("peak RSS: the largest process of the job. 'coverage and the rest' includes starting the processes "
                  "and checking the shards.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[50_000, 100_000, 200_000])
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--niter", type=int, default=20)
    p.add_argument("--distributed", action="store_true",
                   help="k-center (or --method kmeans) over a mapped embeddings directory in 1 and 2 processes "
                        "(--sizes, --ks, --processes)")
    p.add_argument("--job", action="store_true",
                   help="the whole `distill subset select` job (checks, --dedup, ordering, coverage, manifest) in 1 and "
                        "2 processes (--sizes, --ks, --processes, --method, --dedup)")
    p.add_argument("--dedup", type=float, default=None, help="with --job")
    p.add_argument("--device", default="cpu", help="with --job: where the ordering's products run (cpu or cuda)")
    p.add_argument("--mapped", action="store_true", help="with --job: pass --mapped (k-means methods and dedup over "
                                                        "the maps in one process too)")
    p.add_argument("--method", default="kcenter", help="with --distributed: kcenter or kmeans; with --job: any")
    p.add_argument("--ks", type=int, nargs="+", default=[1000, 10_000])
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--work", type=Path, default=Path("/tmp/bench-select"), help="where the synthetic embeddings go")
    p.add_argument("--checkpoint-cost", action="store_true",
                   help="the ordering (--method) saving its checkpoint at every apply or pass against none (--sizes, "
                        "--ks, --processes)")
    a = p.parse_args()
    if a.checkpoint_cost:
        return checkpoint_main(a)
    if a.job:
        return job_main(a)
    if a.distributed:
        if a.method not in ("kcenter", "kmeans"):
            raise SystemExit(f"--method {a.method}: --distributed times kcenter or kmeans")
        return distributed_main(a)
    console = Console(width=130)  # the table is meant for logs and notes, not an 80-column terminal
    table = Table(title=f"selection wall time, d = {a.dim}, k = {a.k} (seconds)")
    for col in ("N", "kcenter", "x per 2N", "kcenter plain numpy", "speed-up",
                "kmeans (faiss)", "x per 2N", "kmeans plain numpy", "speed-up"):
        table.add_column(col, justify="right")
    prev = None
    for n in a.sizes:
        x = clustered_data(n, a.dim)
        clusters = select.default_clusters(n, a.k)
        kc = timed(lambda: select.kcenter_greedy(x, a.k, seed=0))
        kc_np = timed(lambda: select.kcenter_greedy(x, a.k, seed=0, batch=1))
        km = timed(lambda: select.kmeans_balanced(x, a.k, seed=0, clusters=clusters, niter=a.niter))
        km_np = timed(lambda: numpy_hierarchical(x, clusters, a.niter, seed=0))
        growth = (lambda t, i: f"{(t / prev[i]) ** (1 / np.log2(n / prev[2])):.2f}" if prev else "")
        table.add_row(f"{n:,}", f"{kc:.2f}", growth(kc, 0), f"{kc_np:.2f}", f"{kc_np / kc:.1f}x",
                      f"{km:.2f}", growth(km, 1), f"{km_np:.2f}", f"{km_np / km:.1f}x")
        console.print(f"N = {n:,}: kcenter {kc:.2f} s (plain {kc_np:.2f} s), kmeans {km:.2f} s "
                      f"(plain {km_np:.2f} s), clusters {clusters}")
        prev = (kc, km, n)
    console.print(table)
    console.print("x per 2N: time ratio per doubling of N (linear = 2). speed-up: plain numpy time / ours.")


if __name__ == "__main__":
    main()
