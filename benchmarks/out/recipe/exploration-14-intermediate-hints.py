"""Exploration (kept as the record of a measurement, not a shipped option): does a k = 100 student learn more when it
also matches the teacher's intermediate features (FitNets' hints; few-sample distillation matches block by block),
so each of its 100 images carries more of the teacher's function? The demo's recipe at k = 100 (1,200 steps, mixup)
with an online teacher (MobileNetV2 at 128 px, shown the mixed images), and with HINT > 0 a hint term: the SCOTT
stem's first stage (8x8 x 64 at 32 px; STAGE=1: its second, 4x4 x 192) through a 1x1 conv against the teacher's
map after features[:AT] (AT=14: stride 16, 8x8 x 96; AT=17: stride 32, 4x4 x 160), standardised by its corpus
statistics, cosine per position, weight HINT.

    HINT=1 python benchmarks/out/recipe/exploration-14-intermediate-hints.py kcenter 100 1200

Needs a finished `distill demo` in demo-out/. Results: exploration-14-session-2026-12-01.json.
"""

import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import distill.model as M  # noqa: E402
import distill.train as T  # noqa: E402
import teachers.stats as S  # noqa: E402
import teachers.torchvision_cnn as TV  # noqa: E402
from distill.config import TrainConfig  # noqa: E402
from distill.demo import DemoConfig  # noqa: E402
from distill.evaluate import EvalConfig, evaluate_run  # noqa: E402

HINT, AT = float(os.environ.get("HINT", "0")), int(os.environ.get("AT", "14"))
STAGE = int(os.environ.get("STAGE", "0"))  # the SCOTT stage whose output matches (0: 8x8 x 64; 1: 4x4 x 192)


@torch.no_grad()
def forward_with_hint(self, x):
    mid = self.features[:AT](x.contiguous(memory_format=torch.channels_last))
    fmap = self.features[AT:](mid)
    return {"cls": fmap.mean(dim=(2, 3)), "patch": fmap.flatten(2).transpose(1, 2), "hint": mid.flatten(2).transpose(1, 2)}


_init, _forward = M.DistillModel.__init__, M.DistillModel.forward


def init_with_hint_head(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    stem = self.student.vit.patch_embed.stages[STAGE]
    self.hint_head = nn.Conv2d(stem.conv.out_channels, TV_HINT_CHANNELS[AT], 1)
    self._stage = {}
    stem.register_forward_hook(lambda module, inputs, out: self._stage.__setitem__("out", out))


def forward_with_hint_loss(self, images, mask, targets):
    terms = _forward(self, images, mask, targets)
    stats = next(iter(S._computed.values()))
    (key, t), = targets.items()
    target = (t["hint"].float() - stats["hint_mean"]) / stats["hint_std"].clamp_min(1e-3)
    pred = self.hint_head(self._stage["out"]).flatten(2).transpose(1, 2)
    terms["hint"] = (1 - F.cosine_similarity(pred, target.to(pred.dtype), dim=-1)).mean()
    terms["loss"] = terms["loss"] + HINT * terms["hint"]
    return terms


TV_HINT_CHANNELS = {7: 32, 11: 64, 14: 96, 17: 160}
if HINT > 0:
    TV.MobileNetV2Teacher.forward = forward_with_hint
    M.DistillModel.__init__ = init_with_hint_head
    M.DistillModel.forward = forward_with_hint_loss
method, k, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
name = f"online-hint{HINT:g}-at{AT}-{method}-k{k}-s{steps}" + (f"-stage{STAGE}" if STAGE else "")
run = Path("/tmp/exploration-14") / name
train = DemoConfig().train | {"steps": steps}
config = TrainConfig.from_dict(train | {"teacher": "mobilenetv2_imagenet", "teacher_resolution": 128, "patch_grid": 4,
                                        "subset": str(ROOT / "demo-out" / "subsets" / f"{method}-s0"), "k": k,
                                        "views": 2, "out": str(run)})
start = time.time()
T.train(config)
result = evaluate_run(run, EvalConfig(teachers=False))
out = {"knn_top1": result["student"]["knn_top1"], "probe_top1": result["student"]["probe_top1"],
       "untrained_knn_top1": result["untrained"]["knn_top1"], "wall": round(time.time() - start, 1)}
print(name, json.dumps(out))
record = ROOT / "benchmarks" / "out" / "recipe" / "exploration-14-session-2026-12-01.json"
done = json.loads(record.read_text()) if record.exists() else {}
record.write_text(json.dumps(done | {name: out}, indent=1))
