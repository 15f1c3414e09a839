"""The target cache: a teacher run once per stored view of a subset, its outputs in safetensors shards.

Shard s holds manifest positions [s * shard_size, ...): `cls` [S, V, D], `patch` [S, V, N, D],
optionally `embed` [S, V, F] (fp16), `view` [S, V, 5] (crop box and flip) and `row` [S]. Shards
are written atomically and `index.json` last; a rerun skips complete shards; with W processes,
rank r writes shards r, r + W, ... . A cache made for k serves every smaller k.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from subsets.errors import InputError
from subsets.fileio import file_sha256, read_json, write_bytes_atomic, write_json_atomic
from subsets.jobs import resumable_job, shard_ranges
from subsets.manifest import Manifest
from subsets.progress import progress_bar
from subsets.provenance import environment
from subsets.sources import ImageSource, UnreadableImage, collect_records, decode_image

from .base import Teacher, is_layer
from .stats import StatsConfig, stats_computed, target_stats
from .views import ViewPolicy, apply_view, views_for

FORMAT = "subset-distill/targets"
VERSION = 2  # 2: target statistics of the corpus (stats.safetensors, index.json `stats`)
STATS_FILE = "stats.safetensors"


@dataclass
class CacheConfig:
    views: ViewPolicy = field(default_factory=ViewPolicy)
    batch_size: int = 32  # images per teacher batch (each brings `views` crops)
    shard_size: int = 256  # images per shard: the resume unit
    patch_grid: int | None = None  # pool patch tokens to g x g before storing
    strict: bool = False  # an unreadable image fails the job instead of being skipped
    stats: StatsConfig = field(default_factory=StatsConfig)  # the corpus sample for target statistics


def bytes_per_image_view(teacher: Teacher, patch_grid: int | None) -> int:
    """(1 + N) * D * 2 bytes of fp16 tokens, plus the embedding, the intermediate maps and the view parameters."""
    n = (patch_grid or teacher.info.grid) ** 2
    cap = patch_grid ** 2 if patch_grid else None  # maps finer than --patch-grid are pooled to it
    layers = sum(min(layer["tokens"], cap or layer["tokens"]) * layer["dim"] for layer in teacher.info.layers.values())
    return ((1 + n) * teacher.info.token_dim + (teacher.info.embed_dim or 0) + layers) * 2 + 5 * 4


def shard_name(s: int) -> str:
    return f"shard-{s:05d}.safetensors"


# What a cache's targets depend on besides its teacher and subset, required alike of a cache to grow it and by its
# fingerprint; the teacher's `source` is only where its weights were read from
HELD = ("views", "view_policy", "dtype", "patch_grid", "shard_size")
TEACHER_PLACE = "source"


def cache_identity(teacher: Teacher, subset: Manifest, config: CacheConfig) -> dict:
    return json.loads(json.dumps({  # as it reads back from index.json: tuples become lists
        "teacher": teacher.info.to_dict(), "views": config.views.views, "view_policy": config.views.to_dict(),
        "dtype": "float16", "patch_grid": config.patch_grid or teacher.info.grid, "shard_size": config.shard_size,
        "subset": {"hash": subset.hash, "method": subset.method, "path": str(Path(subset.path).resolve())},
    }))


def targets_fingerprint(index: dict) -> str:
    """A cache known by what it holds rather than where it lies: the settings `_check_same` requires of a cache to
    grow it (teacher weights, not their place; views; subset), and its target statistics. Growing a cache to a
    larger k keeps it: the targets of its first images do not change."""
    teacher = {k: v for k, v in index.get("teacher", {}).items() if k != TEACHER_PLACE}
    stats = index.get("stats") or {}
    held = {"teacher": teacher, "subset": index.get("subset", {}).get("hash"),
            "stats": {k: stats.get(k) for k in ("samples", "seed", "sha256")} if stats else None,
            **{k: index.get(k) for k in HELD}}
    return hashlib.sha256(json.dumps(held, sort_keys=True).encode()).hexdigest()


def cache_targets(source: ImageSource, subset: Manifest, teacher: Teacher, out: Path, k: int | None = None,
                  config: CacheConfig = CacheConfig(), accelerator=None) -> Path:
    """Run `teacher` over the first k images of `subset` (all of it by default) and store its targets."""
    from accelerate import Accelerator

    acc = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    k = len(subset.order) if k is None else k
    _check_inputs(source, subset, teacher, config, k)
    out = Path(out)
    identity = cache_identity(teacher, subset, config)
    previous = _previous_run(out, identity)
    if previous.get("complete") and previous["k"] >= k:
        if "stats" not in previous and acc.is_main_process:  # made before caches stored statistics
            stats = _write_stats(out, source, teacher, config, acc.device)
            write_json_atomic(out / "index.json", previous | {"version": VERSION, "stats": stats})
        elif acc.is_main_process:
            print(f"{out}: already holds k = {previous['k']} (>= {k}), nothing to do")
        acc.wait_for_everyone()
        return out
    _check_same_stats(out, previous, config)
    per_view = bytes_per_image_view(teacher, config.patch_grid)
    if acc.is_main_process:
        total = k * config.views.views * per_view
        print(f"storage estimate: {k:,} images x {config.views.views} views x {per_view:,} B = {total / 2**20:,.1f} MiB")
    with resumable_job(out, identity, acc):
        known = {sh["file"]: sh["sha256"] for sh in previous.get("shards", [])}  # hashes of a finished run
        _write_missing_shards(source, subset, teacher, out, k, config, acc, known)
        acc.wait_for_everyone()
        if acc.is_main_process:
            stats = previous.get("stats") or _write_stats(out, source, teacher, config, acc.device)
            index = _write_index(out, identity, k, config, stats)
            print(f"wrote {out}: {index['bytes'] / 2**20:,.1f} MiB in {len(index['shards'])} shards")
    return out


def _check_same_stats(out: Path, previous: dict, config: CacheConfig) -> None:
    """Growing a cache keeps its statistics: runs on its smaller k were normalised by them, so other ones would give
    one cache two target spaces."""
    stats = previous.get("stats")
    if stats and (stats["samples"], stats["seed"]) != (config.stats.samples, config.stats.seed):
        raise InputError(f"{out}: holds target statistics on {stats['samples']:,} images (seed {stats['seed']}), "
                         f"asked for {config.stats.samples:,} (seed {config.stats.seed}); grow it with the same "
                         "--stats-samples, or cache into another --out")


def _check_inputs(source, subset, teacher, config, k) -> None:
    subset.check_k(k)
    if source.corpus_hash() != subset.meta["embeddings"]["corpus_hash"]:
        raise InputError(f"{source.description}: not the corpus {subset.path} was selected from "
                         f"({subset.meta['embeddings']['source']}; the keys or labels differ)")
    if config.patch_grid is not None and not 1 <= config.patch_grid <= teacher.info.grid:
        raise InputError(f"--patch-grid {config.patch_grid}: must lie in 1..{teacher.info.grid}, "
                         f"the patch grid of {teacher.info.name} at {teacher.info.resolution} px")
    if config.views.views < 1:
        raise InputError(f"--views {config.views.views}: at least one view is needed")
    for flag, value in (("--batch-size", config.batch_size), ("--shard-size", config.shard_size),
                        ("--stats-samples", config.stats.samples)):
        if value < 1:
            raise InputError(f"{flag} {value}: must be at least 1")


def _previous_run(out: Path, identity: dict) -> dict:
    """What a previous run left in `out` (index.json or progress.json), refused if made otherwise."""
    for name in ("index.json", "progress.json"):
        if (out / name).exists():
            found = read_json(out / name, "target cache")
            _check_same(out / name, found, identity)
            return found
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out}: exists and is not a target cache (no index.json or progress.json)")
    return {}


def _check_same(path: Path, found: dict, identity: dict) -> None:
    if found.get("subset", {}).get("hash") != identity["subset"]["hash"]:
        raise InputError(f"{path}: made for another subset ({found.get('subset', {}).get('path')}), "
                         f"not {identity['subset']['path']}")
    t_found, t_want = found.get("teacher", {}), identity["teacher"]
    if (t_found.get("name"), t_found.get("sha256")) != (t_want["name"], t_want["sha256"]):
        raise InputError(f"{path}: made with teacher {t_found.get('name')} (weights {str(t_found.get('sha256'))[:12]}), "
                         f"not {t_want['name']} (weights {t_want['sha256'][:12]})")
    # the same weights read from another place are the same teacher
    if {k: v for k, v in t_found.items() if k != TEACHER_PLACE} != {k: v for k, v in t_want.items() if k != TEACHER_PLACE}:
        raise InputError(f"{path}: made with other teacher settings ({json.dumps(t_found)}); use another --out")
    for key in HELD:
        if found.get(key) != identity[key]:
            raise InputError(f"{path}: made with other {key} ({json.dumps(found.get(key))}); use another --out")


def _shard_is_complete(path: Path, start: int, stop: int, sha256: str | None = None) -> bool:
    """A shard written for [start, stop), readable, and equal to its recorded hash where one is known."""
    if not path.exists():
        return False
    if sha256 is not None and file_sha256(path) != sha256:
        print(f"{path}: differs from the sha256 in index.json, writing it again")
        return False
    try:
        with safe_open(str(path), "pt") as f:
            info = json.loads((f.metadata() or {}).get("info", "{}"))
    except (SafetensorError, OSError, ValueError):
        return False  # a damaged shard is simply written again
    return (info.get("start"), info.get("stop")) == (start, stop)


def _write_missing_shards(source, subset, teacher, out, k, config, acc, known: dict) -> None:
    ranges = shard_ranges(k, config.shard_size)
    todo = [s for s in range(acc.process_index, len(ranges), acc.num_processes)
            if not _shard_is_complete(out / shard_name(s), *ranges[s], known.get(shard_name(s)))]
    if not todo:
        return
    keys = [subset.keys[p] for s in todo for p in range(*ranges[s])]
    records = collect_records(source, keys)
    teacher.to(acc.device)
    with progress_bar("img", enabled=acc.is_local_main_process) as bar:
        task = bar.add_task(f"cache [{acc.process_index}/{acc.num_processes}]", total=len(keys))
        for s in todo:
            start, stop = ranges[s]
            data = _shard_bytes(records, subset, teacher, start, stop, config, acc.device, lambda n: bar.advance(task, n))
            write_bytes_atomic(out / shard_name(s), data)


def _shard_bytes(records, subset, teacher, start, stop, config, device, advance) -> bytes:
    policy = config.views
    views = np.stack([views_for(policy, p) for p in range(start, stop)])  # [S, V, 5]
    outputs: dict[str, list[torch.Tensor]] = {}
    skipped = []
    for b0 in range(start, stop, config.batch_size):
        crops = []
        for p in range(b0, min(stop, b0 + config.batch_size)):
            key = subset.keys[p]
            try:
                image = decode_image(records[key])
            except UnreadableImage as e:
                if config.strict:
                    raise InputError(f"{e} (--strict)") from None
                skipped.append({"position": p, "key": key, "error": e.reason})
                image = None
            for v in range(policy.views):
                crops.append(torch.zeros(3, teacher.info.resolution, teacher.info.resolution) if image is None
                             else teacher.normalize(apply_view(image, views[p - start, v], teacher.info.resolution)))
        # A short batch (a shard's or the subset's tail) is padded to the full size: kernels chosen by batch size
        # round differently, and an image's targets must not depend on k (the first k of a grown cache equal a cache
        # made for k; measured: 0.2% of values 1 fp16 ulp apart at one thread without it).
        batch = torch.stack(crops)
        full = config.batch_size * policy.views
        padded = torch.cat([batch, batch.new_zeros(full - len(batch), *batch.shape[1:])]) if len(batch) < full else batch
        for name, t in teacher_targets(teacher, padded.to(device), config.patch_grid).items():
            outputs.setdefault(name, []).append(t[:len(batch)].half().cpu())
        advance(len(crops) // policy.views)
    n = stop - start
    tensors = {name: torch.cat(ts).reshape(n, policy.views, *ts[0].shape[1:]).contiguous() for name, ts in outputs.items()}
    for item in skipped:  # an unreadable image keeps its row, zeroed, and is listed as skipped
        for t in tensors.values():
            t[item["position"] - start] = 0
    tensors["view"] = torch.from_numpy(views).float()
    tensors["row"] = torch.arange(start, stop, dtype=torch.int64)
    info = {"start": start, "stop": stop, "skipped": skipped}
    return save(tensors, metadata={"info": json.dumps(info)})


@torch.no_grad()
def teacher_targets(teacher: Teacher, batch: torch.Tensor, patch_grid: int | None = None) -> dict[str, torch.Tensor]:
    """The teacher's outputs for a batch of views, patch tokens (and intermediate maps finer than that) pooled to
    patch_grid x patch_grid if asked."""
    out = teacher(batch)
    if not patch_grid:
        return out
    for name in [n for n in out if n == "patch" or is_layer(n)]:
        g = math.isqrt(out[name].shape[1])
        if patch_grid < g or (name == "patch" and patch_grid != g):
            fmap = out[name].transpose(1, 2).reshape(len(batch), -1, g, g)
            out[name] = F.adaptive_avg_pool2d(fmap, patch_grid).flatten(2).transpose(1, 2)
    return out


def _write_stats(out: Path, source: ImageSource, teacher: Teacher, config: CacheConfig, device) -> dict:
    """The teacher's target statistics on a seeded sample of the corpus, beside the shards; their index entry."""
    again = " (computed earlier in this process)" if stats_computed(teacher, source, config.patch_grid, config.stats) else ""
    n = min(config.stats.samples, len(source.index()))  # --stats-samples is an upper bound: a small corpus has fewer
    print(f"target statistics: {teacher.info.name} on {n:,} images of {source.description}{again}")
    stats = target_stats(teacher, source, config.patch_grid, config.stats, device)
    write_bytes_atomic(out / STATS_FILE, save({k: v.contiguous() for k, v in stats.items()}))
    return {"file": STATS_FILE, "samples": config.stats.samples, "seed": config.stats.seed,
            "source": source.description, "sha256": file_sha256(out / STATS_FILE)}


