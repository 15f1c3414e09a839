"""Students: timm ViTs with a switchable attention backend and projection heads to each teacher."""

from .attention import BACKENDS, set_attention
from .heads import ProjectionHead, TeacherHeads
from .vit import Student, StudentSpec, create_student

__all__ = ["BACKENDS", "ProjectionHead", "Student", "StudentSpec", "TeacherHeads", "create_student", "set_attention"]
