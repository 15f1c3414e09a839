"""The subset directory: an ordered, nested manifest (manifest.json, order.npy, keys.txt)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .fileio import output_dir_atomic, read_json, refuse_to_replace, write_json_atomic, write_npy_atomic
from .provenance import environment

FORMAT = "subset-distill/subset"
VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class Manifest:
    path: Path
    meta: dict
    order: np.ndarray  # int64 rows of the embeddings/corpus, selection order
    keys: list[str]

    @property
    def method(self) -> str:
        return self.meta["method"]

    @property
    def hash(self) -> str:
        return self.meta["hash"]

    def check_k(self, k: int) -> None:
        """A k the command line asked for (`--k`) must lie within this ordering."""
        if not 1 <= k <= len(self.order):
            raise InputError(f"--k {k}: outside 1..{len(self.order)}, the k_max of {self.path / 'manifest.json'}")

    def first(self, k: int) -> tuple[np.ndarray, list[str]]:
        """The k-subset: nested by construction, it is just the first k entries."""
        if k > len(self.order):
            raise InputError(f"{self.path}: k = {k} is more than this subset holds (k_max = {len(self.order)})")
        return self.order[:k], self.keys[:k]


def order_hash(order: np.ndarray, embeddings_hash: str) -> str:
    h = hashlib.sha256(embeddings_hash.encode())
    h.update(np.ascontiguousarray(order, dtype=np.int64).tobytes())
    return h.hexdigest()


def keys_hash(keys: list[str]) -> str:
    return hashlib.sha256("".join(k + "\n" for k in keys).encode()).hexdigest()


def refuse_to_replace_subset(out: Path, overwrite: bool) -> None:
    """`refuse_to_replace` for a subset folder: --overwrite replaces an earlier subset only."""
    refuse_to_replace(out, overwrite, MANIFEST, "subset")


def write_manifest(out: Path, meta: dict, order: np.ndarray, keys: list[str], overwrite: bool = False) -> Path:
    """Write the subset directory atomically: it appears whole or not at all."""
    order = np.asarray(order, dtype=np.int64)
    meta = {"format": FORMAT, "version": VERSION, **meta, "k_max": int(len(order)),
            "hash": order_hash(order, meta["embeddings"]["hash"]), "keys_sha256": keys_hash(keys),
            "environment": environment()}
    with output_dir_atomic(out, overwrite, MANIFEST, "subset") as tmp:
        write_npy_atomic(tmp / "order.npy", order)
        (tmp / "keys.txt").write_text("".join(k + "\n" for k in keys))
        write_json_atomic(tmp / MANIFEST, meta)
    return Path(out)


def read_manifest(path: Path) -> Manifest:
    """Read and check a subset directory."""
    path = Path(path)
    meta = read_json(path / MANIFEST, "subset manifest")
    if meta.get("format") != FORMAT:
        raise InputError(f"{path / MANIFEST}: not a subset manifest (format {meta.get('format')!r})")
    try:
        order = np.load(path / "order.npy")
    except (OSError, ValueError) as e:
        raise InputError(f"{path / 'order.npy'}: unreadable ({e})") from None
    keys = (path / "keys.txt").read_text().splitlines() if (path / "keys.txt").exists() else []
    if order.ndim != 1 or len(order) != meta["k_max"] or len(keys) != len(order):
        raise InputError(f"{path}: order.npy has {order.shape} entries, keys.txt {len(keys)}, manifest k_max {meta['k_max']}")
    if len(np.unique(order)) != len(order) or order.min() < 0 or order.max() >= meta["corpus_size"]:
        raise InputError(f"{path / 'order.npy'}: repeats or rows outside the corpus of {meta['corpus_size']}")
    if order_hash(order, meta["embeddings"]["hash"]) != meta["hash"]:
        raise InputError(f"{path / 'order.npy'}: content differs from the hash in manifest.json (edited?)")
    if "keys_sha256" in meta and keys_hash(keys) != meta["keys_sha256"]:  # the cache reads images by these keys
        raise InputError(f"{path / 'keys.txt'}: content differs from the sha256 in manifest.json (edited?); "
                         "select the subset again")
    return Manifest(path, meta, order, keys)
