"""Target statistics: per-channel mean and std of a teacher's outputs over a seeded random sample of the corpus.

Every run of one teacher normalises its targets by these (Theia-style), so runs at different k and
with different selection methods regress onto the same target space. They come from the corpus,
not the subset: the first images of a k-center ordering are its outliers. `cls`, `patch` and
`embed` are different spaces and get statistics of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from subsets.errors import InputError
from subsets.sources import ImageSource, UnreadableImage, collect_records, decode_image, seeded_rows

from .base import Teacher

# A channel almost constant over the sample would be blown up by 1 / std; its variance is floored at this
# share of the mean channel variance, so no channel is amplified more than 10x beyond a typical one.
VARIANCE_FLOOR = 1e-2


@dataclass(frozen=True)
class StatsConfig:
    samples: int = 1000  # images of the corpus (fewer where the corpus is smaller)
    seed: int = 0
    batch_size: int = 64


def sample_keys(source: ImageSource, config: StatsConfig) -> list[str]:
    index = source.index()
    return [index[i][0] for i in seeded_rows(len(index), config.samples, config.seed)]


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and floored std over every axis but the last."""
    flat = x.reshape(-1, x.shape[-1]).double()
    mean, var = flat.mean(0), flat.var(0)
    var = var.clamp_min(VARIANCE_FLOOR * var.mean().clamp_min(1e-12))
    return mean.float(), var.sqrt().float()


_computed: dict = {}  # one computation per teacher, corpus and grid in a process: a sweep's caches share it


def _key(teacher: Teacher, source: ImageSource, patch_grid: int | None, config: StatsConfig) -> tuple:
    return teacher.info.sha256, teacher.info.resolution, tuple(teacher.info.layers), source.corpus_hash(), patch_grid, config


def stats_computed(teacher: Teacher, source: ImageSource, patch_grid: int | None = None,
                   config: StatsConfig = StatsConfig()) -> bool:
    """Whether this process has these statistics already (the next call returns them without a teacher pass)."""
    return _key(teacher, source, patch_grid, config) in _computed


def target_stats(teacher: Teacher, source: ImageSource, patch_grid: int | None = None,
                 config: StatsConfig = StatsConfig(), device=None) -> dict[str, torch.Tensor]:
    """`{NAME}_mean` and `{NAME}_std` for each of the teacher's outputs, on whole images of a corpus sample."""
    key = _key(teacher, source, patch_grid, config)
    if key not in _computed:
        _computed[key] = _compute_stats(teacher, source, patch_grid, config, device)
    return {name: t.clone() for name, t in _computed[key].items()}


@torch.no_grad()
def _compute_stats(teacher: Teacher, source: ImageSource, patch_grid: int | None, config: StatsConfig,
                   device) -> dict[str, torch.Tensor]:
    from .cache import teacher_targets

    keys = sample_keys(source, config)
    records = collect_records(source, keys)
    images = []
    for key in keys:
        try:
            images.append(teacher.preprocess(decode_image(records[key])))
        except UnreadableImage:
            continue  # the sample stays seeded; an unreadable image is simply not part of it
    if not images:
        raise InputError(f"{source.description}: no readable image in the sample for target statistics")
    device = device or torch.device("cpu")
    teacher.to(device)
    outputs: dict[str, list[torch.Tensor]] = {}
    for b0 in range(0, len(images), config.batch_size):
        batch = torch.stack(images[b0:b0 + config.batch_size]).to(device)
        for name, t in teacher_targets(teacher, batch, patch_grid).items():
            outputs.setdefault(name, []).append(t.half().float().cpu())  # as the cache stores them
    stats = {}
    for name, parts in outputs.items():
        stats[f"{name}_mean"], stats[f"{name}_std"] = channel_stats(torch.cat(parts))
    return stats
