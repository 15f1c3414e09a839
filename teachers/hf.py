"""Loading Hugging Face models from a local folder, the HF cache, or (online) the Hub, with clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

from subsets.errors import InputError

from .base import check_layers, layer_name


def hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def folder_model_type(folder: Path) -> str | None:
    """`model_type` of a transformers folder, "timm" for a folder saved by timm, None otherwise."""
    config = Path(folder) / "config.json"
    if not config.is_file():
        return None
    try:
        cfg = json.loads(config.read_text())
    except json.JSONDecodeError:
        raise InputError(f"{config}: not valid JSON") from None
    if "architecture" in cfg:
        return "timm"
    return cfg.get("model_type")


def load_pretrained(model_cls, name: str, source: str):
    """`model_cls.from_pretrained(source)`; a missing model becomes one line saying where we looked."""
    try:
        return model_cls.from_pretrained(source)
    except (OSError, ValueError) as e:
        where = source if Path(source).is_dir() else f"the Hugging Face cache ({hub_cache_dir()})"
        how = ("HF_HUB_OFFLINE=1 is set, so the Hub was not asked; " if offline() else "")
        raise InputError(
            f"{name}: no weights for {source} in {where} ({type(e).__name__}); {how}download them with "
            f"`huggingface-cli download {source}` on a connected machine, or pass a local folder"
        ) from None


def block_layers(name: str, layers: tuple[int, ...], blocks: int, dim: int, tokens: int) -> dict:
    """`TeacherInfo.layers` of a ViT teacher's intermediate maps: the patch tokens after block L, L in 1..blocks-1
    (the last block's are `patch` already); another L is refused with one line."""
    check_layers(name, layers, blocks - 1, ": the blocks before its last")
    return {layer_name(layer): {"dim": dim, "tokens": tokens} for layer in sorted(set(layers))}


def block_maps(hidden_states: tuple, layers: tuple[int, ...]) -> dict:
    """The patch tokens after each block L (transformers' `hidden_states[L]`; [0] is the embeddings), as float."""
    return {layer_name(layer): hidden_states[layer][:, 1:].float() for layer in layers}
