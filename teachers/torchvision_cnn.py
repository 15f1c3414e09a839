"""The offline default teacher: torchvision's ImageNet MobileNetV2, shipped inside the package."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from safetensors.torch import load_file

from subsets.errors import InputError
from subsets.fileio import file_sha256

from .base import Teacher, TeacherInfo

WEIGHTS = Path(__file__).parent / "weights" / "mobilenet_v2_imagenet1k.safetensors"
WEIGHTS_SHA256 = "76c64b8b83a8df99e7d07cfeb08024b575f7f80b9085fda8ae8b5f0d30a985a8"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class MobileNetV2Teacher(Teacher):
    """`cls` is the global-average-pooled 1280-d feature; `patch` the final feature map as tokens."""

    def __init__(self, path: Path = WEIGHTS, resolution: int = 128):
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: MobileNetV2 weights not found (they ship with the package: reinstall it)")
        sha = file_sha256(path)
        if sha != WEIGHTS_SHA256:
            raise InputError(f"{path}: sha256 is {sha[:16]}..., expected {WEIGHTS_SHA256[:16]}... (damaged weights file)")
        if resolution % 32:
            raise InputError(f"mobilenetv2_imagenet: resolution {resolution} is not a multiple of its stride 32")
        super().__init__(TeacherInfo(
            name="mobilenetv2_imagenet", source=str(path), sha256=sha, resolution=resolution, patch_size=32,
            token_dim=1280, embed_dim=None, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        ))
        net = torchvision.models.mobilenet_v2()
        net.load_state_dict(load_file(str(path)))
        # channels_last roughly doubles CPU throughput of the depthwise convolutions.
        self.features = net.features.to(memory_format=torch.channels_last)
        self.freeze()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        fmap = self.features(x.contiguous(memory_format=torch.channels_last))
        return {"cls": fmap.mean(dim=(2, 3)), "patch": fmap.flatten(2).transpose(1, 2)}
