"""The module the trainer optimises: the student and one head set per teacher, returning the loss terms."""

from __future__ import annotations

import torch
from timm.optim import param_groups_weight_decay
from torch import nn

from students import StudentSpec, TeacherHeads, build_student
from subsets.errors import InputError

from .data import TeacherTargets
from .losses import check_grids, teacher_losses

# 3-D parameters that are not weights (timm ViTs list them in `no_weight_decay()`), as patterns over our names.
NO_WEIGHT_DECAY = ("*cls_token", "*reg_token", "*mask_token", "*pos_embed")


class DistillModel(nn.Module):
    def __init__(self, spec: StudentSpec, teachers: list[TeacherTargets], weights: dict[str, float],
                 distance: str = "mse", normalize_targets: bool = False):
        super().__init__()
        self.student = build_student(spec)
        self.weights = {lv: w for lv, w in weights.items() if w > 0}
        if "patch" in self.weights and not self.student.maskable:
            raise InputError(f"student {spec.name}: the patch level needs a masked pass, which only ViT students have; "
                             "set w_patch to 0")
        self.distance = distance
        levels = list(self.weights)
        for t in teachers:
            check_grids(t.info["name"], t.tokens, self.student.grid, levels)
        if "layer" in self.weights:
            self._check_layers(spec, teachers)
        self.heads = nn.ModuleDict({
            t.key: TeacherHeads(self.student.width, t.info["token_dim"], levels, t.info.get("embed_dim"), normalize_targets,
                                {name: layer["dim"] for name, layer in t.info.get("layers", {}).items()})
            for t in teachers
        })
        if self.student.maskable:
            # Without a patch loss no pass is masked; a mask token that never gets a gradient would stall DDP.
            self.student.mask_token.requires_grad_("patch" in self.weights)

    def _check_layers(self, spec: StudentSpec, teachers: list[TeacherTargets]) -> None:
        if not self.student.maskable:
            raise InputError(f"student {spec.name}: the layer level matches a ViT student's stem tokens; set w_layer to 0")
        if not any(t.info.get("layers") for t in teachers):  # with several teachers, those that have maps teach
            names = ", ".join(t.info["name"] for t in teachers)
            raise InputError(f"w_layer > 0, but the targets of {names} hold no intermediate layers: cache them with "
                             "--teacher-layers (mobilenetv2_imagenet: 17), or set w_layer to 0")

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None,
                targets: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """`loss` (weighted sum) and `TEACHER/LEVEL` for every teacher and level."""
        out = self.student(images, mask)
        terms = {}
        for key, heads in self.heads.items():
            for level, value in teacher_losses(out, mask, targets[key], heads, self.weights, self.distance,
                                               self.student.grid).items():
                terms[f"{key}/{level}"] = value
        terms["loss"] = sum(self.weights[name.rsplit("/", 1)[1]] * v for name, v in terms.items())
        return terms

    @torch.no_grad()
    def set_target_stats(self, stats: dict[str, dict[str, torch.Tensor]]) -> None:
        """Each teacher's normalisation statistics (by head key), as its target cache stores them."""
        for key, heads in self.heads.items():
            heads.set_stats(stats[key])

    def param_groups(self, weight_decay: float) -> list[dict]:
        return param_groups(self, weight_decay)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups (timm's rule) over the trainable parameters: no weight decay on biases, norms, and the class,
    position and mask tokens. The decayed group comes first, as in checkpoints written before timm made the groups,
    so those still resume."""
    groups = param_groups_weight_decay(model, weight_decay, no_weight_decay_list=NO_WEIGHT_DECAY)
    return sorted(groups, key=lambda g: g["weight_decay"] == 0)


def make_optimizer(model: nn.Module, lr: float, weight_decay: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW over `param_groups`, fused where torch has a fused kernel (11% of the demo's step on a CPU)."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999), fused=fused)