def _write_index(out: Path, identity: dict, k: int, config: CacheConfig, stats: dict) -> dict:
    shards, skipped = [], []
    for s, (start, stop) in enumerate(shard_ranges(k, config.shard_size)):
        path = out / shard_name(s)
        with safe_open(str(path), "pt") as f:
            skipped += json.loads(f.metadata()["info"])["skipped"]
        shards.append({"file": path.name, "start": start, "count": stop - start, "bytes": path.stat().st_size,
                       "sha256": file_sha256(path)})
    for stale in sorted(out.glob("shard-*.safetensors"))[len(shards):]:
        stale.unlink()  # from an earlier, larger k: not part of this index
    index = {"format": FORMAT, "version": VERSION, **identity, "k": k, "shards": shards, "skipped": skipped,
             "bytes": sum(s["bytes"] for s in shards), "stats": stats, "environment": environment(), "complete": True}
    write_json_atomic(out / "index.json", index)
    (out / "progress.json").unlink(missing_ok=True)
    return index


_DTYPES = {"F16": np.float16, "F32": np.float32, "I64": np.int64}  # all that a cache stores


class _MappedShard:
    """A safetensors file memory-mapped as numpy views: indexing a row copies only that row.

    safetensors checks the header first (its length, dtypes, shapes, and offsets inside the file, contiguous, not
    overlapping and covering it), so a damaged or crafted shard is refused in one line rather than read as the
    wrong bytes; only the dtypes a cache may hold are checked here."""

    def __init__(self, path: Path):
        import mmap
        import struct

        try:
            with safe_open(str(path), "np"):
                pass
        except (SafetensorError, OSError) as e:
            raise InputError(f"{path}: not a valid safetensors shard ({e}); rerun `distill cache` to rewrite it") from None
        with open(path, "rb") as f:
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        (n,) = struct.unpack("<Q", self._mm[:8])
        header = json.loads(self._mm[8:8 + n])
        self.metadata = header.pop("__metadata__", {})
        self.arrays = {}
        for name, t in header.items():
            if t["dtype"] not in _DTYPES:  # valid safetensors, but not what a cache stores (e.g. BF16)
                raise InputError(f"{path}: tensor {name!r} has dtype {t['dtype']}; a target cache holds only "
                                 f"{', '.join(_DTYPES)}")
            start, stop = t["data_offsets"]
            dtype = np.dtype(_DTYPES[t["dtype"]])
            self.arrays[name] = np.frombuffer(self._mm, dtype, (stop - start) // dtype.itemsize,
                                              8 + n + start).reshape(t["shape"])

    def close(self) -> None:
        self.arrays = {}
        self._mm.close()


