"""Proteus-style distillation losses: token, feature, patch (and embedding and layer) levels against a teacher's
targets.

One student pass serves all levels: the masked samples of a batch give the patch loss at their
masked positions, the unmasked samples the feature loss over the whole map (and the layer loss: the
stem's tokens against the teacher's intermediate maps), every sample the token loss. Teacher maps are
brought to the student's grid by interpolation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from students.heads import TeacherHeads
from subsets.errors import InputError


def distance(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Mean distance between predictions and targets of shape [..., D]; 0 (kept in the graph) when empty."""
    if pred.numel() == 0:
        return pred.sum() * 0.0
    target = target.to(pred.dtype)
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred, target)
    if kind == "cosine":
        return (1 - F.cosine_similarity(pred, target, dim=-1)).mean()
    raise ValueError(f"unknown distance {kind!r}")


def check_grids(teacher: str, tokens: int, student_grid: int, levels: list[str]) -> None:
    """Refuse a teacher patch map that cannot be aligned with the student's square grid."""
    if not {"feature", "patch"} & set(levels):
        return
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise InputError(f"{teacher}: {tokens} patch tokens do not form a square grid, so they cannot be aligned "
                         f"with the student's {student_grid}x{student_grid} grid; set w_feature and w_patch to 0")
    if side == 1 and student_grid > 1:
        raise InputError(f"{teacher}: its patch map is 1x1 (no spatial detail to align with the student's "
                         f"{student_grid}x{student_grid} grid); cache it at a higher resolution or --patch-grid, "
                         "or set w_feature and w_patch to 0")


def align_grid(patch: torch.Tensor, grid: int) -> torch.Tensor:
    """Teacher patch tokens [B, n*n, D] resampled to [B, grid*grid, D] (area-weighted when shrinking)."""
    side = math.isqrt(patch.shape[1])
    if side == grid:
        return patch
    fmap = patch.transpose(1, 2).reshape(patch.shape[0], -1, side, side).float()
    fmap = F.interpolate(fmap, size=(grid, grid), mode="bilinear", align_corners=False, antialias=grid < side)
    return fmap.flatten(2).transpose(1, 2).to(patch.dtype)


def is_masked_sample(j: np.ndarray, share: float) -> np.ndarray:
    """Which samples (by index j within the global batch) are masked: `share` of them, evenly spread, so
    every process's slice of the batch holds its share whatever the number of processes."""
    return np.floor((j + 1) * share) > np.floor(j * share)


def make_masks(seed: int, step: int, sample_ids: np.ndarray, patches: int, ratio: float, share: float) -> torch.Tensor:
    """[B, patches] bool: for masked samples, round(ratio * patches) positions drawn from (seed, step, sample).

    Row j of one seeded draw of uniform numbers per step ranks sample j's patches: a draw's first rows do not
    depend on how many follow, so a sample's mask is the same whichever process (and batch slice) holds it."""
    ids = np.asarray(sample_ids, dtype=np.int64)
    masks = np.zeros((len(ids), patches), dtype=bool)
    n = round(ratio * patches)
    if not n or not len(ids):
        return torch.from_numpy(masks)
    ranks = np.random.default_rng([seed, step]).random((int(ids.max()) + 1, patches))[ids].argsort(1)
    np.put_along_axis(masks, ranks[:, :n], True, axis=1)
    masks[~is_masked_sample(ids, share)] = False
    return torch.from_numpy(masks)


