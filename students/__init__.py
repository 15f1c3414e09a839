"""Students: timm ViTs with a switchable attention backend and projection heads to each teacher."""

from .attention import BACKENDS, set_attention
from .errors import StudentError
from .heads import ProjectionHead, TeacherHeads
from .scott import ScottEmbed
from .vit import STEMS, CnnStudent, Student, StudentSpec, build_student, create_student

__all__ = ["BACKENDS", "STEMS", "CnnStudent", "ProjectionHead", "ScottEmbed", "Student", "StudentError", "StudentSpec",
           "TeacherHeads", "build_student", "create_student", "set_attention"]
