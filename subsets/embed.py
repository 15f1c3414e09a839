"""Embed every image of a corpus with an encoder into fp16, L2-normalised safetensors shards.

The corpus is cut into fixed row ranges (shards) in source order. Each shard is written
atomically, so a killed job resumes at the first missing shard; with W processes, rank r owns
shards r, r + W, ..., so one process and many give the same files. `meta.json` is written last
and marks the directory complete.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_numpy
from safetensors.torch import save

from .errors import InputError
from .fileio import file_sha256, read_json, write_bytes_atomic, write_json_atomic, write_npy_atomic, write_text_atomic
from .jobs import resumable_job, shard_ranges
from .progress import progress_bar
from .provenance import environment
from .sources import ImageSource, UnreadableImage, decode_image

FORMAT = "subset-distill/embeddings"
VERSION = 1


class Encoder(Protocol):
    """What the embedding job needs of a model: the command line adapts teachers to this."""

    name: str
    sha256: str  # of the weights, recorded so later stages can tell encoders apart
    dim: int

    def preprocess(self, image: Image.Image) -> torch.Tensor: ...  # [3, H, W]
    def encode(self, batch: torch.Tensor) -> torch.Tensor: ...  # [B, dim]
    def to(self, device: torch.device) -> Encoder: ...


@dataclass
class EmbedConfig:
    batch_size: int = 32
    shard_size: int = 4096
    strict: bool = False  # an unreadable image fails the job instead of being skipped


@dataclass
class Embeddings:
    path: Path
    meta: dict
    keys: list[str]
    labels: np.ndarray | None  # int64, -1 where unknown
    vectors: np.ndarray  # float32 [N, d], L2-normalised

    @property
    def hash(self) -> str:
        return self.meta["hash"]


def shard_name(i: int) -> str:
    return f"emb-{i:05d}.safetensors"


def embed_corpus(source: ImageSource, encoder: Encoder, out: Path, config: EmbedConfig = EmbedConfig(),
                 accelerator=None) -> Path:
    """Embed `source` into `out`, resuming whatever complete shards are already there."""
    from accelerate import Accelerator

    for name in ("batch_size", "shard_size"):  # 0 would hold the whole corpus in one batch, or divide by it
        if getattr(config, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} {getattr(config, name)}: must be at least 1")
    acc = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    out = Path(out)
    index = source.index()
    identity = {
        "source": source.description, "corpus_hash": source.corpus_hash(), "count_in_source": len(index),
        "encoder": {"name": encoder.name, "sha256": encoder.sha256}, "dim": encoder.dim,
        "shard_size": config.shard_size,
    }
    if (out / "meta.json").exists():
        _check_identity(out / "meta.json", read_json(out / "meta.json", "embeddings metadata"), identity)
        if acc.is_main_process:
            print(f"{out}: already complete, nothing to do")
        return out
    if (out / "progress.json").exists():
        _check_identity(out / "progress.json", read_json(out / "progress.json", "embedding progress"), identity)
    elif out.exists() and any(out.iterdir()):
        raise InputError(f"{out}: exists and is not an embeddings directory (no meta.json or progress.json)")
    with resumable_job(out, identity, acc):
        _embed_missing_shards(source, encoder, out, config, acc, len(index))
        acc.wait_for_everyone()
        if acc.is_main_process:
            cost = encoder_cost(encoder.to(acc.device), acc.device)
            _finalize(out, identity, len(shard_ranges(len(index), config.shard_size)), cost)
    return out


def encoder_cost(encoder: Encoder, device) -> dict[str, int]:
    """What embedding one image costs: the multiply-accumulates of the encoder's forward pass on an image as its own
    preprocessing makes it (`subsets.macs`). A run's compute account charges them once per corpus image to the
    subsets whose selection read the embeddings."""
    from .macs import mac_counter, macs

    pixels = encoder.preprocess(Image.new("RGB", (224, 224)))
    counter = mac_counter()
    with torch.no_grad(), counter:
        encoder.encode(pixels[None].to(device))
    return {"macs": macs(counter), "img_size": int(pixels.shape[-1])}


IDENTITY = ("corpus_hash", "encoder", "dim", "shard_size")  # the source's path may move; its content may not


def _check_identity(path: Path, found: dict, expected: dict) -> None:
    for field in IDENTITY:
        if found.get(field) != expected[field]:
            what = "another corpus" if field == "corpus_hash" else f"{field} = {json.dumps(found.get(field))}"
            raise InputError(f"{path}: made from {what}, not the one given now ({field} = "
                             f"{json.dumps(expected[field])}); use another --out or delete it")


def _embed_missing_shards(source, encoder, out, config, acc, n_rows) -> None:
    ranges = shard_ranges(n_rows, config.shard_size)
    todo = {s for s in range(acc.process_index, len(ranges), acc.num_processes) if not (out / shard_name(s)).exists()}
    if not todo:
        return
    encoder = encoder.to(acc.device)
    rows_todo = sum(ranges[s][1] - ranges[s][0] for s in todo)
    shard = _ShardBuffer(encoder, config, acc.device)
    with progress_bar("img", enabled=acc.is_local_main_process) as bar:
        task = bar.add_task(f"embed [{acc.process_index}/{acc.num_processes}]", total=rows_todo)
        for row, record in source.records_of_rows([ranges[s] for s in sorted(todo)]):
            s = row // config.shard_size
            shard.add(record)
            bar.advance(task)
            if row == ranges[s][1] - 1:
                write_bytes_atomic(out / shard_name(s), shard.finish())


class _ShardBuffer:
    """Collects one shard's rows, encoding them a batch at a time."""

    def __init__(self, encoder: Encoder, config: EmbedConfig, device):
        self.encoder, self.config, self.device = encoder, config, device
        self._reset()

    def _reset(self):
        self.keys, self.labels, self.skipped, self.pending, self.vectors = [], [], [], [], []

    def add(self, record) -> None:
        try:
            image = decode_image(record)
        except UnreadableImage as e:
            if self.config.strict:
                raise InputError(f"{e} (--strict)") from None
            self.skipped.append({"key": e.key, "origin": e.origin, "error": e.reason})
            return
        self.keys.append(record.key)
        self.labels.append(-1 if record.label is None else record.label)
        self.pending.append(self.encoder.preprocess(image))
        if len(self.pending) == self.config.batch_size:
            self._flush()

    @torch.inference_mode()
    def _flush(self) -> None:
        if self.pending:
            batch = torch.stack(self.pending).to(self.device)
            vec = torch.nn.functional.normalize(self.encoder.encode(batch).float(), dim=1)
            self.vectors.append(vec.half().cpu())
            self.pending = []

    def finish(self) -> bytes:
        self._flush()
        emb = torch.cat(self.vectors) if self.vectors else torch.zeros(0, self.encoder.dim, dtype=torch.float16)
        data = save(
            {"emb": emb.contiguous(), "label": torch.tensor(self.labels, dtype=torch.int64)},
            # One metadata entry: safetensors does not keep the order of several, and resumed or
            # parallel runs must write byte-identical shards.
            metadata={"info": json.dumps({"keys": self.keys, "skipped": self.skipped})},
        )
        self._reset()
        return data


