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
    from .dinov2 import HUB_IDS as DINOV2

    return sorted(_REGISTRY) + sorted(DINOV2) + sorted(CLIP) + ["timm:NAME", "a Hub id", "a local folder"]


def load_teacher(name: str, resolution: int | None = None, layers: tuple[int, ...] | list[int] = ()) -> Teacher:
    """A frozen teacher from a registry name, `timm:NAME`, a Hugging Face Hub id or a local folder.

    Registry names of DINOv2 and CLIP resolve to their Hub ids, loaded from the Hugging Face cache
    (or the Hub when online); a folder is recognised by its config.json. `layers`: intermediate maps it also
    returns (`layerL_patch`): MobileNetV2's feature modules, DINOv2's and CLIP's blocks (not timm models).
    """
    layers = tuple(layers)
    if name in _REGISTRY:
        return _REGISTRY[name](resolution=resolution, layers=layers)
    from .clip import HUB_IDS as CLIP
    from .clip import ClipTeacher
    from .dinov2 import HUB_IDS as DINOV2
    from .dinov2 import Dinov2Teacher
    from .hf import folder_model_type
    from .timm_teacher import TimmTeacher

    if name in DINOV2:
        return Dinov2Teacher(name, DINOV2[name], resolution, layers)
    if name in CLIP:
        return ClipTeacher(name, CLIP[name], resolution, layers)
    if name.startswith("timm:"):
        _no_layers(name, layers)
        return TimmTeacher(name.removeprefix("timm:"), resolution=resolution)
    kind = folder_model_type(Path(name)) if Path(name).is_dir() else _hub_model_type(name)
    if kind == "dinov2":
        return Dinov2Teacher(name, name, resolution, layers)
    if kind in ("clip", "clip_vision_model"):
        return ClipTeacher(name, name, resolution, layers)
    if kind == "timm":
        _no_layers(name, layers)
        return TimmTeacher(name, resolution=resolution)
    if Path(name).is_dir():
        raise InputError(f"{name}: a folder, but not a DINOv2, CLIP or timm model (config.json model_type {kind!r})")
    raise InputError(f"{name}: unknown teacher (available: {', '.join(available_teachers())})")


def _no_layers(name: str, layers: tuple[int, ...]) -> None:
    if layers:
        raise InputError(f"{name}: intermediate layers (--teacher-layers) are given by mobilenetv2_imagenet, DINOv2 "
                         "and CLIP teachers, not by timm models")


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
