"""Stage 2: frozen teachers (offline MobileNetV2, timm models; DINOv2 and CLIP to come)."""

from .base import Teacher, TeacherInfo
from .registry import available_teachers, load_teacher

__all__ = ["Teacher", "TeacherInfo", "available_teachers", "load_teacher"]
