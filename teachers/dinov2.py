"""DINOv2 teachers through transformers (`facebook/dinov2-*`): `cls` and `patch` of the last layer, post-norm."""

from __future__ import annotations

import torch

from .base import Teacher, TeacherInfo, state_dict_sha256
from .hf import load_pretrained

HUB_IDS = {
    "dinov2_vits14": "facebook/dinov2-small",
    "dinov2_vitb14": "facebook/dinov2-base",
    "dinov2_vitl14": "facebook/dinov2-large",
    "dinov2_vitg14": "facebook/dinov2-giant",
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Dinov2Teacher(Teacher):
    def __init__(self, name: str, source: str, resolution: int | None = None):
        from transformers import Dinov2Model

        model = load_pretrained(Dinov2Model, name, source)
        patch = model.config.patch_size
        super().__init__(TeacherInfo(
            name=name, source=source, sha256=state_dict_sha256(model), resolution=resolution or 224,
            patch_size=patch, token_dim=model.config.hidden_size, embed_dim=None,
            mean=IMAGENET_MEAN, std=IMAGENET_STD,
        ))
        self.model = model
        self.freeze()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.autocast(x):
            hidden = self.model(pixel_values=x).last_hidden_state  # already layer-normed
        return {"cls": hidden[:, 0].float(), "patch": hidden[:, 1:].float()}
