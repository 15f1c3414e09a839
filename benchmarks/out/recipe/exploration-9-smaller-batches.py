"""Exploration (kept as the record of a measurement): batches of 64 -> 16 with 4x the steps (the same views) gained
+0.032; do batches of 8 with 2x the demo's steps gain again, at the same views and about the same time (a step is
mostly compute, so half the batch costs a little over half the time)? The demo's recipe (with mixup), on the demo's
caches, at the demo's lr and at 1/sqrt(2) of it.

    python benchmarks/out/recipe/exploration-9-smaller-batches.py

Needs a finished `distill demo` in demo-out/. Results: exploration-9-session-2026-12-01.json.
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("recipe", ROOT / "benchmarks" / "recipe.py")
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)
RUNS = {f"mixup-kcenter-k{k}-b8-s3600-lr{lr}": ("kcenter", k, {"steps": 3600, "batch_size": 8, "lr": lr,
                                                               "mixup_alpha": 1.0})
        for lr in (1e-3, 7e-4) for k in (1000, 100)}

if __name__ == "__main__":
    sys.exit(recipe.explore(ROOT / "benchmarks" / "out" / "recipe" / "exploration-9-session-2026-12-01.json", RUNS))