@dataclass(frozen=True)
class Targets:
    """One teacher's targets for a batch as the losses compare them: normalised (when the run normalises its
    targets) and with the patch map on the student's grid. Named as the cache names them."""

    cls: torch.Tensor  # [B, D]
    patch: torch.Tensor | None  # [B, grid * grid, D]
    embed: torch.Tensor | None  # [B, F] (CLIP's image embedding)
    layers: dict[str, torch.Tensor]  # intermediate maps by name (`layer17_patch`), each [B, grid * grid, D_L]

    @classmethod
    def of(cls, targets: dict[str, torch.Tensor], heads: TeacherHeads, grid: int, levels: set[str]) -> Targets:
        patch = None
        if {"feature", "patch"} & levels:
            patch = heads.target("patch", align_grid(targets["patch"], grid))
        if "embed" in levels and "embed" not in targets:
            raise InputError("w_embed > 0, but the teacher has no `embed` target (only CLIP teachers store one)")
        embed = heads.target("embed", targets["embed"]) if "embed" in levels else None
        layers = {name: heads.target(name, align_grid(targets[name], grid)) for name in heads.layers} \
            if "layer" in levels else {}
        return cls(heads.target("cls", targets["cls"]), patch, embed, layers)


# Each level reads the student's output and mask, one teacher's targets and heads, and the distance.

def token_loss(out: dict, mask: torch.Tensor | None, t: Targets, heads: TeacherHeads, kind: str) -> torch.Tensor:
    """The class token against the teacher's `cls`, for every sample."""
    return distance(heads("token", out["cls"]), t.cls, kind)


def embed_loss(out: dict, mask: torch.Tensor | None, t: Targets, heads: TeacherHeads, kind: str) -> torch.Tensor:
    """The class token against the teacher's image embedding, for every sample."""
    return distance(heads("embed", out["cls"]), t.embed, kind)


def feature_loss(out: dict, mask: torch.Tensor | None, t: Targets, heads: TeacherHeads, kind: str) -> torch.Tensor:
    """The whole map [class token; patch tokens] against [cls; patch], for the samples without a mask."""
    keep = ~_masked_samples(mask, len(t.cls), t.cls.device)
    pred = heads("feature", torch.cat([out["cls"][keep, None], out["patch"][keep]], 1))
    return distance(pred, torch.cat([t.cls[keep, None], t.patch[keep]], 1), kind)


def patch_loss(out: dict, mask: torch.Tensor | None, t: Targets, heads: TeacherHeads, kind: str) -> torch.Tensor:
    """The masked positions of the masked samples against the teacher's patch tokens there."""
    m = mask if mask is not None else torch.zeros(t.patch.shape[:2], dtype=torch.bool, device=t.patch.device)
    return distance(heads("patch", out["patch"][m]), t.patch[m], kind)


def layer_loss(out: dict, mask: torch.Tensor | None, t: Targets, heads: TeacherHeads, kind: str) -> torch.Tensor:
    """The stem's tokens against each of the teacher's intermediate maps (FitNets' hints, one head per map), for
    the samples without a mask: each image teaches the student's early layers too, which matters when images are
    few."""
    keep = ~_masked_samples(mask, len(t.cls), t.cls.device)
    return torch.stack([distance(heads(name, out["stem"][keep]), target[keep], kind)
                        for name, target in t.layers.items()]).mean()


def _masked_samples(mask: torch.Tensor | None, batch: int, device) -> torch.Tensor:
    return mask.any(1) if mask is not None else torch.zeros(batch, dtype=torch.bool, device=device)


LEVEL_LOSSES = {"token": token_loss, "embed": embed_loss, "feature": feature_loss, "patch": patch_loss,
               "layer": layer_loss}


def teacher_losses(out: dict[str, torch.Tensor], mask: torch.Tensor | None, targets: dict[str, torch.Tensor],
                   heads: TeacherHeads, weights: dict[str, float], kind: str, grid: int) -> dict[str, torch.Tensor]:
    """The unweighted loss of each level with a non-zero weight, for one teacher."""
    levels = {level for level, w in weights.items() if w}
    if not heads.layers:  # a teacher without intermediate maps teaches the other levels only
        levels.discard("layer")
    t = Targets.of(targets, heads, grid, levels)
    return {level: fn(out, mask, t, heads, kind) for level, fn in LEVEL_LOSSES.items() if level in levels}
