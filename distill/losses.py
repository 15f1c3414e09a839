"""Proteus-style distillation losses: token, feature, patch (and embedding) levels against a teacher's targets.

One student pass serves all levels: the masked samples of a batch give the patch loss at their
masked positions, the unmasked samples the feature loss over the whole map, every sample the
token loss. Teacher patch maps are brought to the student's grid by interpolation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from students.heads import TeacherHeads
from subsets.errors import InputError

DISTANCES = ("mse", "cosine", "smooth_l1")


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
    """[B, patches] bool: for masked samples, round(ratio * patches) positions drawn from (seed, step, sample)."""
    masks = np.zeros((len(sample_ids), patches), dtype=bool)
    n = round(ratio * patches)
    for row, j in enumerate(sample_ids):
        if n and is_masked_sample(np.array(j), share):
            masks[row, np.random.default_rng([seed, step, int(j)]).permutation(patches)[:n]] = True
    return torch.from_numpy(masks)


def teacher_losses(out: dict[str, torch.Tensor], mask: torch.Tensor | None, targets: dict[str, torch.Tensor],
                   heads: TeacherHeads, weights: dict[str, float], kind: str, grid: int) -> dict[str, torch.Tensor]:
    """The unweighted loss of each level with a non-zero weight, for one teacher."""
    losses = {}
    if weights.get("token"):
        losses["token"] = distance(heads("token", out["cls"]), heads.target("cls", targets["cls"]), kind)
    if weights.get("embed"):
        if "embed" not in targets:
            raise InputError("w_embed > 0, but the teacher has no `embed` target (only CLIP teachers store one)")
        losses["embed"] = distance(heads("embed", out["cls"]), heads.target("embed", targets["embed"]), kind)
    if weights.get("feature") or weights.get("patch"):
        t_patch = heads.target("patch", align_grid(targets["patch"], grid))
        masked = mask.any(1) if mask is not None else torch.zeros(len(t_patch), dtype=torch.bool, device=t_patch.device)
        if weights.get("feature"):
            keep = ~masked  # the whole map of the unmasked samples: [class token; patch tokens]
            pred = heads("feature", torch.cat([out["cls"][keep, None], out["patch"][keep]], 1))
            target = torch.cat([heads.target("cls", targets["cls"][keep, None]), t_patch[keep]], 1)
            losses["feature"] = distance(pred, target, kind)
        if weights.get("patch"):
            m = mask if mask is not None else torch.zeros(t_patch.shape[:2], dtype=torch.bool, device=t_patch.device)
            losses["patch"] = distance(heads("patch", out["patch"][m]), t_patch[m], kind)
    return losses
