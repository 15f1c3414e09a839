"""MIM-JEPA: a self-supervised student that predicts, at masked positions, what its own EMA sees there.

From "Escaping the Big Data Paradigm in Self-Supervised Representation Learning" (SCOTT; public code
inescopresearch/scott, src/mimjepa.py), on this trainer: the context encoder is the student with its
masked tokenizer (with the SCOTT stem no masked pixel reaches a visible token) and sees the masked
image; the target encoder is an EMA of it (momentum raised linearly from `jepa_momentum` to 1 over
the run) and sees the whole image, its patch tokens layer-normed; a predictor (transformer blocks
at the student's width, then LayerNorm + Linear) reads the context tokens and predicts the target
at the masked positions; Smooth-L1 there only. No teacher, no cache.

The target encoder is the module's `student`: evaluation and export take it, as the paper does.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn

from students import StudentSpec, build_student
from subsets.errors import InputError


def block_masks(seed: int, step: int, sample_ids: np.ndarray, grid: int, ratio: float) -> torch.Tensor:
    """[B, grid * grid] bool (True = masked): for each sample, round(ratio * N) positions masked; the kept rest is
    drawn as rectangular blocks. Seeded by (seed, step, sample), so a sample's mask does not depend on the process
    or batch slice that holds it."""
    n = grid * grid
    keep = n - round(ratio * n)
    masks = np.ones((len(sample_ids), n), dtype=bool)
    for row, j in enumerate(np.asarray(sample_ids, dtype=np.int64)):
        rng = np.random.default_rng([seed, step, int(j)])
        cells = masks[row].reshape(grid, grid)  # a view: clearing a cell keeps it
        while (~masks[row]).sum() < keep:
            h, w = rng.integers(1, max(2, grid // 2 + 1), size=2)
            y, x = rng.integers(0, grid - h + 1), rng.integers(0, grid - w + 1)
            for cy, cx in zip(*np.nonzero(cells[y:y + h, x:x + w])):  # raster order within the block
                if (~masks[row]).sum() == keep:
                    break
                cells[y + cy, x + cx] = False
    return torch.from_numpy(masks)


class MimJepa(nn.Module):
    def __init__(self, spec: StudentSpec, predictor_depth: int = 2, momentum: float = 0.996):
        super().__init__()
        self.context = build_student(spec)
        if not self.context.maskable:
            raise InputError(f"student {spec.name}: mim-jepa masks its tokens, which only ViT students can")
        self.student = copy.deepcopy(self.context).requires_grad_(False)  # the target encoder
        width = self.context.width
        heads = self.context.vit.blocks[0].attn.num_heads
        self.predictor = nn.Sequential(*(Block(width, heads, mlp_ratio=4.0) for _ in range(predictor_depth)),
                                       nn.LayerNorm(width), nn.Linear(width, width))
        self.momentum = momentum

    def forward(self, images: torch.Tensor, mask: torch.Tensor, targets=None) -> dict[str, torch.Tensor]:
        out = self.context(images, mask)
        tokens = torch.cat([out["cls"][:, None], out["patch"]], 1)
        pred = self.predictor(tokens)[:, 1:]
        with torch.no_grad():
            target = self.student(images)["patch"]
            target = F.layer_norm(target.float(), target.shape[-1:])
        loss = F.smooth_l1_loss(pred[mask].float(), target[mask])
        return {"loss": loss, "mim-jepa/masked": loss.detach()}

    def momentum_at(self, step: int, steps: int) -> float:
        """The target's momentum after `step` (0-based) of `steps`: linear from `momentum` to 1."""
        return self.momentum + (1 - self.momentum) * step / max(1, steps - 1)

    @torch.no_grad()
    def update_target(self, step: int, steps: int) -> None:
        """target = m * target + (1 - m) * context for the weights; the norms' running statistics are copied."""
        m = self.momentum_at(step, steps)
        for t, c in zip(self.student.parameters(), self.context.parameters()):
            t.lerp_(c.detach().to(t.dtype), 1 - m)
        for t, c in zip(self.student.buffers(), self.context.buffers()):
            t.copy_(c)
