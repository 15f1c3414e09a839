"""Mixup for distillation on small subsets: the student sees pixels no single image of the subset holds.

At k = 100 a student fits its 100 images' views and stops generalising (benchmarks/out/recipe/exploration-4-*):
it needs new inputs with the teacher's answer on them. Each sample of a step is mixed with its pair partner
(global batch positions 2i and 2i+1 pair up), by a weight lambda ~ Beta(alpha, alpha) of its own. A cached
teacher's targets are mixed by the same weight (the teacher's answer on a mixture, taken as linear in the
mixture, as mixup takes labels); an online teacher is shown the mixed image and labels it itself (function
matching). The pairs and weights depend on the seed, the step and the global batch position only, so a resumed
run, or one on another number of processes, mixes the same samples by the same weights.
"""

from __future__ import annotations

import numpy as np
import torch

_STREAM = 0x6D6978  # keeps these draws apart from the sample order's and the masks' streams


def mix_weights(seed: int, step: int, positions: np.ndarray, global_batch: int, alpha: float) -> torch.Tensor:
    """lambda of each sample at these global batch positions in step `step`: the weight of its own image."""
    weights = np.random.default_rng([seed, _STREAM, step]).beta(alpha, alpha, size=global_batch)
    return torch.from_numpy(weights[positions]).float()


def partners(n: int) -> torch.Tensor:
    """Index of each sample's partner within a micro-batch of even size n that starts at an even global position."""
    return torch.arange(n) ^ 1


def mix(x: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """lam * x + (1 - lam) * x[partner], sample by sample, for x of any shape [B, ...]."""
    lam = lam.to(x.device, x.dtype).view(-1, *([1] * (x.dim() - 1)))
    return lam * x + (1 - lam) * x[partners(x.shape[0]).to(x.device)]


def mix_batch(batch: dict, lam: torch.Tensor) -> dict:
    """The batch with its student images, and its teacher images (online) or its targets (cached), mixed."""
    out = dict(batch, image=mix(batch["image"], lam))
    if "teacher_image" in batch:
        out["teacher_image"] = mix(batch["teacher_image"], lam)
    if "targets" in batch:
        out["targets"] = {teacher: {name: mix(t, lam) for name, t in targets.items()}
                          for teacher, targets in batch["targets"].items()}
    return out
