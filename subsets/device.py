"""Where a selection job's distance products run: numpy and faiss on the CPU (the default), or torch on a GPU.

On the CPU each chunk's product runs on one BLAS thread, so a row's distance depends on nothing but its data and
orders are equal for any number of processes, bit for bit. On a GPU the products are torch matrix multiplications
over the same chunks: each chunk gets the same kernel whichever process holds it, so the orders are again equal for
any number of processes on one kind of GPU (by construction: not yet run on a GPU; the CPU tests run this path on
torch's CPU device), but they may differ from the CPU's where two distances tie to within float32 rounding. Only the
products move: the picks, bounds, sums and counts stay on the host, in row order, so the k-means sums are as
deterministic as on the CPU (a GPU's atomic index_add would not be).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np

from .errors import InputError

DEVICES = ("cpu", "cuda")


def check_device(name: str) -> None:
    """One line for a device this machine cannot run: an unknown name, CUDA without a GPU, or a GPU it lacks."""
    kind, _, index = name.partition(":")
    if name != "cpu" and kind != "cuda":
        raise InputError(f"--device {name}: unknown (choose from {', '.join(DEVICES)}, or cuda:N for one GPU)")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: this machine has no CUDA GPU that torch can use "
                             "(torch.cuda.is_available() is False); use --device cpu")
        if index and not (index.isdigit() and int(index) < torch.cuda.device_count()):
            raise InputError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")


def resolve_device(name: str):
    """The torch device of this process for `--device name`, or None for the CPU's numpy and faiss products. With
    several processes on a node, `cuda` is each process's own GPU (LOCAL_RANK, as torchrun and accelerate set it)."""
    check_device(name)
    if name == "cpu":
        return None
    import torch

    if name == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    return torch.device(name)


class DeviceChunks:
    """A process's row chunks on a device (`read(i)`: chunk i as stored), in the dtype they are stored in (fp16
    embeddings take half the memory) and given out as float32, as the CPU path converts them: kept there between
    passes when their `nbytes` fit in half of the device's free memory (on a CPU device: `host_bytes`), else copied
    over chunk by chunk at each pass."""

    def __init__(self, device, read, count: int, nbytes: int, host_bytes: int = 1 << 30):
        import torch

        self.device, self.read = device, read
        budget = torch.cuda.mem_get_info(device)[0] // 2 if device.type == "cuda" else host_bytes
        self.kept = [self._load(i) for i in range(count)] if nbytes <= budget else None

    def _load(self, i: int):
        import torch

        return torch.from_numpy(np.array(self.read(i))).to(self.device)  # a copy: maps are read-only

    def __getitem__(self, i: int):
        return (self.kept[i] if self.kept is not None else self._load(i)).float()


@contextmanager
def full_float32():
    """Float32 products in full float32 while in it, whatever the process set: TF32 (`high`) keeps 10 bits of
    mantissa, and distances rounded to 1e-3 reorder near picks and move pairs across a dedup threshold."""
    import torch

    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def _partial_d2(x, centers, centers_sq):
    """|c|^2 - 2 x.c of every row and center, in full float32: the squared distance but for the row's |x|^2."""
    import torch

    with full_float32():
        return torch.addmm(centers_sq[None], x, centers.T, alpha=-2.0)


def min_distances(x, centers, centers_sq, rows_sq) -> np.ndarray:
    """Each row's Euclidean distance to its nearest center (the CPU path's expansion |x|^2 - 2 x.c + |c|^2), as
    float32 on the host."""
    d2 = _partial_d2(x, centers, centers_sq).amin(1) + rows_sq
    return d2.clamp_min_(0.0).sqrt_().cpu().numpy()


def nearest(x, centers, centers_sq) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest center (the lowest index on ties, as faiss) and squared distance, on the host."""
    best, label = _partial_d2(x, centers, centers_sq).min(1)
    best += (x * x).sum(1)
    return label.cpu().numpy().astype(np.int64), best.clamp_min_(0.0).cpu().numpy()


def pairs_above(rows: np.ndarray, every: np.ndarray, threshold: float, device, block: int = 4096):
    """(position in rows, position in every) of each pair whose inner product is above the threshold, in blocks of
    rows."""
    import torch

    on = torch.from_numpy(every).to(device)
    hits = []
    with full_float32():
        for lo in range(0, len(rows), block):
            i, j = torch.nonzero(torch.from_numpy(rows[lo:lo + block]).to(device) @ on.T > threshold, as_tuple=True)
            hits.append((i.cpu().numpy() + lo, j.cpu().numpy()))
    return np.concatenate([h[0] for h in hits]), np.concatenate([h[1] for h in hits])
