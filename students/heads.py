"""Projection heads: LayerNorm + Linear from the student's width to a teacher's, one per teacher and level."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Sequential):
    def __init__(self, width: int, out: int):
        super().__init__(nn.LayerNorm(width), nn.Linear(width, out))


class TargetNorm(nn.Module):
    """Per-channel mean and std of one kind of a teacher's targets (Theia-style normalisation), saved with the model."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, target: torch.Tensor) -> torch.Tensor:
        return (target - self.mean) / self.std

    def inverse(self, prediction: torch.Tensor) -> torch.Tensor:
        return prediction * self.std + self.mean


class TeacherHeads(nn.Module):
    """The heads of one teacher: `token`, `feature`, `patch` (width D) and `embed` (width F), as asked, and with the
    `layer` level one head per intermediate map in `layers` ({name: width}, e.g. {"layer17_patch": 160}).

    With `normalize`, each kind of target (`cls`, `patch`, `embed`, each map: different spaces) has its own
    statistics.
    """

    def __init__(self, width: int, token_dim: int, levels: list[str], embed_dim: int | None = None,
                 normalize: bool = False, layers: dict[str, int] | None = None):
        super().__init__()
        self.layers = dict(layers or {}) if "layer" in levels else {}
        self.heads = nn.ModuleDict({
            level: ProjectionHead(width, embed_dim if level == "embed" else token_dim) for level in levels
            if level != "layer"
        } | {name: ProjectionHead(width, dim) for name, dim in self.layers.items()})
        self.norms = nn.ModuleDict()
        if normalize:
            self.norms["cls"] = TargetNorm(token_dim)
            if {"feature", "patch"} & set(levels):
                self.norms["patch"] = TargetNorm(token_dim)
            if "embed" in levels:
                self.norms["embed"] = TargetNorm(embed_dim)
            for name, dim in self.layers.items():
                self.norms[name] = TargetNorm(dim)

    def forward(self, level: str, x: torch.Tensor) -> torch.Tensor:
        return self.heads[level](x)

    def target(self, kind: str, t: torch.Tensor) -> torch.Tensor:
        """A teacher target of one kind (`cls`, `patch`, `embed`, a map's name) as the loss sees it: normalised
        when this teacher normalises its targets."""
        return self.norms[kind](t) if kind in self.norms else t

    def set_stats(self, stats: dict[str, torch.Tensor]) -> None:
        """Statistics as a target cache stores them: `cls_mean`, `cls_std`, `patch_mean`, ..."""
        for kind, norm in self.norms.items():
            norm.set(stats[f"{kind}_mean"], stats[f"{kind}_std"])
