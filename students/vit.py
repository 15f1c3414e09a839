"""Students: a timm VisionTransformer at any image and patch size (patch or SCOTT stem), or any timm CNN,
each returning a class token and patch tokens.

The timm model is kept whole (`.vit`, `.cnn`), so its state dict is what timm loads; a ViT student
adds only the learned mask token of the masked (patch-level) pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .errors import StudentError
from .scott import scott_vit_args

STEMS = ("patch", "scott")


@dataclass(frozen=True)
class StudentSpec:
    name: str = "vit_tiny_patch16_224"
    img_size: int = 32
    patch_size: int = 4
    kwargs: tuple[tuple[str, object], ...] = ()  # further timm.create_model arguments (depth, num_heads, ...)
    stem: str = "patch"  # ViTs: timm's patch embedding, or the SCOTT convolutional tokenizer


def _create(spec: StudentSpec, **extra) -> nn.Module:
    try:
        return timm.create_model(spec.name, pretrained=False, num_classes=0, **extra, **dict(spec.kwargs))
    except (RuntimeError, TypeError, ValueError, AttributeError, AssertionError) as e:
        key = _culprit(spec, extra)
        blame = f"student_kwargs {key} = {dict(spec.kwargs)[key]!r} is not accepted" if key else "cannot be built so"
        raise StudentError(f"student {spec.name}: {blame} ({e})") from None


def _culprit(spec: StudentSpec, extra: dict) -> str | None:
    """The first student_kwargs key that fails alone (on the meta device: no weights allocated), to blame the
    setting rather than a line deep in timm."""
    for key, value in spec.kwargs:
        try:
            with torch.device("meta"):
                timm.create_model(spec.name, pretrained=False, num_classes=0, **extra, **{key: value})
        except Exception:  # noqa: BLE001 - any failure of this key alone is the answer
            return key
    return None


def is_vit(name: str) -> bool:
    """Whether a timm name builds a VisionTransformer (checked on the meta device: no weights allocated)."""
    try:
        with torch.device("meta"):
            return isinstance(timm.create_model(name, pretrained=False, num_classes=0), VisionTransformer)
    except (RuntimeError, ValueError) as e:
        raise StudentError(f"student {name}: {e}") from None


class Student(nn.Module):
    """A ViT student: `cls` and `patch` after the final norm; a mask token for the masked pass."""

    def __init__(self, spec: StudentSpec):
        super().__init__()
        if spec.stem not in STEMS:
            raise StudentError(f"stem {spec.stem!r}: choose one of {', '.join(STEMS)}")
        if spec.img_size % spec.patch_size:
            raise StudentError(f"student image size {spec.img_size} is not a multiple of its patch size {spec.patch_size}")
        if spec.stem == "scott":
            if spec.patch_size < 4 or spec.patch_size & (spec.patch_size - 1):
                raise StudentError(f"stem scott downsamples by powers of 2: patch size {spec.patch_size} must be 4, 8, 16, ...")
            # The named ViT's shape as `vit_scott`, the registered timm architecture, so the export loads by name.
            with torch.device("meta"):
                shape = scott_vit_args(_create(spec, img_size=spec.img_size, patch_size=spec.patch_size))
            vit = _create(StudentSpec("vit_scott"), img_size=spec.img_size, patch_size=spec.patch_size,
                          **(shape | dict(spec.kwargs)))
        else:
            vit = _create(spec, img_size=spec.img_size, patch_size=spec.patch_size)
        if not isinstance(vit, VisionTransformer) or vit.cls_token is None:
            raise StudentError(f"student {spec.name}: must be a timm VisionTransformer with a class token")
        self.spec = spec
        self.vit = vit
        self.mask_token = nn.Parameter(torch.zeros(1, 1, vit.embed_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    @property
    def timm_model(self) -> nn.Module:
        return self.vit

    @property
    def width(self) -> int:
        return self.vit.embed_dim

    @property
    def grid(self) -> int:
        return self.spec.img_size // self.spec.patch_size

    @property
    def maskable(self) -> bool:
        return True

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """`cls` [B, D] and `patch` [B, N, D] after the final norm, and `stem` [B, N, D] the stem's tokens (the
        layer level's); `mask` [B, N] (True = replace the patch embedding by the mask token) gives the masked pass."""
        vit = self.vit
        # The SCOTT stem masks inside its convolutions, so no masked pixel reaches a visible token.
        stem = vit.patch_embed(x, mask) if self.spec.stem == "scott" else vit.patch_embed(x)
        x = stem if mask is None else torch.where(mask.unsqueeze(-1), self.mask_token.to(stem.dtype), stem)
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(x)))
        x = vit.norm(vit.blocks(x))
        return {"cls": x[:, 0], "patch": x[:, vit.num_prefix_tokens:], "stem": stem}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The image feature used for evaluation: the final class token (what timm's model(x) returns)."""
        return self.forward(x)["cls"]


class CnnStudent(nn.Module):
    """Any timm CNN as a student: its final feature map as patch tokens, its pooled feature as the class token.

    It has no mask token: the patch (masked) level is for ViT students.
    """

    def __init__(self, spec: StudentSpec):
        super().__init__()
        if spec.stem != "patch":
            raise StudentError(f"student {spec.name}: stem {spec.stem} is for ViT students; a CNN keeps its own stem")
        self.spec = spec
        self.cnn = _create(spec)
        with torch.no_grad():
            fmap = self.cnn.eval().forward_features(torch.zeros(1, 3, spec.img_size, spec.img_size))
        self.cnn.train()
        if fmap.ndim != 4 or fmap.shape[-1] != fmap.shape[-2]:
            raise StudentError(f"student {spec.name}: gives a {tuple(fmap.shape)} feature map, not a square [B, C, H, W] one")
        self._width, self._grid = fmap.shape[1], fmap.shape[-1]

    @property
    def timm_model(self) -> nn.Module:
        return self.cnn

    @property
    def width(self) -> int:
        return self._width

    @property
    def grid(self) -> int:
        return self._grid

    @property
    def maskable(self) -> bool:
        return False

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if mask is not None and bool(mask.any()):
            raise StudentError(f"student {self.spec.name}: a CNN student has no masked pass; set w_patch to 0")
        fmap = self.cnn.forward_features(x)
        return {"cls": self.cnn.forward_head(fmap, pre_logits=True), "patch": fmap.flatten(2).transpose(1, 2)}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)["cls"]


def build_student(spec: StudentSpec) -> Student | CnnStudent:
    """A ViT student for a timm ViT name, a CNN student for any other timm model."""
    return Student(spec) if is_vit(spec.name) else CnnStudent(spec)


def create_student(name: str = "vit_tiny_patch16_224", img_size: int = 32, patch_size: int = 4, stem: str = "patch",
                   **kwargs) -> Student | CnnStudent:
    return build_student(StudentSpec(name, img_size, patch_size, tuple(sorted(kwargs.items())), stem))


def is_square(n: int) -> bool:
    return n > 0 and math.isqrt(n) ** 2 == n
