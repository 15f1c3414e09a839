"""Teacher names -> loaders. The command line resolves every teacher or encoder name here."""

from __future__ import annotations

from collections.abc import Callable

from subsets.errors import InputError

from .base import Teacher

_REGISTRY: dict[str, Callable[..., Teacher]] = {}


def register(name: str):
    def deco(fn):
        _REGISTRY[name] = fn
        return fn
    return deco


@register("mobilenetv2_imagenet")
def _mobilenetv2(resolution: int | None = None) -> Teacher:
    from .torchvision_cnn import MobileNetV2Teacher

    return MobileNetV2Teacher(resolution=resolution or 128)


def available_teachers() -> list[str]:
    return sorted(_REGISTRY) + ["timm:NAME"]


def load_teacher(name: str, resolution: int | None = None) -> Teacher:
    """Load a frozen teacher by registry name or `timm:NAME` (a timm model name or a local folder)."""
    if name in _REGISTRY:
        return _REGISTRY[name](resolution=resolution)
    if name.startswith("timm:"):
        from .timm_teacher import TimmTeacher

        return TimmTeacher(name.removeprefix("timm:"), resolution=resolution)
    raise InputError(f"{name}: unknown teacher (available: {', '.join(available_teachers())})")
