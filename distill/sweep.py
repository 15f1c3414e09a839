"""Sweeps: selection methods x subset sizes k x seeds, end to end.

One embedding of the corpus, one selection per method (ordered to the largest k), one target
cache per method made at the largest k and read for every smaller k, one training run and one
evaluation per (method, k, seed), then the comparison. Finished runs are skipped, so an
interrupted sweep rerun with the same file resumes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml
from rich.console import Console

from subsets.embed import EmbedConfig, embed_corpus, load_embeddings
from subsets.errors import InputError
from subsets.fileio import read_json
from subsets.make_subset import SelectConfig, make_subset
from subsets.manifest import Manifest, read_manifest
from subsets.report import plot_coverage, print_coverage
from subsets.select import METHODS
from subsets.sources import open_source
from teachers import load_teacher
from teachers.cache import CacheConfig, cache_targets
from teachers.views import ViewPolicy

from .compare import compare_runs
from .config import TrainConfig, read_yaml_mapping
from .encoders import DEFAULT_ENCODER, resolve_encoder
from .evaluate import EvalConfig, evaluate_run
from .train import OPERATIONAL, make_accelerator, train

SET_BY_SWEEP = {"out", "targets", "teacher", "subset", "source", "k", "seed"}


@dataclass
class SweepConfig:
    out: str = "sweep-out"
    source: str = "builtin:cifar10-demo"  # the corpus to select from
    encoder: str = DEFAULT_ENCODER  # embeds the corpus for selection
    encoder_resolution: int | None = None
    methods: list[str] = field(default_factory=lambda: ["kcenter", "kmeans", "random"])
    ks: list[int] = field(default_factory=lambda: [100, 300, 1000])
    seeds: list[int] = field(default_factory=lambda: [0])  # training seeds: error bars come from these
    select_seed: int = 0
    dedup: float | None = None  # drop near-duplicates above this cosine before selecting
    teacher: str = "mobilenetv2_imagenet"
    teacher_resolution: int | None = None
    views: int = 2
    patch_grid: int | None = None
    train: dict = field(default_factory=dict)  # TrainConfig settings shared by every run (steps, student, ...)
    eval: dict = field(default_factory=dict)  # EvalConfig settings

    @classmethod
    def load(cls, path: Path) -> SweepConfig:
        values = read_yaml_mapping(Path(path), "sweep")
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise InputError(f"{path}: unknown setting(s) {', '.join(unknown)}")
        return cls(**values).check(str(path))

    def check(self, origin: str = "sweep") -> SweepConfig:
        """Everything that can be refused is refused here, before any work starts."""
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise InputError(f"{origin}: unknown method(s) {', '.join(map(str, bad)) or '(none given)'} "
                             f"(choose from {', '.join(METHODS)})")
        if not self.ks or any(not isinstance(k, int) or k < 1 for k in self.ks):
            raise InputError(f"{origin}: ks must be a list of positive integers, not {self.ks}")
        if not self.seeds or any(not isinstance(s, int) for s in self.seeds):
            raise InputError(f"{origin}: seeds must be a list of integers, not {self.seeds}")
        clash = sorted(set(self.train) & SET_BY_SWEEP)
        if clash:
            raise InputError(f"{origin}: train.{clash[0]} is set by the sweep itself, per run")
        self.train_config(Path(self.out), self.ks[0], self.seeds[0])  # validates the train settings
        self.eval_config()
        size = len(open_source(self.source).index())
        if max(self.ks) > size:
            raise InputError(f"{origin}: k = {max(self.ks):,} is above the corpus size ({size:,} images in {self.source})")
        return self

    def train_config(self, cache: Path, k: int, seed: int, out: Path | None = None) -> TrainConfig:
        values = {**self.train, "targets": [str(cache)], "k": k, "seed": seed, "out": str(out or Path(self.out))}
        return TrainConfig.from_dict(values, "sweep train settings").validate()

    def eval_config(self) -> EvalConfig:
        unknown = sorted(set(self.eval) - {f.name for f in fields(EvalConfig)})
        if unknown:
            raise InputError(f"sweep eval settings: unknown setting(s) {', '.join(unknown)}")
        return EvalConfig(**self.eval)

    @property
    def k_max(self) -> int:
        return max(self.ks)


def run_name(method: str, k: int, seed: int) -> str:
    return f"{method}-k{k}-s{seed}"


def select_subsets(config: SweepConfig, out: Path, acc, console: Console) -> list[Manifest]:
    """One embedding of the corpus and one nested selection per method, reused when already made."""
    emb_dir = out / "embeddings"
    console.print(f"[bold]embedding[/] {config.source} with {config.encoder} into {emb_dir}")
    embed_corpus(open_source(config.source), resolve_encoder(config.encoder, config.encoder_resolution), emb_dir,
                 EmbedConfig(), acc)
    acc.wait_for_everyone()
    emb = load_embeddings(emb_dir)
    manifests = []
    for method in config.methods:
        sub = out / "subsets" / method
        if (sub / "manifest.json").exists():
            m = read_manifest(sub)
            if m.meta["embeddings"]["hash"] != emb.hash or m.meta["k_max"] != config.k_max:
                raise InputError(f"{sub}: made from other embeddings or k_max; use another out or delete it")
            console.print(f"[bold]selection[/] {method}: reusing {sub}")
        else:
            console.print(f"[bold]selection[/] {config.k_max:,} images by {method} into {sub}")
            if acc.is_main_process:
                make_subset(emb, sub, SelectConfig(method=method, k_max=config.k_max, seed=config.select_seed,
                                                   dedup=config.dedup))
            acc.wait_for_everyone()
            m = read_manifest(sub)
        manifests.append(m)
    return manifests


def run_sweep(config: SweepConfig, accelerator=None, console: Console | None = None) -> dict:
    """The whole sweep; returns where its outputs are."""
    console = console or Console()
    start = time.perf_counter()
    out = Path(config.out)
    acc = accelerator or make_accelerator(config.train_config(out, config.ks[0], config.seeds[0]))
    manifests = select_subsets(config, out, acc, console)
    if acc.is_main_process:
        print_coverage(manifests, console)
        plot_coverage(manifests, out / "coverage.png")

    source = open_source(config.source)
    teacher = load_teacher(config.teacher, resolution=config.teacher_resolution)
    caches = {}
    for m in manifests:
        caches[m.method] = out / "targets" / m.method
        console.print(f"[bold]targets[/] {teacher.info.name} on the first {config.k_max:,} of {m.method} "
                      f"into {caches[m.method]}")
        cache_targets(source, m, teacher, caches[m.method], config.k_max,
                      CacheConfig(views=ViewPolicy(views=config.views), patch_grid=config.patch_grid), acc)
    eval_config = config.eval_config()
    runs = []
    todo = [(m, k, s) for m in config.methods for k in sorted(config.ks) for s in config.seeds]
    for i, (method, k, seed) in enumerate(todo, 1):
        run = out / "runs" / run_name(method, k, seed)
        runs.append(run)
        run_config = config.train_config(caches[method], k, seed, run)
        if _finished(run, run_config, eval_config):
            console.print(f"[bold]run {i}/{len(todo)}[/] {run.name}: done, skipped")
            continue
        console.print(f"[bold]run {i}/{len(todo)}[/] {run.name}: training")
        resume = (run / "config.yaml").exists() and not (run / "run.json").exists()
        train(run_config, acc, resume=resume or None)
        if acc.is_main_process:
            console.print(f"[bold]run {i}/{len(todo)}[/] {run.name}: evaluating")
            evaluate_run(run, eval_config)
        acc.wait_for_everyone()
    result = {"embeddings": out / "embeddings", "subsets": out / "subsets", "targets": out / "targets",
              "runs": runs, "coverage_plot": out / "coverage.png"}
    if acc.is_main_process:
        result |= {f"comparison_{k}": v for k, v in compare_runs(runs, out / "comparison", console).items()}
        console.print(f"sweep finished in {time.perf_counter() - start:.0f} s")
    return result


def _finished(run: Path, train_config: TrainConfig, eval_config: EvalConfig) -> bool:
    """Trained with these settings and evaluated on the same evaluation set as asked."""
    if not (run / "run.json").exists() or not (run / "eval.json").exists():
        return False
    done = read_json(run / "run.json", "run record")["config"]
    same = {k: v for k, v in done.items() if k not in OPERATIONAL} == \
        {k: v for k, v in train_config.to_dict().items() if k not in OPERATIONAL}
    return same and read_json(run / "eval.json", "evaluation")["eval_set"] == eval_config.eval_set()


def example_sweep_file() -> str:
    """A sweep file with every setting at its default, for `distill sweep --example`."""
    return yaml.safe_dump(asdict(SweepConfig(train={"steps": 300, "batch_size": 64}, eval={})), sort_keys=False)
