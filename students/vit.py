"""ViT students: a timm VisionTransformer at any image and patch size, returning class and patch tokens.

The timm model is kept whole as `.vit`, so its state dict is what timm loads; the student adds only
the learned mask token of the masked (patch-level) pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from subsets.errors import InputError


@dataclass(frozen=True)
class StudentSpec:
    name: str = "vit_tiny_patch16_224"
    img_size: int = 32
    patch_size: int = 4
    kwargs: tuple[tuple[str, object], ...] = ()  # further timm.create_model arguments (depth, num_heads, ...)


class Student(nn.Module):
    def __init__(self, spec: StudentSpec):
        super().__init__()
        if spec.img_size % spec.patch_size:
            raise InputError(f"student image size {spec.img_size} is not a multiple of its patch size {spec.patch_size}")
        try:
            vit = timm.create_model(spec.name, pretrained=False, num_classes=0, img_size=spec.img_size,
                                    patch_size=spec.patch_size, **dict(spec.kwargs))
        except RuntimeError as e:
            raise InputError(f"student {spec.name}: {e}") from None
        except TypeError as e:
            raise InputError(f"student {spec.name}: not a timm ViT that takes img_size/patch_size ({e})") from None
        if not isinstance(vit, VisionTransformer) or vit.cls_token is None:
            raise InputError(f"student {spec.name}: must be a timm VisionTransformer with a class token")
        self.spec = spec
        self.vit = vit
        self.mask_token = nn.Parameter(torch.zeros(1, 1, vit.embed_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    @property
    def width(self) -> int:
        return self.vit.embed_dim

    @property
    def grid(self) -> int:
        return self.spec.img_size // self.spec.patch_size

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """`cls` [B, D] and `patch` [B, N, D] after the final norm; `mask` [B, N] (True = replace the
        patch embedding by the mask token) gives the masked pass."""
        vit = self.vit
        x = vit.patch_embed(x)
        if mask is not None:
            x = torch.where(mask.unsqueeze(-1), self.mask_token.to(x.dtype), x)
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(x)))
        x = vit.norm(vit.blocks(x))
        return {"cls": x[:, 0], "patch": x[:, vit.num_prefix_tokens:]}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The image feature used for evaluation: the final class token (what timm's model(x) returns)."""
        return self.forward(x)["cls"]


def create_student(name: str = "vit_tiny_patch16_224", img_size: int = 32, patch_size: int = 4, **kwargs) -> Student:
    return Student(StudentSpec(name, img_size, patch_size, tuple(sorted(kwargs.items()))))


def is_square(n: int) -> bool:
    return n > 0 and math.isqrt(n) ** 2 == n
