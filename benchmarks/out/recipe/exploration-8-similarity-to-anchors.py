"""Exploration (kept as the record of a measurement): does matching the teacher's similarities to anchor points
(CompRess / SEED: a KL between softmaxes of cosine similarities to a bank of teacher features) teach the student the
teacher's k-NN geometry better than the regression alone? The anchors are the subset's own cached `cls` targets
(k images x 2 views, normalised as the loss sees them): no image outside the subset. Added to the demo's token loss
(with mixup, 1,800 steps), on the demo's caches.

    python benchmarks/out/recipe/exploration-8-similarity-to-anchors.py

Needs a finished `distill demo` in demo-out/. Results: exploration-8-session-2026-12-01.json.
"""

import importlib.util
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from distill.losses import LEVEL_LOSSES, distance  # noqa: E402
from teachers.cache import TargetCache  # noqa: E402

_spec = importlib.util.spec_from_file_location("recipe", ROOT / "benchmarks" / "recipe.py")
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)
MIXUP = {"steps": 1800, "mixup_alpha": 1.0}
SETTINGS = {f"mixup-kcenter-k{k}-sim-w1.0-t{tau}": (k, 1.0, tau) for k in (1000, 100) for tau in (0.05, 0.1)}
RUNS = {name: ("kcenter", k, MIXUP) for name, (k, _, _) in SETTINGS.items()}


def with_similarity_loss(anchors_raw: torch.Tensor, weight: float, tau: float):
    """The token loss plus KL(teacher || student) of their softmaxed cosine similarities to the anchors."""
    def loss(out, mask, t, heads, kind):
        pred = heads("token", out["cls"])
        anchors = F.normalize(heads.target("cls", anchors_raw), dim=1)
        p_teacher = F.softmax(F.normalize(t.cls, dim=1) @ anchors.T / tau, dim=1)
        log_p_student = F.log_softmax(F.normalize(pred, dim=1) @ anchors.T / tau, dim=1)
        kl = (p_teacher * (torch.log(p_teacher.clamp_min(1e-12)) - log_p_student)).sum(1).mean()
        return distance(pred, t.cls, kind) + weight * kl
    return loss


def before(name: str) -> None:
    k, weight, tau = SETTINGS[name]
    anchors = TargetCache(ROOT / "demo-out" / "targets" / "kcenter-s0").first(k, "cls").flatten(0, 1).float()
    LEVEL_LOSSES["token"] = with_similarity_loss(anchors, weight, tau)


if __name__ == "__main__":
    sys.exit(recipe.explore(ROOT / "benchmarks" / "out" / "recipe" / "exploration-8-session-2026-12-01.json", RUNS,
                            before))
