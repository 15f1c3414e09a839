"""Local/global in one pass: every final patch token (its receptive field, a pseudo-local crop of the image) is
pulled toward the image's global feature, the class token (attention-pooled over the tokens); one forward and one
backward per step, no teacher, no second view.

A local-equals-global loss alone is met by a constant, so a VICReg-style variance term (each dimension's std over
the batch held up to 1) and covariance term (off-diagonal covariances pushed to 0) act on the projected global and
local features. Both are taken over the *global* batch: the features are gathered from every process with a
gradient, so 2 processes compute what 1 does. `feature_std` (the mean per-dimension std of the projected global
features over the batch) is logged: a collapse shows as it falls toward 0.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from students import StudentSpec, build_student

EXPAND = 4  # the projector's width as a multiple of the student's (VICReg's expander is wider than its encoder)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums the gradient over processes and returns each its own slice (all-reduce only,
    which every backend has; the slices are equal, as the trainer's sampler makes them)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = len(x)
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start:start + ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """x of every process, concatenated in rank order; gradients flow back to each process's own slice."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


def variance_term(z: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Mean over dimensions of relu(1 - std): zero once every dimension varies over the batch."""
    return F.relu(1 - torch.sqrt(z.var(0) + eps)).mean()


def covariance_term(z: torch.Tensor) -> torch.Tensor:
    """Sum of squared off-diagonal covariances over the dimension."""
    z = z - z.mean(0)
    cov = z.T @ z / max(1, len(z) - 1)
    return (cov.pow(2).sum() - cov.diagonal().pow(2).sum()) / z.shape[1]


class LocalGlobal(nn.Module):
    def __init__(self, spec: StudentSpec, w_variance: float = 1.0, w_covariance: float = 0.04):
        super().__init__()
        self.student = build_student(spec)
        if self.student.maskable:  # no pass is masked: a mask token without a gradient would stall DDP
            self.student.mask_token.requires_grad_(False)
        width = self.student.width
        self.projector = nn.Sequential(nn.Linear(width, EXPAND * width), nn.GELU(),
                                       nn.Linear(EXPAND * width, EXPAND * width))
        self.w_variance, self.w_covariance = w_variance, w_covariance

    def forward(self, images: torch.Tensor, mask=None, targets=None) -> dict[str, torch.Tensor]:
        out = self.student(images)
        z_global = self.projector(out["cls"]).float()  # [B, E]
        z_local = self.projector(out["patch"]).float()  # [B, N, E]
        invariance = F.mse_loss(z_local, z_global[:, None].expand_as(z_local))
        g, loc = gather_with_grad(z_global), gather_with_grad(z_local.flatten(0, 1))
        variance = (variance_term(g) + variance_term(loc)) / 2
        covariance = (covariance_term(g) + covariance_term(loc)) / 2
        loss = invariance + self.w_variance * variance + self.w_covariance * covariance
        return {"loss": loss, "local-global/invariance": invariance.detach(), "local-global/variance": variance.detach(),
                "local-global/covariance": covariance.detach(), "feature_std": g.detach().std(0).mean()}
