"""Stage 2: frozen teachers (offline MobileNetV2, DINOv2, DINOv3, CLIP, SigLIP, timm models) and the target cache."""

from .base import Teacher, TeacherInfo
from .registry import available_teachers, load_teacher

__all__ = ["Teacher", "TeacherInfo", "available_teachers", "load_teacher"]
