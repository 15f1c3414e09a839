"""Exploration (kept as the record of a measurement): does the targets' per-channel standardisation cost the student
the teacher's geometry? Standardising gives all 1,280 channels equal weight in the cosine, where the teacher's own
k-NN is ruled by its high-variance directions. The demo's recipe (with mixup, 1,800 steps) with the targets only
centred (the corpus mean removed, no per-channel scale) and raw (no normalisation), on the demo's caches.

    python benchmarks/out/recipe/exploration-7-target-scaling.py

Needs a finished `distill demo` in demo-out/. Results: exploration-7-session-2026-12-01.json.
"""

import importlib.util
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from distill.evaluate import EvalConfig  # noqa: E402
from students.heads import TeacherHeads  # noqa: E402

_spec = importlib.util.spec_from_file_location("recipe", ROOT / "benchmarks" / "recipe.py")
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)
record = ROOT / "benchmarks" / "out" / "recipe" / "exploration-7-session-2026-12-01.json"


def centre_only(heads, stats):
    """TeacherHeads.set_stats with every std set to 1: the targets centred, their channels' scales kept."""
    real_set_stats(heads, {k: torch.ones_like(v) if k.endswith("_std") else v for k, v in stats.items()})


real_set_stats = TeacherHeads.set_stats
RUNS = [("kcenter", 1000, "centred"), ("kcenter", 100, "centred"), ("kcenter", 1000, "raw"), ("kcenter", 100, "raw")]
for method, k, targets in RUNS:
    name = f"mixup-{method}-k{k}-{targets}"
    done = json.loads(record.read_text()) if record.exists() else {}
    if name in done:
        continue
    start = time.time()
    TeacherHeads.set_stats = centre_only if targets == "centred" else real_set_stats
    settings = {"steps": 1800, "mixup_alpha": 1.0, "normalize_targets": targets == "centred"}
    result = recipe.run_variant(name, recipe.FINAL | settings,
                                ROOT / "demo-out" / "targets" / f"{method}-s0", k, Path("/tmp/exploration-7"),
                                EvalConfig(teachers=False))
    out = {x: result[x] for x in ("knn_top1", "probe_top1", "untrained_knn_top1")}
    out |= {"wall": round(time.time() - start, 1), "train_s": result["seconds"]}
    print(name, out, flush=True)
    record.write_text(json.dumps(done | {name: out}, indent=1))
