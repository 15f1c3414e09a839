"""Selection speed: kcenter and kmeans wall time as N doubles, and against plain numpy.

    python benchmarks/select.py                       # N = 50k, 100k, 200k; d = 384; k = 1000
    python benchmarks/select.py --sizes 20000 40000   # quicker

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


def clustered_data(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, d)).astype(np.float32)
    weights = rng.lognormal(0, 1, 2000)
    lab = rng.choice(2000, size=n, p=weights / weights.sum())
    x = centres[lab] / np.sqrt(d) + 0.5 * rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[50_000, 100_000, 200_000])
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--niter", type=int, default=20)
    a = p.parse_args()
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
