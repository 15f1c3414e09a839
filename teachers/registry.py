"""Teacher names -> loaders. The command line resolves every teacher or encoder name here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from subsets.errors import InputError

from .catalog import (
    CLIP_HUB_IDS,
    CLIP_MODEL_TYPES,
    DINO_HUB_IDS,
    DINO_MODEL_TYPES,
    HUB_IDS,
    LOADABLE_TYPES,
    SIGLIP_HUB_IDS,
    SIGLIP_MODEL_TYPES,
)

if TYPE_CHECKING:
    from .base import Teacher

_REGISTRY: dict[str, Callable[..., Teacher]] = {}
FAMILIES = ((DINO_HUB_IDS, DINO_MODEL_TYPES), (CLIP_HUB_IDS, CLIP_MODEL_TYPES), (SIGLIP_HUB_IDS, SIGLIP_MODEL_TYPES))


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
    return sorted(_REGISTRY) + list(HUB_IDS) + ["timm:NAME", "a Hub id", "a local folder"]


def teacher_catalog(cache_dir: str | None = None) -> tuple[list[dict], list[dict]]:
    """What `--teacher` and `--encoder` take on this machine: every registry name with its weights and whether they
    are here (shipped, or in the Hugging Face cache); and the other cached models a Hub id loads as a teacher."""
    from .hf import cached_models

    cached = cached_models(cache_dir)
    rows = [{"name": name, "weights": "shipped in the package", "here": True, "bytes": None} for name in sorted(_REGISTRY)]
    rows += [{"name": name, "weights": repo, "here": repo in cached, "bytes": cached.get(repo, {}).get("bytes")}
             for name, repo in HUB_IDS.items()]
    others = [{"name": repo, "model_type": c["model_type"], "bytes": c["bytes"]} for repo, c in sorted(cached.items())
              if repo not in HUB_IDS.values() and c["model_type"] in LOADABLE_TYPES]
    return rows, others


def load_teacher(name: str, resolution: int | None = None, layers: tuple[int, ...] | list[int] = ()) -> Teacher:
    """A frozen teacher from a registry name, `timm:NAME`, a Hugging Face Hub id or a local folder.

    Registry names of DINOv2, DINOv3, CLIP and SigLIP resolve to their Hub ids, loaded from the Hugging Face cache
    (or the Hub when online); a folder or Hub id is recognised by its config.json. `layers`: intermediate maps it also
    returns (`layerL_patch`): MobileNetV2's feature modules, the transformers ViTs' blocks (not timm models).
    """
    layers = tuple(layers)
    if resolution is not None and resolution < 1:  # else 0 would be read as "the teacher's own", unsaid
        raise InputError(f"{name}: resolution {resolution} px: give a positive side, or none for the teacher's own")
    if name in _REGISTRY:
        return _REGISTRY[name](resolution=resolution, layers=layers)
    from .timm_teacher import TimmTeacher

    if name.startswith("timm:"):
        _no_layers(name, layers)
        return TimmTeacher(name.removeprefix("timm:"), resolution=resolution)
    kind, source = _kind_and_source(name)
    if kind in DINO_MODEL_TYPES:
        from .dino import DinoTeacher

        return DinoTeacher(name, source, resolution, layers)
    if kind in CLIP_MODEL_TYPES:
        from .clip import ClipTeacher

        return ClipTeacher(name, source, resolution, layers)
    if kind in SIGLIP_MODEL_TYPES:
        from .siglip import SiglipTeacher

        return SiglipTeacher(name, source, resolution, layers)
    _no_layers(name, layers)  # a folder saved by timm, or a Hub id of one (timm reads those as hf-hub:ID)
    return TimmTeacher(name if Path(name).is_dir() else f"hf-hub:{name}", resolution=resolution)


def check_teacher(name: str) -> None:
    """Refuse, loading nothing, a name `load_teacher` would refuse for what it names: unknown, not a model this tool
    loads, a timm name timm does not know, or (offline) a registry name whose weights are not in the Hugging Face
    cache. A job that loads several teachers in turn checks them all first, not after the first one's work."""
    if name in _REGISTRY:
        return
    if name.startswith("timm:"):
        import timm

        arch = name.removeprefix("timm:")
        if ":" not in arch and not timm.is_model(arch):  # hf-hub:ID and local-dir:PATH are timm's to resolve
            raise InputError(f"{name}: unknown timm model name")
        return
    _, source = _kind_and_source(name)
    from .hf import cached_models, offline, weights_missing

    if name in HUB_IDS and offline() and source not in cached_models():
        raise weights_missing(name, source, "not in the cache")


def _kind_and_source(name: str) -> tuple[str, str]:
    """(model type, where its weights are) of a registry name of the Hub families, a Hub id or a folder; refused in
    one line where it is none of the model types a teacher is loaded as."""
    from .hf import folder_model_type

    if name in HUB_IDS:
        return next(types[0] for ids, types in FAMILIES if name in ids), HUB_IDS[name]  # the family's model type
    kind = folder_model_type(Path(name)) if Path(name).is_dir() else _hub_model_type(name)
    if kind in LOADABLE_TYPES:
        return kind, name
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
