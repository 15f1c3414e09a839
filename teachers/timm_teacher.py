"""Any timm model as a teacher: `timm:NAME` (Hub or HF cache) or a local folder saved by timm."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from timm.data import resolve_data_config

from subsets.errors import InputError

from .base import Teacher, TeacherInfo, state_dict_sha256


class TimmTeacher(Teacher):
    def __init__(self, name: str, resolution: int | None = None):
        model, source = _create(name)
        cfg = resolve_data_config(model=model)
        res = resolution or cfg["input_size"][-1]
        patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
        patch = patch[0] if isinstance(patch, tuple) else patch or model.feature_info[-1]["reduction"]
        super().__init__(TeacherInfo(
            name=f"timm:{name}", source=source, sha256=state_dict_sha256(model), resolution=res,
            patch_size=patch, token_dim=model.num_features, embed_dim=None,
            mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
        ))
        self.model = model
        self.freeze()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.autocast(x):
            feats = self.model.forward_features(x)
            cls = self.model.forward_head(feats, pre_logits=True)
        if feats.ndim == 4:  # a CNN's feature map
            patch = feats.flatten(2).transpose(1, 2)
        else:  # a ViT's tokens: drop class and register tokens
            patch = feats[:, getattr(self.model, "num_prefix_tokens", 1):]
        return {"cls": cls.float(), "patch": patch.float()}


def _create(name: str):
    folder = Path(name)
    try:
        if folder.is_dir():
            model = timm.create_model(f"local-dir:{folder}", pretrained=True, num_classes=0)
            return model, str(folder)
        return timm.create_model(name, pretrained=True, num_classes=0), f"hf-hub or cache: {name}"
    except RuntimeError as e:
        if "Unknown model" in str(e) or "Invalid model" in str(e):
            raise InputError(f"timm:{name}: unknown timm model name") from None
        raise InputError(f"timm:{name}: could not load its weights ({e}); put them in the Hugging Face cache "
                         "or pass a local folder saved with timm") from None
    except (OSError, ValueError) as e:
        raise InputError(f"timm:{name}: could not load its weights ({type(e).__name__}: {str(e).splitlines()[0]}); "
                         "offline, put them in the Hugging Face cache or pass a local folder saved with timm") from None
