"""CLIP image towers through transformers (CLIPVisionModelWithProjection)."""

from __future__ import annotations

import torch

from .base import Teacher
from .hf import block_maps, load_pretrained, preprocessor_mean_std, vit_info

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ClipTeacher(Teacher):
    """`cls`: the pooled, post-norm class token; `patch`: the patch tokens after the same final norm (one space
    for both, as DINOv2's outputs are); `embed`: the projection of `cls`."""

    def __init__(self, name: str, source: str, resolution: int | None = None, layers: tuple[int, ...] = ()):
        from transformers import CLIPVisionModelWithProjection

        model = load_pretrained(CLIPVisionModelWithProjection, name, source)
        res = resolution or model.config.image_size
        super().__init__(vit_info(name, source, model, res, preprocessor_mean_std(source, CLIP_MEAN, CLIP_STD), layers,
                                  embed_dim=model.config.projection_dim))
        self.model, self.layers = model, tuple(sorted(set(layers)))
        self.freeze()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.autocast(x):
            out = self.model.vision_model(pixel_values=x, interpolate_pos_encoding=True,
                                          output_hidden_states=bool(self.layers))
            embed = self.model.visual_projection(out.pooler_output)
            patch = self.model.vision_model.post_layernorm(out.last_hidden_state[:, 1:])
        maps = block_maps(out.hidden_states, self.layers) if self.layers else {}
        return {"cls": out.pooler_output.float(), "patch": patch.float(), "embed": embed.float()} | maps