def _read_shard(path: Path, dim: int | None = None) -> tuple[dict, dict]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "np") as f:
            meta = f.metadata() or {}
        tensors = load_numpy(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable safetensors shard ({e})") from None
    emb = tensors.get("emb")
    if emb is None or emb.ndim != 2 or "info" not in meta:
        raise InputError(f"{path}: not an embeddings shard (needs an 'emb' [n, d] tensor and its keys)")
    info = json.loads(meta["info"])
    if dim is not None and emb.shape[1] != dim:
        raise InputError(f"{path}: wrong dimension: emb is [{emb.shape[0]}, {emb.shape[1]}], meta.json says dim {dim}")
    if len(info["keys"]) != emb.shape[0]:
        raise InputError(f"{path}: {emb.shape[0]} vectors but {len(info['keys'])} keys")
    return tensors, info


def _finalize(out: Path, identity: dict, n_shards: int, cost: dict | None = None) -> None:
    keys, labels, skipped, shards = [], [], [], []
    for s in range(n_shards):
        path = out / shard_name(s)
        tensors, meta = _read_shard(path, identity["dim"])
        keys += meta["keys"]
        labels.append(tensors["label"])
        skipped += meta["skipped"]
        shards.append({"file": path.name, "count": len(meta["keys"]), "sha256": file_sha256(path)})
    if not keys:
        raise InputError(f"{identity['source']}: none of its {identity['count_in_source']} images could be read")
    label_arr = np.concatenate(labels)
    write_text_atomic(out / "keys.txt", "".join(k + "\n" for k in keys))
    if (label_arr >= 0).any():
        write_npy_atomic(out / "labels.npy", label_arr)
    meta = {
        "format": FORMAT, "version": VERSION, **identity, "dtype": "float16", "normalized": True,
        "count": len(keys), "skipped_count": len(skipped), "skipped": skipped, "shards": shards,
        "has_labels": bool((label_arr >= 0).any()), "encoder_cost": cost,
        "hash": _content_hash(identity, shards), "environment": environment(),
    }
    write_json_atomic(out / "meta.json", meta)
    (out / "progress.json").unlink(missing_ok=True)
    if skipped:
        print(f"{out}: skipped {len(skipped)} unreadable image(s), listed in meta.json; first: "
              f"{skipped[0]['key']!r} ({skipped[0]['error']})")


def _content_hash(identity: dict, shards: Sequence[dict]) -> str:
    h = hashlib.sha256(json.dumps(identity, sort_keys=True).encode())
    for s in shards:
        h.update(s["sha256"].encode())
    return h.hexdigest()


def load_embeddings(path: Path, verify: bool = True) -> Embeddings:
    """Read a complete embeddings directory, checking it is whole and consistent."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such embeddings directory")
    if not (path / "meta.json").exists():
        hint = " (the embed job has not finished: rerun it to resume)" if (path / "progress.json").exists() else ""
        raise InputError(f"{path}: not a complete embeddings directory, meta.json is missing{hint}")
    meta = read_json(path / "meta.json", "embeddings metadata")
    if meta.get("format") != FORMAT:
        raise InputError(f"{path / 'meta.json'}: not an embeddings directory (format {meta.get('format')!r})")
    vectors, shard_keys = [], []
    for s in meta["shards"]:
        shard = path / s["file"]
        if not shard.exists():
            raise InputError(f"{shard}: missing (listed in meta.json)")
        if verify and file_sha256(shard) != s["sha256"]:
            raise InputError(f"{shard}: content differs from the sha256 in meta.json (edited or truncated)")
        tensors, info = _read_shard(shard, meta["dim"])
        vectors.append(tensors["emb"])
        shard_keys += info["keys"]
    keys = (path / "keys.txt").read_text().splitlines()
    emb = np.concatenate(vectors).astype(np.float32)
    if len(keys) != emb.shape[0] or emb.shape[0] != meta["count"]:
        raise InputError(f"{path}: keys.txt has {len(keys)} keys, shards {emb.shape[0]} rows, meta.json count {meta['count']}")
    if keys != shard_keys:  # a row's key must be the image its vector came from
        row = next(i for i, (a, b) in enumerate(zip(keys, shard_keys)) if a != b)
        raise InputError(f"{path / 'keys.txt'}: line {row + 1} is {keys[row]!r}, the shards hold {shard_keys[row]!r} "
                         "at that row (edited?); rerun the embed job into another --out")
    labels = np.load(path / "labels.npy") if (path / "labels.npy").exists() else None
    return Embeddings(path, meta, keys, labels, emb)
