"""DINO teachers through transformers: DINOv2 (`facebook/dinov2-*`), DINOv2 with registers
(`facebook/dinov2-with-registers-*`) and DINOv3 ViTs (`facebook/dinov3-*`). `cls`: the last layer's class token,
post-norm; `patch`: its patch tokens, after the class token and any register tokens; with `layers`, the patch tokens
after those blocks (`layerL_patch`)."""

from __future__ import annotations

import torch

from .base import Teacher
from .catalog import DINO_MODEL_TYPES
from .hf import block_maps, load_pretrained, preprocessor_mean_std, vit_info

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DinoTeacher(Teacher):
    def __init__(self, name: str, source: str, resolution: int | None = None, layers: tuple[int, ...] = ()):
        from transformers import AutoModel

        model = load_pretrained(AutoModel, name, source, DINO_MODEL_TYPES)
        res = resolution or 224
        super().__init__(vit_info(name, source, model, res, preprocessor_mean_std(source, IMAGENET_MEAN, IMAGENET_STD),
                                  layers))
        # registers (DINOv2 with registers, DINOv3) sit between the class token and the patches
        self.model, self.layers = model, tuple(sorted(set(layers)))
        self.prefix = 1 + getattr(model.config, "num_register_tokens", 0)
        self.freeze()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.autocast(x):
            out = self.model(pixel_values=x, output_hidden_states=bool(self.layers))
        hidden = out.last_hidden_state  # already layer-normed
        maps = block_maps(out.hidden_states, self.layers, self.prefix) if self.layers else {}
        return {"cls": hidden[:, 0].float(), "patch": hidden[:, self.prefix:].float()} | maps
