"""The SCOTT stem: a masked convolutional tokenizer for ViT students on small data.

From "Escaping the Big Data Paradigm in Self-Supervised Representation Learning" (SCOTT): two
conv -> norm -> ReLU -> max-blur-pool stages replace the patch projection, giving the ViT the
locality bias it lacks on small data. Each pool halves the side; the convs' strides make up the
rest of the patch size, as SCOTT's 7x7 stride-2 convs do at 224 px / patch 16. Re-strided for small
images, the convs here are 3x3: at patch 8 the first has stride 2 and the second stride 1
(32 px -> 16 -> 8 -> 8 -> 4), at patch 4 both stride 1, at patch 16 both stride 2.

Masked (as SparK makes convnets maskable): the patch mask is applied to the pixels and again after
every conv, norm and pool, and the norm takes its batch statistics over visible positions only, so
a masked patch stays exactly zero and nothing of its pixels reaches a visible token.

It is a drop-in `embed_layer` of timm's VisionTransformer (the `PatchEmbed` signature), so a
student with this stem is a timm VisionTransformer whose weights load back through timm once the
`vit_scott` architecture is registered (`import students` does that).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.models import register_model
from timm.models.vision_transformer import VisionTransformer, _create_vision_transformer
from torch import nn


def pascal_kernel(size: int) -> torch.Tensor:
    """The 2-D binomial blur kernel of a side, normalised to sum 1."""
    row = torch.tensor([math.comb(size - 1, i) for i in range(size)], dtype=torch.float32)
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum()


class MaxBlurPool(nn.Module):
    """Anti-aliased max pooling (Zhang 2019): a dense 2x2 max, then a 3x3 binomial blur at stride 2 (side / 2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("kernel", pascal_kernel(3).expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(x, kernel_size=2, stride=1)
        return F.conv2d(x, self.kernel.to(x.dtype), padding=1, stride=2, groups=x.shape[1])


class MaskedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose batch statistics come from the visible positions alone (SparK's sparse BN)."""

    def forward(self, x: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
        if visible is None or bool(visible.all()):
            return super().forward(x)
        channels_last = x.permute(0, 2, 3, 1)
        where = visible[:, 0]
        out = torch.zeros_like(channels_last)
        out[where] = F.batch_norm(channels_last[where], self.running_mean, self.running_var, self.weight, self.bias,
                                  self.training, self.momentum if self.momentum is not None else 0.1, self.eps)
        return out.permute(0, 3, 1, 2)


def _resize_mask(visible: torch.Tensor, side: int) -> torch.Tensor:
    """A [B, 1, g, g] visibility grid repeated up to [B, 1, side, side]."""
    return visible.repeat_interleave(side // visible.shape[-2], 2).repeat_interleave(side // visible.shape[-1], 3)


class ScottStage(nn.Module):
    """conv 3x3 (stride s) -> masked BN -> ReLU -> max-blur-pool (side / 2), masked after each."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm = MaskedBatchNorm2d(cout)
        self.pool = MaxBlurPool(cout)

    def forward(self, x: torch.Tensor, visible: torch.Tensor | None) -> torch.Tensor:
        x = self.conv(x)
        keep = None if visible is None else _resize_mask(visible, x.shape[-1]).to(x.dtype)
        if keep is not None:
            x = x * keep
        x = F.relu(self.norm(x, None if visible is None else keep.bool()))
        x = self.pool(x)
        return x if visible is None else x * _resize_mask(visible, x.shape[-1]).to(x.dtype)


def conv_strides(patch: int) -> tuple[int, int]:
    """The two convs' strides for a patch size 2^n >= 4 (the two pools give the other factor of 4)."""
    rest = patch // 4
    second = 2 if rest >= 4 else 1
    return rest // second, second


STEM_WIDTH = 64  # channels of the first stage, as in SCOTT; the second has the ViT's width


class ScottEmbed(nn.Module):
    """Image -> [B, N, D] tokens through two masked conv stages and a 1x1 projection.

    `forward(x, mask)` takes the student's patch mask ([B, N], True = masked); timm calls it without one.
    """

    def __init__(self, img_size=224, patch_size=16, in_chans: int = 3, embed_dim: int = 768, bias: bool = True,
                 norm_layer=None, flatten: bool = True, output_fmt=None, strict_img_size: bool = True,
                 dynamic_img_pad: bool = False, **_):
        super().__init__()
        img = img_size if isinstance(img_size, int) else img_size[0]
        patch = patch_size if isinstance(patch_size, int) else patch_size[0]
        if patch < 4 or patch & (patch - 1):
            raise ValueError(f"the SCOTT stem downsamples by powers of 2: patch size {patch} must be 4, 8, 16, ...")
        if output_fmt is not None or dynamic_img_pad or not strict_img_size:
            raise ValueError("the SCOTT stem takes fixed-size images (no dynamic_img_size / dynamic_img_pad)")
        self.img_size, self.patch_size = (img, img), (patch, patch)
        self.grid_size = (img // patch, img // patch)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.flatten, self.dynamic_img_pad = True, False
        first, second = conv_strides(patch)
        self.stages = nn.ModuleList([ScottStage(in_chans, STEM_WIDTH, first), ScottStage(STEM_WIDTH, embed_dim, second)])
        self.proj = nn.Conv2d(embed_dim, embed_dim, 1, bias=bias)  # tokens are not confined to ReLU's half-space
        self.norm = norm_layer(embed_dim) if norm_layer else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.proj:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def feat_ratio(self, as_scalar: bool = True):
        return self.patch_size[0] if as_scalar else self.patch_size

    def dynamic_feat_size(self, img_size):
        return img_size[0] // self.patch_size[0], img_size[1] // self.patch_size[1]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # CPU max-pooling is ~6x faster channels-last
        visible = None
        if mask is not None and bool(mask.any()):
            g = self.grid_size[0]
            visible = ~mask.reshape(len(mask), 1, g, g)
            x = x * _resize_mask(visible, x.shape[-1]).to(x.dtype)
        for stage in self.stages:
            x = stage(x, visible)
        x = self.proj(x)
        if visible is not None:
            x = x * visible.to(x.dtype)
        return self.norm(x.flatten(2).transpose(1, 2))


def scott_vit_args(vit) -> dict:
    """The shape of a timm ViT as `vit_scott` arguments: width, depth, heads and MLP ratio."""
    block = vit.blocks[0]
    return {"embed_dim": vit.embed_dim, "depth": len(vit.blocks), "num_heads": block.attn.num_heads,
            "mlp_ratio": block.mlp.fc1.out_features / vit.embed_dim}


# timm's registry reads the default pretrained cfg of `vit_scott` from here (no released weights: a plain cfg).
default_cfgs = {"vit_scott": {"url": "", "input_size": (3, 32, 32), "mean": (0.485, 0.456, 0.406),
                              "std": (0.229, 0.224, 0.225), "interpolation": "bicubic", "crop_pct": 1.0,
                              "first_conv": "patch_embed.stages.0.conv", "classifier": "head"}}


@register_model
def vit_scott(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """A timm VisionTransformer with the SCOTT stem (ViT-Ti shape at 32 px / patch 8 unless told otherwise)."""
    args = {"img_size": 32, "patch_size": 8, "embed_dim": 192, "depth": 12, "num_heads": 3, **kwargs}
    return _create_vision_transformer("vit_scott", pretrained=pretrained, embed_layer=ScottEmbed, **args)
