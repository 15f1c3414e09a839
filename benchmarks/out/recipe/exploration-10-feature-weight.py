"""Exploration (kept as the record of a measurement): the token level alone lost 0.019 against token + feature (the
whole map [cls; patches] through its own head); does more weight on the feature level gain? The demo's recipe (with
mixup, 1,800 steps) with w_feature 2 and with w_feature 4, on the demo's caches.

    python benchmarks/out/recipe/exploration-10-feature-weight.py

Needs a finished `distill demo` in demo-out/. Results: exploration-10-session-2026-12-01.json.
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("recipe", ROOT / "benchmarks" / "recipe.py")
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)
RUNS = {f"mixup-kcenter-k{k}-wf{w}": ("kcenter", k, {"steps": 1800, "mixup_alpha": 1.0, "w_feature": float(w)})
        for w in (2, 4) for k in (1000, 100)}

if __name__ == "__main__":
    sys.exit(recipe.explore(ROOT / "benchmarks" / "out" / "recipe" / "exploration-10-session-2026-12-01.json", RUNS))
