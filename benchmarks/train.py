"""Training throughput: the student alone (targets in memory), with cached targets, with the teacher online;
and sdpa against naive attention at 197 tokens, forward and backward.

    python benchmarks/train.py                    # all regimes below
    python benchmarks/train.py --regime demo-scott  # the demo's student (SCOTT stem) <- MobileNetV2 at 128 px
    python benchmarks/train.py --regime demo-patch  # the same student with timm's patch embedding
    python benchmarks/train.py --regime vitb14    # ViT-S/16 at 224 px <- a DINOv2-B/14-sized ViT at 224 px
    python benchmarks/train.py --regime objectives  # the demo's student by each objective: distill, mim-jepa, local-global

The ViT-B/14 teacher has random weights (same compute as DINOv2-B/14); it is saved as a timm folder
and loaded through the teacher registry like any local teacher. Throughputs are images per second
of the training loop, measured by the trainer itself after one warm-up step.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from distill.config import TrainConfig  # noqa: E402
from distill.demo import DemoConfig  # noqa: E402
from distill.encoders import resolve_encoder  # noqa: E402
from distill.losses import make_masks  # noqa: E402
from distill.model import make_optimizer  # noqa: E402
from distill.train import build_model, prepare_inputs, train  # noqa: E402
from students import set_attention  # noqa: E402
from students.vit import create_student  # noqa: E402
from subsets.embed import EmbedConfig, embed_corpus  # noqa: E402
from subsets.make_subset import SelectConfig, make_subset  # noqa: E402
from subsets.sources import open_source  # noqa: E402
from teachers import load_teacher  # noqa: E402
from teachers.cache import CacheConfig, cache_targets  # noqa: E402
from teachers.views import ViewPolicy  # noqa: E402

SOURCE = "builtin:cifar10-demo"
_DEMO = DemoConfig().train
_DEMO_STUDENT = {"student": _DEMO["student"], "img_size": _DEMO["img_size"], "patch_size": _DEMO["patch_size"],
                 "student_kwargs": _DEMO["student_kwargs"], "teacher": "mobilenetv2_imagenet", "teacher_resolution": 128,
                 "batch_size": _DEMO["batch_size"], "k": 512, "steps": 24}
REGIMES = {
    "demo-patch": _DEMO_STUDENT | {"stem": "patch"},  # the demo's student with timm's patch embedding
    "demo-scott": _DEMO_STUDENT | {"stem": "scott"},  # ... and with the SCOTT stem (the demo's choice)
    "vitb14": {"student": "vit_small_patch16_224", "img_size": 224, "patch_size": 16, "teacher": "RANDOM_VITB14",
               "teacher_resolution": 224, "batch_size": 16, "k": 48, "steps": 5},
}


def random_vitb14(folder: Path) -> str:
    """A DINOv2-B/14-sized timm ViT with random weights, saved as a timm folder (teacher-registry loadable)."""
    import timm
    from timm.models import save_for_hf

    if not (folder / "config.json").exists():
        torch.manual_seed(0)
        model = timm.create_model("vit_base_patch14_dinov2", pretrained=False, num_classes=0, img_size=224)
        model.pretrained_cfg = {**model.pretrained_cfg, "input_size": (3, 224, 224)}
        save_for_hf(model, str(folder), model_args={"img_size": 224})
    return str(folder)


def make_subset_dir(work: Path, k: int) -> Path:
    if not (work / f"subset-{k}" / "manifest.json").exists():
        if not (work / "emb" / "meta.json").exists():
            embed_corpus(open_source(SOURCE), resolve_encoder(resolution=32), work / "emb", EmbedConfig())
        make_subset(work / "emb", work / f"subset-{k}", SelectConfig(method="random", k_max=k))
    return work / f"subset-{k}"


def loop_rate(run: Path) -> float:
    """Images/s over the logged steps after the first (warm-up) interval."""
    rates = [m["images_per_s"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
             if m["images_per_s"]][1:]
    return sum(rates) / len(rates)


def student_only_rate(config: TrainConfig, steps: int) -> float:
    """The same model, loss and optimiser as the trainer, with images and targets already in memory."""
    inputs = prepare_inputs(config)
    model = build_model(config, inputs.teachers)
    set_attention(model.student, "auto", "cpu" if not torch.cuda.is_available() else "cuda")
    opt = make_optimizer(model, 1e-4, config.weight_decay, torch.device("cpu"))
    b = config.batch_size
    items = [inputs.dataset[i] for i in range(b)]
    images = torch.stack([it["image"] for it in items])
    if inputs.teacher is None:
        targets = torch.utils.data.default_collate([it["targets"] for it in items])
    else:
        out = inputs.teacher(torch.stack([it["teacher_image"] for it in items]))
        targets = {inputs.teachers[0].key: out}
    import numpy as np

    mask = make_masks(0, 0, np.arange(b), model.student.grid ** 2, config.mask_ratio, config.mask_share)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = model(images, mask, targets)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return b / (sum(times[1:]) / len(times[1:]))


def attention_speed(batch: int, reps: int) -> dict[str, dict[str, float]]:
    """Seconds per forward+backward at 197 tokens with each backend: the attention op alone
    (ViT-S/16 shapes: 6 heads of 64) and the whole ViT-S/16 student at 224 px."""
    from students.attention import attend

    model = create_student("vit_small_patch16_224", img_size=224, patch_size=16)
    x = torch.randn(batch, 3, 224, 224)
    q, k, v = (torch.randn(batch, 6, 197, 64, requires_grad=True) for _ in range(3))
    out = {}
    for backend in ("naive", "sdpa"):
        set_attention(model, backend)
        op, whole = [], []
        for _ in range(10 * reps + 1):
            start = time.perf_counter()
            attend(q, k, v, backend).square().mean().backward()
            op.append(time.perf_counter() - start)
        for _ in range(reps + 1):
            start = time.perf_counter()
            o = model(x)
            (o["cls"].square().mean() + o["patch"].square().mean()).backward()
            whole.append(time.perf_counter() - start)
        out[backend] = {"op": sum(op[1:]) / (10 * reps), "model": sum(whole[1:]) / reps}
    return out


def run_regime(name: str, work: Path, console: Console) -> dict:
    r = dict(REGIMES[name])
    if r["teacher"] == "RANDOM_VITB14":
        r["teacher"] = random_vitb14(work / "vitb14-random")
    subset = make_subset_dir(work, r["k"])
    cache = work / f"targets-{name}"
    if not (cache / "index.json").exists():
        console.print(f"[{name}] caching {r['k']} images x 1 view with {r['teacher']}")
        cache_targets(open_source(SOURCE), __import__("subsets.manifest").manifest.read_manifest(subset),
                      load_teacher(r["teacher"], resolution=r["teacher_resolution"]), cache,
                      config=CacheConfig(views=ViewPolicy(views=1)))
    common = dict(student=r["student"], img_size=r["img_size"], patch_size=r["patch_size"], batch_size=r["batch_size"],
                  steps=r["steps"], log_every=1, checkpoint_every=10_000, workers=2, stem=r.get("stem", "patch"),
                  student_kwargs=r.get("student_kwargs", {}))
    cached_cfg = TrainConfig(out=str(work / f"run-{name}-cached-{time.time_ns()}"), targets=[str(cache)], **common)
    console.print(f"[{name}] student alone, targets in memory")
    limit = student_only_rate(cached_cfg, r["steps"])
    console.print(f"[{name}] trainer, cached targets")
    cached = loop_rate(train(cached_cfg))
    console.print(f"[{name}] trainer, teacher online")
    online_cfg = TrainConfig(out=str(work / f"run-{name}-online-{time.time_ns()}"), teacher=r["teacher"],
                             teacher_resolution=r["teacher_resolution"], subset=str(subset), views=1, **common)
    online = loop_rate(train(online_cfg))
    return {"regime": f"{r['student']} {r.get('stem', 'patch')} stem {r.get('student_kwargs') or ''} @ "
                      f"{r['img_size']}/{r['patch_size']} <- {Path(r['teacher']).name} @ "
                      f"{r['teacher_resolution']}", "batch": r["batch_size"], "limit": limit, "cached": cached,
            "online": online}


OBJECTIVES = ("distill", "mim-jepa", "local-global")


def objective_rates(work: Path, console: Console, steps: int = 200) -> list[dict]:
    """The trainer's images/s for the demo's student and loop settings (batch 16, views read in the training
    process) under each objective: distillation from the demo's cached targets, and the two self-supervised ones
    reading the subset's images."""
    r = REGIMES["demo-scott"]
    subset = make_subset_dir(work, r["k"])
    cache = work / "targets-objectives"
    if not (cache / "index.json").exists():
        cache_targets(open_source(SOURCE), __import__("subsets.manifest").manifest.read_manifest(subset),
                      load_teacher(r["teacher"], resolution=r["teacher_resolution"]), cache,
                      config=CacheConfig(views=ViewPolicy(views=2)))
    demo = {k: v for k, v in _DEMO.items() if k not in ("steps", "log_every", "checkpoint_every")}
    rows = []
    for objective in OBJECTIVES:
        console.print(f"[objectives] {objective}")
        source = {"targets": [str(cache)]} if objective == "distill" else {"subset": str(subset)}
        config = TrainConfig(**demo, **source, objective=objective, steps=steps, log_every=1, checkpoint_every=10_000,
                             out=str(work / f"run-{objective}-{time.time_ns()}"))
        rows.append({"objective": objective, "images_per_s": loop_rate(train(config))})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--regime", choices=[*REGIMES, "objectives", "all"], default="all")
    p.add_argument("--work", type=Path, default=None, help="folder for subsets, caches and runs (default: a temp dir)")
    p.add_argument("--attention-batch", type=int, default=8)
    a = p.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    console = Console(width=140)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    if a.regime == "objectives":
        rows = objective_rates(work, console)
        table = Table(title=f"the demo's student (SCOTT stem, batch 16) by objective, trainer images/s ({device})")
        for col in ("objective", "images/s", "relative to distill"):
            table.add_column(col, justify="left" if col == "objective" else "right")
        for r in rows:
            table.add_row(r["objective"], f"{r['images_per_s']:,.1f}", f"{r['images_per_s'] / rows[0]['images_per_s']:.2f}")
        console.print(table)
        return
    rows = [run_regime(n, work, console) for n in (REGIMES if a.regime == "all" else [a.regime])]
    table = Table(title=f"training throughput, images/s ({device})")
    for col in ("regime", "batch", "student alone (limit)", "cached", "cached / limit (goal >= 0.9)", "online",
                "cached / online"):
        table.add_column(col, justify="left" if col == "regime" else "right")
    for r in rows:
        table.add_row(r["regime"], str(r["batch"]), f"{r['limit']:,.1f}", f"{r['cached']:,.1f}",
                      f"{r['cached'] / r['limit']:.2f}", f"{r['online']:,.1f}", f"{r['cached'] / r['online']:.2f}x")
    console.print(table)
    att = attention_speed(a.attention_batch, reps=3)
    t = Table(title=f"attention at 197 tokens (ViT-S/16, 224 px), batch {a.attention_batch}, forward + backward")
    for col in ("backend", "attention op, ms", "op speed-up (goal >= 1.5x)", "whole student, s / step",
                "student speed-up"):
        t.add_column(col, justify="right")
    for backend, m in att.items():
        t.add_row(backend, f"{m['op'] * 1e3:.2f}", f"{att['naive']['op'] / m['op']:.2f}x", f"{m['model']:.3f}",
                  f"{att['naive']['model'] / m['model']:.2f}x")
    console.print(t)


if __name__ == "__main__":
    main()
