"""Exploration (kept as the record of a measurement): the step is compute-bound (batch 16: 24 ms, 32: 41 ms, 48: 60 ms),
so does a narrower student, more steps in the same time, get further? The demo's recipe (with mixup) at width 128
(2 heads) and 64 (1 head), steps raised by the measured speed-up, on the demo's caches.

    python benchmarks/out/recipe/exploration-6-narrower-student.py

Needs a finished `distill demo` in demo-out/. Results: exploration-6-session-2026-12-01.json.
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("recipe", ROOT / "benchmarks" / "recipe.py")
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)

MIXUP = {"steps": 1800, "mixup_alpha": 1.0}
RUNS = {f"mixup-kcenter-k{k}-w{width}-s{steps}": ("kcenter", k, MIXUP | {
    "steps": steps, "student_kwargs": {"depth": 2, "embed_dim": width, "num_heads": width // 64}})
    for width, steps in ((128, 2600), (64, 3600)) for k in (1000, 100)}

if __name__ == "__main__":
    sys.exit(recipe.explore(ROOT / "benchmarks" / "out" / "recipe" / "exploration-6-session-2026-12-01.json", RUNS))
