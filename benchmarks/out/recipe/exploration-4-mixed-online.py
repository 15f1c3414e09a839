"""Exploration (kept as the record of a measurement, not a shipped option): does k = 100 learn more when the student
sees new pixels the teacher labels, as function matching trains? The demo's recipe with an online teacher
(MobileNetV2 at 128 px) over VIEWS fixed views per image, each step's batch mixed with a permutation of itself
(MIX=mixup: per-sample lambda ~ U(0, 1); MIX=cutmix: one box per sample, same box at both resolutions; MIX=none).

    MIX=mixup VIEWS=32 python benchmarks/out/recipe/exploration-4-mixed-online.py random 100 1800

Needs a finished `distill demo` in demo-out/. Results: exploration-4-session-2026-12-01.json.
"""

import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import distill.train as T  # noqa: E402
from distill.config import TrainConfig  # noqa: E402
from distill.demo import DemoConfig  # noqa: E402
from distill.evaluate import EvalConfig, evaluate_run  # noqa: E402

MIX, VIEWS = os.environ.get("MIX", "mixup"), int(os.environ.get("VIEWS", "2"))
PROB = float(os.environ.get("PROB", "1"))
_online = T._online_targets
gen = torch.Generator().manual_seed(0)


def mixed_online_targets(teacher, batch, inputs, config):
    x, xt = batch["image"], batch["teacher_image"]
    n = x.shape[0]
    perm = torch.randperm(n, generator=gen)
    use = (torch.rand(n, generator=gen) < PROB).float()
    if MIX == "mixup":
        lam = 1 - use * torch.rand(n, generator=gen)
        batch["image"] = lam.view(-1, 1, 1, 1) * x + (1 - lam.view(-1, 1, 1, 1)) * x[perm]
        batch["teacher_image"] = lam.view(-1, 1, 1, 1) * xt + (1 - lam.view(-1, 1, 1, 1)) * xt[perm]
    elif MIX == "cutmix":
        for i in range(n):
            if not use[i]:
                continue
            lam = torch.rand(1, generator=gen).item()
            h, w = (1 - lam) ** 0.5, (1 - lam) ** 0.5
            cy, cx = torch.rand(2, generator=gen).tolist()
            for img, src in ((batch["image"], x), (batch["teacher_image"], xt)):
                s = img.shape[-1]
                y0, y1 = int(max(0, cy - h / 2) * s), int(min(1, cy + h / 2) * s)
                x0, x1 = int(max(0, cx - w / 2) * s), int(min(1, cx + w / 2) * s)
                img[i, :, y0:y1, x0:x1] = src[perm[i], :, y0:y1, x0:x1]
        batch["image"], batch["teacher_image"] = batch["image"].clone(), batch["teacher_image"].clone()
    return _online(teacher, batch, inputs, config)


if MIX != "none":
    T._online_targets = mixed_online_targets
method, k, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
extra = json.loads(os.environ.get("EXTRA", "{}"))
name = f"online-{MIX}-p{PROB}-v{VIEWS}-{method}-k{k}-s{steps}" + "".join(f"-{a}{b}" for a, b in extra.items())
run = Path("/tmp/exploration-4") / name
train = DemoConfig().train | {"steps": steps} | extra
config = TrainConfig.from_dict(train | {"teacher": "mobilenetv2_imagenet", "teacher_resolution": 128, "patch_grid": 4,
                                        "subset": str(ROOT / "demo-out" / "subsets" / f"{method}-s0"), "k": k,
                                        "views": VIEWS, "out": str(run)})
start = time.time()
T.train(config)
result = evaluate_run(run, EvalConfig(teachers=False))
out = {"knn_top1": result["student"]["knn_top1"], "probe_top1": result["student"]["probe_top1"],
       "untrained_knn_top1": result["untrained"]["knn_top1"], "wall": time.time() - start}
print(name, json.dumps(out))
record = ROOT / "benchmarks" / "out" / "recipe" / "exploration-4-session-2026-12-01.json"
done = json.loads(record.read_text()) if record.exists() else {}
record.write_text(json.dumps(done | {name: out}, indent=1))
