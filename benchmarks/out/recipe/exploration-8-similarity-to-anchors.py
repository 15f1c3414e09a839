"""Exploration (kept as the record of a measurement): does matching the teacher's similarities to anchor points
(CompRess / SEED: a KL between softmaxes of cosine similarities to a bank of teacher features) teach the student the
teacher's k-NN geometry better than the regression alone? The anchors are the subset's own cached `cls` targets
(k images x 2 views, normalised as the loss sees them): no image outside the subset. Added to the demo's token loss
(with mixup, 1,800 steps), on the demo's caches.

    python benchmarks/out/recipe/exploration-8-similarity-to-anchors.py

Needs a finished `distill demo` in demo-out/. Results: exploration-8-session-2026-12-01.json.
"""

import importlib.util
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from distill.evaluate import EvalConfig  # noqa: E402
from distill.losses import LEVEL_LOSSES, distance  # noqa: E402
from teachers.cache import TargetCache  # noqa: E402

_spec = importlib.util.spec_from_file_location("recipe", ROOT / "benchmarks" / "recipe.py")
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)
record = ROOT / "benchmarks" / "out" / "recipe" / "exploration-8-session-2026-12-01.json"
ANCHORS = {}


def with_similarity_loss(weight: float, tau: float):
    def loss(out, mask, t, heads, kind):
        pred = heads("token", out["cls"])
        anchors = F.normalize(heads.target("cls", ANCHORS["cls"]), dim=1)
        p_teacher = F.softmax(F.normalize(t.cls, dim=1) @ anchors.T / tau, dim=1)
        log_p_student = F.log_softmax(F.normalize(pred, dim=1) @ anchors.T / tau, dim=1)
        kl = (p_teacher * (torch.log(p_teacher.clamp_min(1e-12)) - log_p_student)).sum(1).mean()
        return distance(pred, t.cls, kind) + weight * kl
    return loss


RUNS = [("kcenter", 1000, 1.0, 0.05), ("kcenter", 1000, 1.0, 0.1), ("kcenter", 100, 1.0, 0.05), ("kcenter", 100, 1.0, 0.1)]
for method, k, weight, tau in RUNS:
    name = f"mixup-{method}-k{k}-sim-w{weight}-t{tau}"
    done = json.loads(record.read_text()) if record.exists() else {}
    if name in done:
        continue
    start = time.time()
    cache = ROOT / "demo-out" / "targets" / f"{method}-s0"
    ANCHORS["cls"] = TargetCache(cache).first(k, "cls").flatten(0, 1).float()
    LEVEL_LOSSES["token"] = with_similarity_loss(weight, tau)
    result = recipe.run_variant(name, recipe.FINAL | {"steps": 1800, "mixup_alpha": 1.0}, cache, k,
                                Path("/tmp/exploration-8"), EvalConfig(teachers=False))
    out = {x: result[x] for x in ("knn_top1", "probe_top1", "untrained_knn_top1")}
    out |= {"wall": round(time.time() - start, 1), "train_s": result["seconds"]}
    print(name, out, flush=True)
    record.write_text(json.dumps(done | {name: out}, indent=1))
