"""Stage 2: frozen teachers (offline MobileNetV2, DINOv2, DINOv3, CLIP, SigLIP, timm models) and the target cache."""

from __future__ import annotations

import importlib

# Imported when first used (PEP 562): naming or listing teachers does not load torch (2-3 s a process).
_WHERE = {"Teacher": ".base", "TeacherInfo": ".base", "available_teachers": ".registry", "check_teacher": ".registry",
          "load_teacher": ".registry", "teacher_catalog": ".registry"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name], __name__), name)
