"""What the trainer reads: student views of a subset with their teacher targets (cached) or teacher inputs (online),
and the order in which every process reads them, step by step."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from subsets.errors import InputError
from subsets.manifest import Manifest, read_manifest
from subsets.sources import ImageSource, UnreadableImage, collect_records, decode_image, open_source
from teachers.base import to_normalized_tensor
from teachers.cache import TargetCache
from teachers.views import ViewPolicy, apply_view, view_params

from .cached_views import CachedViews, memo_fits

# Students are trained from scratch; they see ImageNet-normalised pixels (recorded in the export's config).
STUDENT_MEAN = (0.485, 0.456, 0.406)
STUDENT_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TeacherTargets:
    """What a head set needs to know about one teacher's targets."""

    key: str  # the head set's name: the teacher's name, made safe for a module name
    info: dict  # the teacher's TeacherInfo as a dict
    tokens: int  # patch tokens per target map (the cache's patch grid squared)


def head_key(name: str, taken: set[str]) -> str:
    key = re.sub(r"[^0-9A-Za-z_]", "_", name)
    base, n = key, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    return key


def resolve_subset(subset: str | Path | None, caches: list[TargetCache]) -> Manifest:
    if subset is None:
        subset = caches[0].index["subset"]["path"]
    if not Path(subset).exists():
        raise InputError(f"{subset}: the subset directory is gone (moved?); pass --subset")
    return read_manifest(subset)


def resolve_source(source: str | None, subset: Manifest) -> ImageSource:
    """The corpus the subset was selected from, or a copy of it elsewhere (checked by its keys and labels)."""
    src = open_source(source or subset.meta["embeddings"]["source"])
    if src.corpus_hash() != subset.meta["embeddings"]["corpus_hash"]:
        raise InputError(f"{src.description}: not the corpus {subset.path} was selected from")
    return src


class CachedTargets(torch.utils.data.Dataset):
    """Student views of the first k images, each with the targets of every cache (one per teacher).

    All caches must store the same views of the same subset: the student sees one crop, so every
    teacher must have seen that crop too.
    """

    def __init__(self, caches: list[TargetCache], source: ImageSource, subset: Manifest, resolution: int,
                 k: int | None = None):
        first = caches[0]
        k = min(len(c) for c in caches) if k is None else k
        for c in caches:
            c.check_subset(subset, k)
            for key in ("views", "view_policy"):
                if c.index[key] != first.index[key]:
                    raise InputError(f"{c.path} and {first.path} store different views ({key}); "
                                     "cache every teacher with the same --views and --seed")
        self.views = CachedViews(first, source, subset, resolution, k, STUDENT_MEAN, STUDENT_STD)
        skipped = set().union(*(c.skipped for c in caches))
        self.views.positions = [p for p in self.views.positions if p not in skipped]
        self.caches = caches
        taken: set[str] = set()
        self.teachers = []
        for c in caches:
            key = head_key(c.index["teacher"]["name"], taken)
            taken.add(key)
            self.teachers.append(TeacherTargets(key, c.index["teacher"], c.index["patch_grid"] ** 2))

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, i: int) -> dict:
        item = self.views[i]
        names = self.caches[0].names
        targets = {self.teachers[0].key: {n: item.pop(n) for n in names}}
        for t, cache in zip(self.teachers[1:], self.caches[1:]):
            found = cache.targets(item["position"])
            targets[t.key] = {n: found[n][item["view"]].float() for n in cache.names}
        return {**item, "targets": targets}

    @property
    def positions(self) -> list[int]:
        return self.views.positions


class OnlineViews(torch.utils.data.Dataset):
    """The same items as a cache would hold: each view of each image, at the student's and the teacher's resolution
    (the student's alone without a teacher: the self-supervised objectives)."""

    def __init__(self, source: ImageSource, subset: Manifest, k: int, policy: ViewPolicy, resolution: int,
                 teacher_resolution: int | None = None, teacher_mean=None, teacher_std=None):
        subset.check_k(k)
        self.subset, self.policy, self.k = subset, policy, k
        self.positions = list(range(k))
        self.views = policy.views
        self.records = collect_records(source, subset.keys[:k])
        self.resolution, self.teacher_resolution = resolution, teacher_resolution
        self.student_tensor = to_normalized_tensor(STUDENT_MEAN, STUDENT_STD)
        self.teacher_tensor = to_normalized_tensor(teacher_mean, teacher_std) if teacher_resolution else None
        # Without a teacher (self-supervised), a small subset's views are kept once made, as CachedViews keeps them.
        fits = memo_fits(k * self.views, resolution)
        self.memo: dict[int, torch.Tensor] | None = {} if fits and self.teacher_tensor is None else None

    def __len__(self) -> int:
        return self.k * self.views

    def __getitem__(self, i: int) -> dict:
        position, view = divmod(i, self.views)
        if self.memo is not None and i in self.memo:
            return {"image": self.memo[i].clone(), "position": position, "view": view}
        key = self.subset.keys[position]
        try:
            image = decode_image(self.records[key])
        except UnreadableImage as e:
            raise InputError(f"{e}; online mode needs every image of the subset (a cache skips such images)") from None
        params = view_params(self.policy, position, view)
        item = {"image": self.student_tensor(apply_view(image, params, self.resolution)), "position": position,
                "view": view}
        if self.teacher_tensor is not None:
            item["teacher_image"] = self.teacher_tensor(apply_view(image, params, self.teacher_resolution))
        elif self.memo is not None:
            self.memo[i] = item["image"]
        return item


def sample_stream(n: int, seed: int, start: int, count: int) -> np.ndarray:
    """Items start..start+count of the endless sequence of seeded epoch permutations of range(n)."""
    out, epoch = [], start // n
    offset = start - epoch * n
    while sum(len(o) for o in out) < count:
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        out.append(perm[offset:])
        epoch, offset = epoch + 1, 0
    return np.concatenate(out)[:count]


class StepBatches(torch.utils.data.Sampler):
    """The micro-batches one process reads from `start_step` on.

    The global batch of step t is items [t*G, (t+1)*G) of the stream; micro-batch a of process r
    is its slice [(a*W + r)*b, +b). The order depends only on the seed and G, so a resumed run and
    a run with another number of processes see the same samples at the same step.
    """

    def __init__(self, n: int, global_batch: int, world: int, rank: int, accum: int, seed: int,
                 start_step: int, steps: int):
        assert global_batch % (world * accum) == 0, "checked by the trainer"
        self.n, self.G, self.W, self.r, self.accum, self.seed = n, global_batch, world, rank, accum, seed
        self.b = global_batch // (world * accum)
        self.start, self.steps = start_step, steps

    def __len__(self) -> int:
        return (self.steps - self.start) * self.accum

    def micro_ids(self, a: int) -> np.ndarray:
        """Positions within the global batch of micro-batch a of this process (for the masks)."""
        return np.arange((a * self.W + self.r) * self.b, (a * self.W + self.r + 1) * self.b)

    def __iter__(self):
        for t in range(self.start, self.steps):
            batch = sample_stream(self.n, self.seed, t * self.G, self.G)
            for a in range(self.accum):
                yield batch[self.micro_ids(a)].tolist()
