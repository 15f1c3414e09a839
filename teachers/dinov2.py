"""DINOv2 teachers through transformers (`facebook/dinov2-*`): `cls` and `patch` of the last layer, post-norm, and
with `layers` the patch tokens after those blocks (`layerL_patch`)."""

from __future__ import annotations

import torch

from .base import Teacher, TeacherInfo, state_dict_sha256
from .hf import block_layers, block_maps, load_pretrained

HUB_IDS = {
    "dinov2_vits14": "facebook/dinov2-small",
    "dinov2_vitb14": "facebook/dinov2-base",
    "dinov2_vitl14": "facebook/dinov2-large",
    "dinov2_vitg14": "facebook/dinov2-giant",
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Dinov2Teacher(Teacher):
    def __init__(self, name: str, source: str, resolution: int | None = None, layers: tuple[int, ...] = ()):
        from transformers import Dinov2Model

        model = load_pretrained(Dinov2Model, name, source)
        cfg, res = model.config, resolution or 224
        super().__init__(TeacherInfo(
            name=name, source=source, sha256=state_dict_sha256(model), resolution=res,
            patch_size=cfg.patch_size, token_dim=cfg.hidden_size, embed_dim=None,
            mean=IMAGENET_MEAN, std=IMAGENET_STD,
            layers=block_layers(name, layers, cfg.num_hidden_layers, cfg.hidden_size, (res // cfg.patch_size) ** 2),
        ))
        self.model, self.layers = model, tuple(sorted(set(layers)))
        self.freeze()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.autocast(x):
            out = self.model(pixel_values=x, output_hidden_states=bool(self.layers))
        hidden = out.last_hidden_state  # already layer-normed
        maps = block_maps(out.hidden_states, self.layers) if self.layers else {}
        return {"cls": hidden[:, 0].float(), "patch": hidden[:, 1:].float()} | maps
