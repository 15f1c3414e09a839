"""The offline default teacher: torchvision's ImageNet MobileNetV2, shipped inside the package."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from safetensors.torch import load_file

from subsets.errors import InputError
from subsets.fileio import file_sha256

from .base import Teacher, TeacherInfo, check_layers, layer_name

WEIGHTS = Path(__file__).parent / "weights" / "mobilenet_v2_imagenet1k.safetensors"
WEIGHTS_SHA256 = "76c64b8b83a8df99e7d07cfeb08024b575f7f80b9085fda8ae8b5f0d30a985a8"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# Channels and total stride of the map after each of torchvision's 19 `features` modules.
CHANNELS = (32, 16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320, 1280)
STRIDES = (2, 2, 4, 4, 8, 8, 8, 16, 16, 16, 16, 16, 16, 16, 32, 32, 32, 32, 32)


class MobileNetV2Teacher(Teacher):
    """`cls` is the global-average-pooled 1280-d feature; `patch` the final feature map as tokens. With `layers`,
    also `layerL_patch`: the map after the first L of its 19 feature modules (L = 17: 160 channels at stride 32;
    L = 14: 96 at stride 16), the intermediate targets of the layer level."""

    def __init__(self, path: Path = WEIGHTS, resolution: int = 128, layers: tuple[int, ...] = ()):
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: MobileNetV2 weights not found (they ship with the package: reinstall it)")
        sha = file_sha256(path)
        if sha != WEIGHTS_SHA256:
            raise InputError(f"{path}: sha256 is {sha[:16]}..., expected {WEIGHTS_SHA256[:16]}... (damaged weights file)")
        if resolution % 32:
            raise InputError(f"mobilenetv2_imagenet: resolution {resolution} is not a multiple of its stride 32")
        check_layers("mobilenetv2_imagenet", layers, len(CHANNELS) - 1, ", the feature modules before its final map")
        self.layers = tuple(sorted(set(layers)))
        super().__init__(TeacherInfo(
            name="mobilenetv2_imagenet", source=str(path), sha256=sha, resolution=resolution, patch_size=32,
            token_dim=1280, embed_dim=None, mean=IMAGENET_MEAN, std=IMAGENET_STD,
            layers={layer_name(L): {"dim": CHANNELS[L - 1], "tokens": (resolution // STRIDES[L - 1]) ** 2}
                    for L in self.layers},
        ))
        net = torchvision.models.mobilenet_v2()
        net.load_state_dict(load_file(str(path)))
        # channels_last roughly doubles CPU throughput of the depthwise convolutions.
        self.features = net.features.to(memory_format=torch.channels_last)
        self.freeze()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        fmap, maps = x.contiguous(memory_format=torch.channels_last), {}
        with self.autocast(x):
            for i, module in enumerate(self.features):
                if i in self.layers:
                    maps[layer_name(i)] = fmap.flatten(2).transpose(1, 2).float()
                fmap = module(fmap)
        fmap = fmap.float()
        return {"cls": fmap.mean(dim=(2, 3)), "patch": fmap.flatten(2).transpose(1, 2)} | maps
