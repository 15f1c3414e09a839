"""Exploration (kept as the record of a measurement): is it the budget or the subset that holds the demo's k = 1,000
students back? The demo's recipe (with mixup) at 2x and 4x its 1,800 steps, on the demo's caches.

    python benchmarks/out/recipe/exploration-5-longer-budget.py

Needs a finished `distill demo` in demo-out/. Results: exploration-5-session-2026-12-01.json.
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("recipe", ROOT / "benchmarks" / "recipe.py")
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)
RUNS = {f"mixup-{method}-k{k}-s{steps}": (method, k, {"steps": steps, "mixup_alpha": 1.0})
        for method, k, steps in [("kcenter", 1000, 3600), ("random", 1000, 3600), ("kcenter", 1000, 7200),
                                 ("kcenter", 100, 3600)]}

if __name__ == "__main__":
    sys.exit(recipe.explore(ROOT / "benchmarks" / "out" / "recipe" / "exploration-5-session-2026-12-01.json", RUNS))
