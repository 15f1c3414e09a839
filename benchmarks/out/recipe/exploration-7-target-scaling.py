"""Exploration (kept as the record of a measurement): does the targets' per-channel standardisation cost the student
the teacher's geometry? Standardising gives all 1,280 channels equal weight in the cosine, where the teacher's own
k-NN is ruled by its high-variance directions. The demo's recipe (with mixup, 1,800 steps) with the targets only
centred (the corpus mean removed, no per-channel scale) and raw (no normalisation), on the demo's caches.

    python benchmarks/out/recipe/exploration-7-target-scaling.py

Needs a finished `distill demo` in demo-out/. Results: exploration-7-session-2026-12-01.json.
"""

import importlib.util
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from students.heads import TeacherHeads  # noqa: E402

_spec = importlib.util.spec_from_file_location("recipe", ROOT / "benchmarks" / "recipe.py")
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)
real_set_stats = TeacherHeads.set_stats
MIXUP = {"steps": 1800, "mixup_alpha": 1.0}
RUNS = {f"mixup-kcenter-k{k}-{targets}": ("kcenter", k, MIXUP | {"normalize_targets": targets == "centred"})
        for targets in ("centred", "raw") for k in (1000, 100)}


def centre_only(heads, stats):
    """TeacherHeads.set_stats with every std set to 1: the targets centred, their channels' scales kept."""
    real_set_stats(heads, {k: torch.ones_like(v) if k.endswith("_std") else v for k, v in stats.items()})


def before(name: str) -> None:
    TeacherHeads.set_stats = centre_only if name.endswith("centred") else real_set_stats


if __name__ == "__main__":
    sys.exit(recipe.explore(ROOT / "benchmarks" / "out" / "recipe" / "exploration-7-session-2026-12-01.json", RUNS,
                            before))
