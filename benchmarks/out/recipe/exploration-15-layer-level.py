"""Exploration (kept as the record of a measurement): the layer level as built (`w_layer`: the stem's tokens,
through a LayerNorm + Linear head, against the teacher's intermediate map `layer17_patch`, 160 channels at stride 32,
normalised by its corpus statistics; cosine), on caches of the demo's subsets made with `--teacher-layers 17`.
Exploration 14 measured the idea with an online teacher and a 1x1 conv on the stem's second stage: at kcenter
k = 1,000 0.478 against 0.433 without it.

    python benchmarks/out/recipe/exploration-15-layer-level.py

Needs a finished `distill demo` in demo-out/; writes its caches to /tmp/exploration-15-caches/ first.
Results: exploration-15-session-2026-12-01.json.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("recipe", ROOT / "benchmarks" / "recipe.py")
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)
CACHES = Path("/tmp/exploration-15-caches")
STEPS = {100: 1200, 300: 2400, 1000: 3600}  # the demo's
RUNS = {f"layer{w:g}-{method}-k{k}": (method, k, {"steps": STEPS[k], "mixup_alpha": 1.0, "w_layer": w})
        for method, k, w in [("kcenter", 100, 1.0), ("kcenter", 100, 3.0), ("random", 100, 1.0),
                             # weight 3 was the better at kcenter k = 100: on every method, and at k = 1,000 (the
                             # demo then measured every k)
                             ("random", 100, 3.0), ("kcenter", 1000, 3.0), ("random", 1000, 3.0), ("kmeans", 100, 3.0),
                             ("kmeans", 1000, 3.0), ("kcenter", 300, 3.0)]}


def cache(method: str) -> Path:
    out = CACHES / method
    subprocess.run([sys.executable, "-m", "distill", "cache", "--source", "builtin:cifar10-demo", "--subset",
                    str(ROOT / "demo-out" / "subsets" / f"{method}-s0"), "--resolution", "128", "--views", "2",
                    "--k", "1000", "--teacher-layers", "17", "--out", str(out)], check=True, cwd=ROOT)
    return out


if __name__ == "__main__":
    sys.exit(recipe.explore(ROOT / "benchmarks" / "out" / "recipe" / "exploration-15-session-2026-12-01.json", RUNS,
                            cache=cache))
