"""Exploration (kept as the record of a measurement): can the k = 100 students, 0.005-0.029 short of +0.10 over
their floor in the demo, gain from regularisers that act with mixup? The demo's recipe at k = 100 (1,200 steps,
mixup) on the kcenter and random caches, one change each: the masked patch level (half of each batch with half its
patches masked, the teacher's map predicted there), drop path 0.1, and mixup weights ~ Beta(2, 2) (mixes nearer
the middle). Beta(2, 2) then on kmeans k = 100 and at k = 1,000 (3,600 steps).

    python benchmarks/out/recipe/exploration-13-small-k-regularisers.py

Needs a finished `distill demo` in demo-out/. Results: exploration-13-session-2026-12-01.json.
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("recipe", ROOT / "benchmarks" / "recipe.py")
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)
DEMO_K100 = {"steps": 1200, "mixup_alpha": 1.0}
CHANGES = {"patch-level": {"w_patch": 1.0}, "drop-path-0.1": {"student_kwargs": {"depth": 2, "drop_path_rate": 0.1}},
           "mixup-beta2": {"mixup_alpha": 2.0}}
RUNS = {f"{change}-{method}-k100": (method, 100, DEMO_K100 | settings)
        for change, settings in CHANGES.items() for method in ("kcenter", "random")}
# Beta(2, 2), the one change up at both: on kmeans too, and at k = 1,000 (the demo's 3,600 steps), where mixup is neutral
RUNS |= {"mixup-beta2-kmeans-k100": ("kmeans", 100, DEMO_K100 | {"mixup_alpha": 2.0})}
RUNS |= {f"mixup-beta2-{method}-k1000": (method, 1000, {"steps": 3600, "mixup_alpha": 2.0}) for method in ("kcenter", "random")}

if __name__ == "__main__":
    sys.exit(recipe.explore(ROOT / "benchmarks" / "out" / "recipe" / "exploration-13-session-2026-12-01.json", RUNS))
