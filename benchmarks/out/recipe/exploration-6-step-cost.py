"""Exploration (kept as the record of a measurement): what does one training step of the demo's student cost on this
CPU, and would training several runs as one batched model (torch.func.vmap over stacked weights) buy steps?

    python benchmarks/out/recipe/exploration-6-step-cost.py

A stand-in for the demo's step (the SCOTT ViT of 2 blocks at 32 px, a class-token and a patch head to the teacher's
1,280 channels, cosine losses, fused AdamW) on random tensors: ms per step at batch 16, 32 and 48, and three runs
of batch 16 as one vmapped model against one run. Results: exploration-6-session-2026-12-01.json.
"""

import copy
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import timm  # noqa: E402

import students  # noqa: E402, F401  (registers vit_scott)
import students.scott as scott  # noqa: E402

record = ROOT / "benchmarks" / "out" / "recipe" / "exploration-6-session-2026-12-01.json"


class Step(nn.Module):
    def __init__(self, width: int = 192):
        super().__init__()
        self.vit = timm.create_model("vit_scott", depth=2, num_classes=0, embed_dim=width, num_heads=width // 64)
        self.cls_head, self.patch_head = nn.Linear(width, 1280), nn.Linear(width, 1280)

    def forward(self, x, cls_target, patch_target):
        f = self.vit.forward_features(x)
        return (2 - nn.functional.cosine_similarity(self.cls_head(f[:, 0]), cls_target, dim=-1).mean()
                - nn.functional.cosine_similarity(self.patch_head(f[:, 1:]), patch_target, dim=-1).mean())


def ms_per_step(step, n: int = 40) -> float:
    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(n):
        step()
    return round(1000 * (time.perf_counter() - start) / n, 1)


def one_run(batch: int, width: int = 192):
    torch.manual_seed(0)
    m = Step(width)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, fused=True)
    x, c, p = torch.randn(batch, 3, 32, 32), torch.randn(batch, 1280), torch.randn(batch, 16, 1280)

    def step():
        loss = m(x, c, p)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def vmapped_runs(runs: int, batch: int):
    torch.manual_seed(0)
    models = [Step() for _ in range(runs)]
    params, buffers = stack_module_state(models)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    base = copy.deepcopy(models[0]).to("meta")
    opt = torch.optim.AdamW(list(params.values()), lr=1e-3, fused=True)
    x, c, p = torch.randn(runs, batch, 3, 32, 32), torch.randn(runs, batch, 1280), torch.randn(runs, batch, 16, 1280)
    loss_of = vmap(lambda pr, bu, *a: functional_call(base, (pr, bu), a), randomness="different")

    def step():
        loss = loss_of(params, buffers, x, c, p).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def main() -> None:
    out = {f"batch {b}": ms_per_step(one_run(b)) for b in (16, 32, 48)}
    out |= {f"batch 16, width {w}": ms_per_step(one_run(16, w)) for w in (128, 64)}
    # vmap cannot query channels-last contiguity: the stem runs channels-first under it
    forward = scott.ScottEmbed.forward

    def channels_first(self, x, mask=None):
        for stage in self.stages:
            x = stage(x, None)
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))
    scott.ScottEmbed.forward = channels_first
    out["batch 16, channels-first stem"] = ms_per_step(one_run(16))
    out["3 runs of batch 16 as one vmapped model"] = ms_per_step(vmapped_runs(3, 16))
    scott.ScottEmbed.forward = forward
    print(json.dumps(out, indent=1))
    done = json.loads(record.read_text()) if record.exists() else {}
    record.write_text(json.dumps(done | {"ms per step": out}, indent=1))


if __name__ == "__main__":
    main()
