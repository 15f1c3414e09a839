"""Exploration (kept as the record of a measurement): the student is far from fitting its teacher at the demo's
budget (cosine to the teacher 0.29-0.33 at k = 1,000); does timm's JAX-style initialisation (zero-initialised
classifier, Lecun-normal patch embedding, normal biases in the MLPs) train a 2-block ViT faster? The demo's recipe
(with mixup, 1,800 steps) with `weight_init: jax`, on the demo's caches.

    python benchmarks/out/recipe/exploration-11-jax-init.py

Needs a finished `distill demo` in demo-out/. Results: exploration-11-session-2026-12-01.json.
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("recipe", ROOT / "benchmarks" / "recipe.py")
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)
RUNS = {f"mixup-{method}-k{k}-jax-init": (method, k, {"steps": 1800, "mixup_alpha": 1.0, "student_kwargs": {
    "depth": 2, "weight_init": "jax"}}) for method, k in [("kcenter", 1000), ("kcenter", 100), ("kmeans", 1000),
                                                          ("random", 1000), ("kcenter", 300), ("random", 100)]}

if __name__ == "__main__":
    sys.exit(recipe.explore(ROOT / "benchmarks" / "out" / "recipe" / "exploration-11-session-2026-12-01.json", RUNS))
