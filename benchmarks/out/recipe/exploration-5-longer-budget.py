"""Exploration (kept as the record of a measurement): is it the budget or the subset that holds the demo's k = 1,000
students back? The demo's recipe (with mixup) at 2x and 4x its 1,800 steps, on the demo's caches.

    python benchmarks/out/recipe/exploration-5-longer-budget.py

Needs a finished `distill demo` in demo-out/. Results: exploration-5-session-2026-12-01.json.
"""

import importlib.util
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from distill.evaluate import EvalConfig  # noqa: E402

_spec = importlib.util.spec_from_file_location("recipe", ROOT / "benchmarks" / "recipe.py")
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)
record = ROOT / "benchmarks" / "out" / "recipe" / "exploration-5-session-2026-12-01.json"
for method, k, steps in [("kcenter", 1000, 3600), ("random", 1000, 3600), ("kcenter", 1000, 7200), ("kcenter", 100, 3600)]:
    name = f"mixup-{method}-k{k}-s{steps}"
    done = json.loads(record.read_text()) if record.exists() else {}
    if name in done:
        continue
    start = time.time()
    result = recipe.run_variant(name, recipe.FINAL | {"steps": steps, "mixup_alpha": 1.0},
                                ROOT / "demo-out" / "targets" / f"{method}-s0", k, Path("/tmp/exploration-5"),
                                EvalConfig(teachers=False))
    out = {x: result[x] for x in ("knn_top1", "probe_top1", "untrained_knn_top1")} | {"wall": round(time.time() - start, 1)}
    print(name, out, flush=True)
    record.write_text(json.dumps(done | {name: out}, indent=1))
