"""`distill demo`: the embedded default, end to end, offline, on a laptop-class CPU in minutes.

The shipped CIFAR-10 demo corpus (10,000 images) is embedded by the offline default teacher
(ImageNet MobileNetV2); kcenter, kmeans and random orderings are selected; one target cache per
method holds the teacher's outputs for the largest k; a small ViT student (SCOTT stem) is distilled at each k
with the same step budget for every method (1,200 / 2,400 / 3,600 steps at k = 100 / 300 / 1,000), two runs
side by side, evaluated by k-NN and a linear probe on the demo test set, compared (table and plot), and the best
student is exported as a timm folder. Rerunning reuses what is done.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from subsets.console import output_console

from .encoders import DEFAULT_ENCODER
from .export import export_run
from .sweep import SweepConfig, run_sweep


@dataclass
class DemoConfig:
    out: Path = Path("demo-out")
    source: str = "builtin:cifar10-demo"
    test_source: str = "builtin:cifar10-demo-test"
    encoder: str = DEFAULT_ENCODER
    methods: tuple[str, ...] = ("kcenter", "kmeans", "random")
    ks: tuple[int, ...] = (100, 300, 1000)
    seed: int = 0
    # The student and its budget, chosen by measurement (benchmarks/recipe.py, docs/demo.md) so the whole demo fits in
    # 10 minutes on 2 CPU cores: a ViT-Ti of 2 blocks with the SCOTT convolutional stem to a 4x4 grid (32 px,
    # patch 8: the teacher's 4x4 map at 128 px), token and feature levels, cosine distance on targets normalised
    # by the corpus statistics, 1,800 steps of 16 views (small batches, many updates: best at this budget), each
    # view mixed with another (mixup: the students of small k otherwise fit their few images and stop there). Loader
    # workers would compete with this small student for the 2 cores: it reads its own views (measured 15% faster).
    # The layer level (w_layer 3) matches the stem's tokens to the teacher's map after 17 of its 19 feature modules
    # (160 channels, 4x4 at 128 px), cached with the targets: each image teaches the early layers too
    # (benchmarks/out/recipe/exploration-14-*, -15-*).
    train: dict = field(default_factory=lambda: {
        "student": "vit_tiny_patch16_224", "img_size": 32, "patch_size": 8, "stem": "scott",
        "student_kwargs": {"depth": 2}, "steps": 1800, "batch_size": 16, "lr": 1e-3, "warmup": 0.1, "w_patch": 0.0,
        "w_layer": 3.0, "distance": "cosine", "normalize_targets": True, "mixup_alpha": 1.0, "checkpoint_every": 10_000,
        "log_every": 50, "workers": 0,
    })
    teacher_layers: tuple[int, ...] = (17,)
    # Steps grow with k (benchmarks/out/recipe/exploration-12-*): at 1,800 the k = 1,000 students had seen each view
    # 14 times and were still learning (+0.04 to +0.06 at 3,600), where k = 100 had fit its images long before (1,200
    # steps give the same). Every method at one k keeps one budget. Two runs side by side with a thread each train
    # 1.44x faster on 2 cores, which pays for the longer runs.
    steps_by_k: dict = field(default_factory=lambda: {100: 1200, 300: 2400, 1000: 3600})
    parallel_runs: int = 2

    def sweep(self) -> SweepConfig:
        return SweepConfig(
            out=str(self.out), source=self.source, encoder=self.encoder, methods=list(self.methods), ks=list(self.ks),
            seeds=[self.seed], teacher=DEFAULT_ENCODER, teacher_resolution=128, teacher_layers=list(self.teacher_layers),
            views=2,
            train=dict(self.train), eval={"test_source": self.test_source, "train_source": self.source},
            steps_by_k={k: steps for k, steps in self.steps_by_k.items() if k in self.ks}, parallel_runs=self.parallel_runs,
        ).check("demo")


def run_demo(config: DemoConfig = DemoConfig(), accelerator=None, console: Console | None = None) -> dict[str, Path]:
    console = console or output_console()
    start = time.perf_counter()
    console.rule(f"[bold]subset-distill demo[/] — {config.source}, teacher {DEFAULT_ENCODER}")
    paths = run_sweep(config.sweep(), accelerator, console)
    if accelerator is not None and not accelerator.is_main_process:
        return paths
    best = max(paths["runs"], key=lambda r: json.loads((r / "eval.json").read_text())["student"]["knn_top1"])
    paths["best_student"] = export_run(best, Path(config.out) / "export", overwrite=True)
    console.print(f"best student by k-NN: {best.name}, exported to {paths['best_student']}")
    console.rule(f"done in {time.perf_counter() - start:.0f} s")
    for name, path in paths.items():
        if name != "runs":
            console.print(f"  {name:22s} {path}")
    console.print(f"  {'runs':22s} {Path(config.out) / 'runs'} ({len(paths['runs'])} runs)")
    return paths
