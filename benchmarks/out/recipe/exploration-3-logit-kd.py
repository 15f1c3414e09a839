"""Exploration (kept as the record of a measurement, not a shipped option): the demo's recipe with a KL term on the
teacher's ImageNet logits, computed through MobileNetV2's frozen classifier from the cached `cls` and from the
student's token head (both brought back from the normalised space), as function matching distils.

    LAM=1 COS=1 python benchmarks/out/recipe/exploration-3-logit-kd.py random 100 1800
    LAM=0 EXTRA='{"lr": 0.002}' python benchmarks/out/recipe/exploration-3-logit-kd.py kcenter 1000 1800

Needs a finished `distill demo` in demo-out/. Results: exploration-3-session-2026-11-30.json.
"""

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import torch.nn.functional as F
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import distill.losses as L  # noqa: E402
from distill.evaluate import EvalConfig  # noqa: E402

_spec = importlib.util.spec_from_file_location("recipe", ROOT / "benchmarks" / "recipe.py")
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)

W = load_file(str(ROOT / "teachers" / "weights" / "mobilenet_v2_imagenet1k.safetensors"))
CW, CB = W["classifier.1.weight"], W["classifier.1.bias"]
LAM, T, COS = (float(os.environ.get(k, d)) for k, d in (("LAM", "1"), ("T", "1"), ("COS", "1")))


def token_kd(out, mask, t, heads, kind):
    pred = heads("token", out["cls"])
    norm = heads.norms["cls"]
    teacher_logits = (norm.inverse(t.cls.float()) @ CW.T + CB) / T
    student_logits = (norm.inverse(pred) @ CW.T + CB) / T
    kl = F.kl_div(F.log_softmax(student_logits, -1), F.log_softmax(teacher_logits, -1), log_target=True,
                  reduction="batchmean") * T * T
    return COS * L.distance(pred, t.cls, kind) + LAM * kl


L.LEVEL_LOSSES["token"] = token_kd
method, k, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
extra = json.loads(os.environ.get("EXTRA", "{}"))
name = f"kd-lam{LAM}-T{T}-cos{COS}-{method}-k{k}-s{steps}-" + "-".join(f"{a}{b}" for a, b in extra.items())
start = time.time()
result = recipe.run_variant(name, recipe.FINAL | {"steps": steps} | extra, ROOT / "demo-out" / "targets" / f"{method}-s0",
                            k, Path("/tmp/exploration-3"), EvalConfig(teachers=False))
print(name, json.dumps(result | {"wall": time.time() - start}))
