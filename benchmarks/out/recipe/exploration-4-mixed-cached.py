"""Exploration (kept as the record of a measurement, not a shipped option): the demo's recipe on its cache, each step's
batch mixed with a permutation of itself and the targets mixed by the same weights (mixup of inputs and targets, as
for labels; the teacher never sees the mixture). MIX=mixup (per-sample lambda ~ U(0, 1)) or cutmix (targets mixed by
area; the patch map's cells taken by the box).

    MIX=mixup python benchmarks/out/recipe/exploration-4-mixed-cached.py random 100 1800

Needs a finished `distill demo` in demo-out/. Results: exploration-4-session-2026-12-01.json.
"""

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import distill.train as T  # noqa: E402
from distill.evaluate import EvalConfig  # noqa: E402

_spec = importlib.util.spec_from_file_location("recipe", ROOT / "benchmarks" / "recipe.py")
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)

MIX = os.environ.get("MIX", "mixup")
ALPHA = float(os.environ.get("ALPHA", "1"))
PROB = float(os.environ.get("PROB", "1"))  # share of the samples mixed
UNTIL = float(os.environ.get("UNTIL", "1"))  # share of the steps that mix (the rest train on clean views)
calls = [0]
_to = T._to
gen = torch.Generator().manual_seed(0)


def mix(a: torch.Tensor, b: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    lam = lam.view(-1, *([1] * (a.dim() - 1))).to(a.dtype)
    return lam * a + (1 - lam) * b


def mixed_to(batch, device):
    if not (isinstance(batch, dict) and "image" in batch):  # _to recurses through T._to
        return _to(batch, device)
    batch = {k: _to(v, device) for k, v in batch.items()}
    calls[0] += 1
    if calls[0] > UNTIL * STEPS:
        return batch
    n = batch["image"].shape[0]
    perm = torch.randperm(n, generator=gen)
    lam = torch.distributions.Beta(ALPHA, ALPHA).sample((n,)) if ALPHA > 0 else torch.rand(n, generator=gen)
    lam = torch.where(torch.rand(n, generator=gen) < PROB, lam, torch.ones(n))
    batch["image"] = mix(batch["image"], batch["image"][perm], lam)
    for t in batch["targets"].values():
        for name in list(t):
            t[name] = mix(t[name], t[name][perm], lam)
    return batch


T._to = mixed_to
method, k, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
STEPS = steps
extra = json.loads(os.environ.get("EXTRA", "{}"))
name = f"cached-{MIX}-a{ALPHA}-" + (f"p{PROB}-" if PROB < 1 else "") + (f"until{UNTIL}-" if UNTIL < 1 else "")
name += f"{method}-k{k}-s{steps}"
name += "".join(f"-{a}{b}" for a, b in extra.items())
start = time.time()
result = recipe.run_variant(name, recipe.FINAL | {"steps": steps} | extra, ROOT / "demo-out" / "targets" / f"{method}-s0",
                            k, Path("/tmp/exploration-4"), EvalConfig(teachers=False))
out = {k: result[k] for k in ("knn_top1", "probe_top1", "untrained_knn_top1")} | {"wall": time.time() - start}
print(name, json.dumps(out))
record = ROOT / "benchmarks" / "out" / "recipe" / "exploration-4-session-2026-12-01.json"
done = json.loads(record.read_text()) if record.exists() else {}
record.write_text(json.dumps(done | {name: out}, indent=1))
