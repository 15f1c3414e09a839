"""Teacher names -> loaders. The command line resolves every teacher or encoder name here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from subsets.errors import InputError

from .base import Teacher

_REGISTRY: dict[str, Callable[..., Teacher]] = {}


def register(name: str):
    def deco(fn):
        _REGISTRY[name] = fn
        return fn
    return deco


@register("mobilenetv2_imagenet")
def _mobilenetv2(resolution: int | None = None, layers: tuple[int, ...] = ()) -> Teacher:
    from .torchvision_cnn import MobileNetV2Teacher

    return MobileNetV2Teacher(resolution=resolution or 128, layers=layers)


def available_teachers() -> list[str]:
    from .clip import HUB_IDS as CLIP
    from .dino import HUB_IDS as DINO
    from .siglip import HUB_IDS as SIGLIP

    return sorted(_REGISTRY) + sorted(DINO) + sorted(CLIP) + sorted(SIGLIP) + ["timm:NAME", "a Hub id", "a local folder"]


def hub_id(name: str) -> str | None:
    """The Hugging Face Hub id a registry name of a transformers teacher stands for (None for other names)."""
    from . import clip, dino, siglip

    return next((family.HUB_IDS[name] for family in (dino, clip, siglip) if name in family.HUB_IDS), None)


def load_teacher(name: str, resolution: int | None = None, layers: tuple[int, ...] | list[int] = ()) -> Teacher:
    """A frozen teacher from a registry name, `timm:NAME`, a Hugging Face Hub id or a local folder.

    Registry names of DINOv2, DINOv3, CLIP and SigLIP resolve to their Hub ids, loaded from the Hugging Face cache
    (or the Hub when online); a folder or Hub id is recognised by its config.json. `layers`: intermediate maps it also
    returns (`layerL_patch`): MobileNetV2's feature modules, the transformers ViTs' blocks (not timm models).
    """
    layers = tuple(layers)
    if name in _REGISTRY:
        return _REGISTRY[name](resolution=resolution, layers=layers)
    from . import clip, dino, siglip
    from .hf import folder_model_type
    from .timm_teacher import TimmTeacher

    families = ((dino, dino.DinoTeacher), (clip, clip.ClipTeacher), (siglip, siglip.SiglipTeacher))
    for family, teacher in families:
        if name in family.HUB_IDS:
            return teacher(name, hub_id(name), resolution, layers)
    if name.startswith("timm:"):
        _no_layers(name, layers)
        return TimmTeacher(name.removeprefix("timm:"), resolution=resolution)
    kind = folder_model_type(Path(name)) if Path(name).is_dir() else _hub_model_type(name)
    for family, teacher in families:
        if kind in family.MODEL_TYPES:
            return teacher(name, name, resolution, layers)
    if kind == "timm":
        _no_layers(name, layers)
        return TimmTeacher(name, resolution=resolution)
    if kind == "siglip2":
        raise InputError(f"{name}: a SigLIP 2 NaFlex model (variable input sides); give a fixed-resolution SigLIP 2 "
                         "model instead (siglip2_vitb16: google/siglip2-base-patch16-224)")
    if kind is not None:
        raise InputError(f"{name}: config.json says model_type {kind!r}, not a teacher this tool loads (DINOv2, DINOv3, "
                         "CLIP, SigLIP, or a timm model)")
    if Path(name).is_dir():
        raise InputError(f"{name}: a folder without config.json, so not a model saved by transformers or timm")
    raise InputError(f"{name}: unknown teacher (available: {', '.join(available_teachers())})")


def _no_layers(name: str, layers: tuple[int, ...]) -> None:
    if layers:
        raise InputError(f"{name}: intermediate layers (--teacher-layers) are given by mobilenetv2_imagenet, DINOv2, "
                         "DINOv3, CLIP and SigLIP teachers, not by timm models")


def _hub_model_type(repo_id: str) -> str | None:
    """model_type of a Hub id whose config.json is in the HF cache (or on the Hub when online)."""
    if repo_id.count("/") != 1:
        return None
    from huggingface_hub import hf_hub_download

    from .hf import folder_model_type

    try:
        return folder_model_type(Path(hf_hub_download(repo_id, "config.json")).parent)
    except Exception:  # not cached and offline, or no such repo: then it is not a teacher we know
        return None
