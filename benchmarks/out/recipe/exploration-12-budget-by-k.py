"""Exploration (kept as the record of a measurement): the demo's k = 1,000 students need about twice its 1,800 steps
(exploration 5) and its k = 100 students lose from more; can k = 1,000 take 3,600 steps, and should it keep mixup,
which costs every k = 1,000 row at 1,800 steps? And can k = 100 give up steps to it? The demo's recipe on the
demo's caches.

    python benchmarks/out/recipe/exploration-12-budget-by-k.py

Needs a finished `distill demo` in demo-out/. Results: exploration-12-session-2026-12-01.json.
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("recipe", ROOT / "benchmarks" / "recipe.py")
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)
RUNS = {f"{'mixup' if mix else 'plain'}-{method}-k1000-s3600": (method, 1000, {"steps": 3600} | mix)
        for method, mix in [("kcenter", {}), ("kmeans", {"mixup_alpha": 1.0}), ("kmeans", {}), ("random", {})]}
# and can k = 100 give up steps to k = 1,000? (at 3,600 steps it falls: exploration 5)
RUNS |= {f"mixup-{method}-k100-s1200": (method, 100, {"steps": 1200, "mixup_alpha": 1.0}) for method in ("kcenter", "random")}
# and does k = 300 (48 epochs at 1,800 steps) gain from 2,400?
RUNS |= {f"mixup-{method}-k300-s2400": (method, 300, {"steps": 2400, "mixup_alpha": 1.0})
         for method in ("kcenter", "kmeans", "random")}

if __name__ == "__main__":
    sys.exit(recipe.explore(ROOT / "benchmarks" / "out" / "recipe" / "exploration-12-session-2026-12-01.json", RUNS))
