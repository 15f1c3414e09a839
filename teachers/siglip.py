"""SigLIP and SigLIP 2 image towers through transformers (SiglipVisionModel; the fixed-resolution checkpoints of
both are `siglip` models). SigLIP has no class token: `cls` is its attention-pooled image embedding (the mean patch
token for a tower without the pooling head); `patch`: the patch tokens after its final norm."""

from __future__ import annotations

import torch

from .base import Teacher, TeacherInfo, state_dict_sha256
from .hf import block_layers, block_maps, load_pretrained, preprocessor_mean_std

SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)


class SiglipTeacher(Teacher):
    def __init__(self, name: str, source: str, resolution: int | None = None, layers: tuple[int, ...] = ()):
        from transformers import SiglipVisionModel

        model = load_pretrained(SiglipVisionModel, name, source)
        cfg = model.config
        res = resolution or cfg.image_size
        mean, std = preprocessor_mean_std(source, SIGLIP_MEAN, SIGLIP_STD)
        super().__init__(TeacherInfo(
            name=name, source=source, sha256=state_dict_sha256(model), resolution=res,
            patch_size=cfg.patch_size, token_dim=cfg.hidden_size, embed_dim=None, mean=mean, std=std,
            layers=block_layers(name, layers, cfg.num_hidden_layers, cfg.hidden_size, (res // cfg.patch_size) ** 2),
        ))
        self.model, self.layers = model, tuple(sorted(set(layers)))
        self.interpolate = res != cfg.image_size  # learnt positions, resized for another input side
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
