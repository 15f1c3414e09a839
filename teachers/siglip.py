"""SigLIP and SigLIP 2 image towers through transformers (SiglipVisionModel; the fixed-resolution checkpoints of
both are `siglip` models). SigLIP has no class token: `cls` is its attention-pooled image embedding (the mean patch
token for a tower without the pooling head); `patch`: the patch tokens after its final norm."""

from __future__ import annotations

import torch

from .base import Teacher
from .hf import block_maps, load_pretrained, preprocessor_mean_std, vit_info

SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)


class SiglipTeacher(Teacher):
    def __init__(self, name: str, source: str, resolution: int | None = None, layers: tuple[int, ...] = ()):
        from transformers import SiglipVisionModel

        model = load_pretrained(SiglipVisionModel, name, source)
        res = resolution or model.config.image_size
        super().__init__(vit_info(name, source, model, res, preprocessor_mean_std(source, SIGLIP_MEAN, SIGLIP_STD), layers))
        self.model, self.layers = model, tuple(sorted(set(layers)))
        self.interpolate = res != model.config.image_size  # learnt positions, resized for another input side
        self.freeze()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.autocast(x):
            out = self.model(pixel_values=x, interpolate_pos_encoding=self.interpolate,
                             output_hidden_states=bool(self.layers))
        patch = out.last_hidden_state  # already layer-normed
        pooled = out.pooler_output if out.pooler_output is not None else patch.mean(dim=1)
        maps = block_maps(out.hidden_states, self.layers, prefix=0) if self.layers else {}
        return {"cls": pooled.float(), "patch": patch.float()} | maps