_verified: set = set()  # (shard, size, mtime, sha256) hashed intact in this process


class TargetCache:
    """Memory-mapped, random access to cached targets by manifest position."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not (self.path / "index.json").exists():
            hint = " (the cache job has not finished: rerun it to resume)" if (self.path / "progress.json").exists() else ""
            raise InputError(f"{self.path}: not a complete target cache, index.json is missing{hint}")
        self.index = read_json(self.path / "index.json", "target cache index")
        if self.index.get("format") != FORMAT or not self.index.get("complete"):
            raise InputError(f"{self.path / 'index.json'}: not a complete target cache")
        for s in self.index["shards"]:
            f = self.path / s["file"]
            if not f.exists() or f.stat().st_size != s["bytes"]:
                raise InputError(f"{f}: missing or truncated ({f.stat().st_size if f.exists() else 0} of {s['bytes']} bytes)")
        self.shard_size = self.index["shard_size"]
        self.skipped = {item["position"] for item in self.index["skipped"]}
        self._shards: dict[int, _MappedShard] = {}
        self._pid = os.getpid()
        for sh in self.index["shards"]:  # every header checked now, before a run folder is made; mapped when read
            _MappedShard(self.path / sh["file"]).close()

    def __len__(self) -> int:
        return self.index["k"]

    @property
    def names(self) -> list[str]:
        arrays = self._shard(0).arrays
        return [n for n in ("cls", "patch", "embed") if n in arrays] + sorted(n for n in arrays if is_layer(n))

    def check_subset(self, subset: Manifest, k: int | None = None) -> None:
        if self.index["subset"]["hash"] != subset.hash:
            raise InputError(f"{self.path}: made for another subset ({self.index['subset']['path']}), not {subset.path}")
        if k is not None and k > len(self):
            raise InputError(f"k = {k}: {self.path} holds only the first {len(self)} images of its subset")

    def stats(self) -> dict[str, torch.Tensor]:
        """The teacher's target statistics on the corpus (`cls_mean`, `cls_std`, `patch_mean`, ...)."""
        entry = self.index.get("stats")
        if entry is None:
            raise InputError(f"{self.path}: made before target caches stored target statistics; rerun the same "
                             "`distill cache` command to add them")
        from safetensors.torch import load_file

        path = self.path / entry["file"]
        if not path.exists() or file_sha256(path) != entry["sha256"]:
            raise InputError(f"{path}: missing or differs from the sha256 in index.json; rerun `distill cache` to rewrite it")
        return load_file(str(path))

    def verify(self, k: int | None = None) -> None:
        """Hash the shards that hold the first k positions (all by default) against index.json: finds edited as
        well as truncated shards. A shard found intact is not hashed again in this process unless its file changes."""
        count = -(-(len(self) if k is None else k) // self.shard_size)
        for s in self.index["shards"][:count]:
            path = self.path / s["file"]
            st = path.stat()
            key = (str(path.resolve()), st.st_size, st.st_mtime_ns, s["sha256"])
            if key in _verified:
                continue
            if file_sha256(path) != s["sha256"]:
                raise InputError(f"{path}: content differs from the sha256 in index.json (edited or damaged); rerun "
                                 "`distill cache` to rewrite it, or pass --no-verify-targets to train on it anyway")
            _verified.add(key)

    def _shard(self, s: int) -> _MappedShard:
        if os.getpid() != self._pid:  # a DataLoader worker: map the files itself
            self._shards, self._pid = {}, os.getpid()
        if s not in self._shards:
            self._shards[s] = _MappedShard(self.path / self.index["shards"][s]["file"])
        return self._shards[s]

    def targets(self, position: int) -> dict[str, torch.Tensor]:
        """`cls` [V, D], `patch` [V, N, D], maybe `embed` [V, F], and `view` [V, 5] of one position."""
        if not 0 <= position < len(self):
            raise IndexError(f"position {position} outside 0..{len(self) - 1}")
        arrays = self._shard(position // self.shard_size).arrays
        i = position % self.shard_size
        out = {}
        for name in (*self.names, "view"):
            value = arrays[name][i].copy()
            self._check_finite(name, value[None], np.array([position]))
            out[name] = torch.from_numpy(value)
        return out

    def targets_many(self, positions) -> dict[str, torch.Tensor]:
        """The same for a batch of positions, [B, V, ...]: one gather per shard and tensor."""
        positions = np.asarray(positions, dtype=np.int64)
        if len(positions) and not (0 <= positions.min() and positions.max() < len(self)):
            raise IndexError(f"positions outside 0..{len(self) - 1}")
        shard_of = positions // self.shard_size
        out = {}
        for name in (*self.names, "view"):
            first = self._shard(0).arrays[name]
            buf = np.empty((len(positions), *first.shape[1:]), dtype=first.dtype)
            for s in np.unique(shard_of):
                rows = np.flatnonzero(shard_of == s)
                buf[rows] = self._shard(int(s)).arrays[name][positions[rows] - s * self.shard_size]
            self._check_finite(name, buf, positions)
            out[name] = torch.from_numpy(buf)
        return out

    def _check_finite(self, name: str, values: np.ndarray, positions: np.ndarray) -> None:
        """A NaN or inf target would surface as a NaN loss far from its cause: name the shard instead."""
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad = int(positions[np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(1))[0]])
            shard = self.path / self.index["shards"][bad // self.shard_size]["file"]
            raise InputError(f"{shard}: {name} of position {bad} is not finite (NaN or inf): the cache is damaged or "
                             "its teacher diverged; rerun `distill cache` into another --out")

    def first(self, k: int, name: str) -> torch.Tensor:
        """One target for the first k positions, e.g. `cls` [k, V, D]."""
        return self.targets_many(np.arange(k))[name]
