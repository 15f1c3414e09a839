"""Exploration (kept as the record of a measurement): the step is compute-bound (batch 16: 24 ms, 32: 41 ms, 48: 60 ms),
so does a narrower student, more steps in the same time, get further? The demo's recipe (with mixup) at width 128
(2 heads) and 64 (1 head), steps raised by the measured speed-up, on the demo's caches.

    python benchmarks/out/recipe/exploration-6-narrower-student.py

Needs a finished `distill demo` in demo-out/. Results: exploration-6-session-2026-12-01.json.
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
record = ROOT / "benchmarks" / "out" / "recipe" / "exploration-6-session-2026-12-01.json"
RUNS = [("kcenter", 1000, 128, 2600), ("kcenter", 100, 128, 2600), ("kcenter", 1000, 64, 3600),
        ("kcenter", 100, 64, 3600)]
for method, k, width, steps in RUNS:
    name = f"mixup-{method}-k{k}-w{width}-s{steps}"
    done = json.loads(record.read_text()) if record.exists() else {}
    if name in done:
        continue
    start = time.time()
    result = recipe.run_variant(name, recipe.FINAL | {"steps": steps, "mixup_alpha": 1.0,
                                                "student_kwargs": {"depth": 2, "embed_dim": width, "num_heads": width // 64}},
                                ROOT / "demo-out" / "targets" / f"{method}-s0", k, Path("/tmp/exploration-6"),
                                EvalConfig(teachers=False))
    out = {x: result[x] for x in ("knn_top1", "probe_top1", "untrained_knn_top1")}
    out |= {"wall": round(time.time() - start, 1), "train_s": result["seconds"]}
    print(name, out, flush=True)
    record.write_text(json.dumps(done | {name: out}, indent=1))
