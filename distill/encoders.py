"""Encoder names as the command line takes them, resolved through the teachers registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from teachers.base import TeacherEncoder

DEFAULT_ENCODER = "mobilenetv2_imagenet"


def resolve_encoder(name: str = DEFAULT_ENCODER, resolution: int | None = None) -> TeacherEncoder:
    """Any teacher of the registry (its `cls` output) can embed a corpus for selection."""
    from teachers import load_teacher
    from teachers.base import TeacherEncoder

    return TeacherEncoder(load_teacher(name, resolution=resolution))
