"""A torch Dataset over a target cache: the student's view of each cached image-view, with its targets."""

from __future__ import annotations

import torch

from subsets.errors import InputError
from subsets.manifest import Manifest
from subsets.sources import ImageSource, collect_records, decode_image
from teachers.base import to_normalized_tensor
from teachers.cache import TargetCache
from teachers.views import apply_view

# Student views are kept once made when all of them fit in this many bytes (per loader process): a small subset
# is read for many epochs, and decoding, cropping and resizing it again every epoch cost the demo's trainer 15%.
MEMO_BYTES = 512 * 2**20


def memo_fits(views: int, resolution: int) -> bool:
    """Whether `views` float32 student views at `resolution` fit in MEMO_BYTES."""
    return views * 3 * resolution ** 2 * 4 <= MEMO_BYTES


class CachedViews(torch.utils.data.Dataset):
    """Item i is view i % V of position i // V: the stored crop and flip of the original image, at the
    student's resolution, with the teacher's `cls`, `patch` (and `embed`) for exactly those pixels."""

    def __init__(self, cache: TargetCache, source: ImageSource, subset: Manifest, resolution: int,
                 k: int | None = None, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
        cache.check_subset(subset, k)
        if resolution < 8:
            raise InputError(f"student resolution {resolution} px: too small to show a cached view")
        k = len(cache) if k is None else k
        self.cache, self.subset, self.resolution = cache, subset, resolution
        self.positions = [p for p in range(k) if p not in cache.skipped]
        self.views = cache.index["views"]
        self.records = collect_records(source, subset.keys[:k])
        self.to_tensor = to_normalized_tensor(mean, std)
        self.memo: dict[tuple[int, int], torch.Tensor] | None = {} if memo_fits(len(self), resolution) else None

    def __len__(self) -> int:
        return len(self.positions) * self.views

    def __getitem__(self, i: int) -> dict:
        position, view = self.positions[i // self.views], i % self.views
        targets = self.cache.targets(position)
        pixels = self.memo.get((position, view)) if self.memo is not None else None
        if pixels is None:
            image = decode_image(self.records[self.subset.keys[position]])
            pixels = self.to_tensor(apply_view(image, targets["view"][view].numpy(), self.resolution))
            if self.memo is not None:
                self.memo[position, view] = pixels
        item = {name: t[view].float() for name, t in targets.items() if name != "view"}
        return {"image": pixels.clone(), **item, "position": position, "view": view}
