"""Sweeps: recipes x selection methods x subset sizes k x seeds, end to end.

One embedding of the corpus; for each method and seed one selection (a seed draws another subset: random
another permutation, kcenter another start, the k-means methods another initialisation) ordered to the
largest k, and one target cache made at the largest k and read for every smaller k. `full` as a k trains on
the whole corpus (one cache, whatever the method). Each recipe (named train settings over the shared ones)
trains one run per (method, k, seed), then every run is evaluated and the comparison made. Finished runs
are skipped, so an interrupted sweep rerun with the same file resumes.
"""

from __future__ import annotations

import functools
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import NamedTuple

from rich.console import Console

from subsets.comm import Comm
from subsets.console import output_console
from subsets.embed import EmbedConfig, embed_corpus
from subsets.errors import InputError
from subsets.fileio import file_sha256, read_json
from subsets.imported import NAME as IMPORTED_NAME
from subsets.imported import RESERVED, import_ordering, read_ordering
from subsets.lock import folder_lock
from subsets.make_subset import SelectConfig, make_subset, make_subset_across_processes, runs_mapped
from subsets.manifest import Manifest, read_manifest
from subsets.report import plot_coverage, print_coverage
from subsets.select import LABEL_METHODS, METHODS
from subsets.shards import EmbeddingShards
from subsets.sources import open_source
from teachers import load_teacher
from teachers.cache import CacheConfig, bytes_per_image_view, cache_targets
from teachers.views import ViewPolicy

from .compare import compare_runs
from .config import SELF_SUPERVISED, TrainConfig, read_yaml_mapping
from .config_docs import commented_yaml
from .encoders import DEFAULT_ENCODER, resolve_encoder
from .evaluate import EvalConfig, evaluate_run
from .run_dir import contents_of, holds_run, is_complete, run_record, settings_that_differ
from .side_by_side import PendingRun, train_side_by_side
from .train import OPERATIONAL, make_accelerator, train

SET_BY_SWEEP = {"out", "targets", "teacher", "subset", "source", "k", "seed", "recipe"}
FULL = "full"
RECIPE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class SweepConfig:
    out: str = "sweep-out"
    source: str = "builtin:cifar10-demo"  # the corpus to select from
    encoder: str = DEFAULT_ENCODER  # embeds the corpus for selection
    encoder_resolution: int | None = None
    methods: list[str] = field(default_factory=lambda: ["kcenter", "kmeans", "random"])  # ours, or a name of `imported`
    ks: list = field(default_factory=lambda: [100, 300, 1000])  # subset sizes; "full" is the whole corpus
    seeds: list[int] = field(default_factory=lambda: [0])  # each seed draws its own subset and trains its own student
    dedup: float | None = None  # drop near-duplicates above this cosine before selecting
    # orderings made elsewhere, by name: a file of image keys per seed (`{seed}` in its path), as `distill subset
    # import` reads, e.g. {mine: orders/mine-s{seed}.txt}; list the name in `methods` to train on it
    imported: dict = field(default_factory=dict)
    # the k-means methods and dedup over the mapped shards, across the sweep's processes (`distill subset select
    # --mapped`), instead of faiss's in-memory versions in the main process
    mapped: bool = False
    resample_steps: int = 10  # kmeans-resampled's steps per level (`distill subset select --resample-steps`)
    teacher: str = "mobilenetv2_imagenet"
    teacher_resolution: int | None = None
    teacher_layers: list[int] = field(default_factory=list)  # intermediate maps cached for the layer level (w_layer)
    views: int = 2
    patch_grid: int | None = None
    train: dict = field(default_factory=dict)  # settings of every run (steps, student, ...: `distill train --example`)
    # named train settings over `train`, e.g. [{name: patch-stem, train: {stem: patch}}]; none: one recipe, `train`
    recipes: list[dict] = field(default_factory=list)
    recipe_methods: list[str] | None = None  # the methods every recipe after the first runs on (default: all)
    baseline: str = "random"  # the method each other one is compared with, paired by seed
    # evaluation settings (EvalConfig): train_source, test_source, train_samples, test_samples, knn_k, ...
    eval: dict = field(default_factory=dict)
    # Runs trained side by side in this many worker processes, each with its share of the threads (one CPU process
    # only: under accelerate launch or on a GPU the processes share each run instead). Small students use threads
    # poorly: 2 side by side on 2 cores train 1.44x faster (distill/side_by_side.py).
    parallel_runs: int = 1
    # Steps at some subset sizes in place of `train.steps`, e.g. {1000: 3600}: a large subset needs more steps to be
    # seen enough, while a small one is fit long before (and more passes only fit it further). Every method at one k
    # still trains for the same steps, so the comparison of methods at each k stays at one budget. A recipe's own
    # `train.steps` or `steps_by_k` come first (the more specific setting wins), so budgets can be recipes.
    steps_by_k: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> SweepConfig:
        values = read_yaml_mapping(Path(path), "sweep")
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise InputError(f"{path}: unknown setting(s) {', '.join(unknown)}")
        return cls(**values).check(str(path))

    def check(self, origin: str = "sweep") -> SweepConfig:
        """Everything that can be refused is refused here, before any work starts."""
        outside = sorted(set(self.recipe_methods or []) - set(self.methods))
        if outside:
            raise InputError(f"{origin}: recipe_methods {', '.join(outside)} not among the sweep's methods")
        if not self.ks or any(k != FULL and (not isinstance(k, int) or isinstance(k, bool) or k < 1) for k in self.ks):
            raise InputError(f"{origin}: ks must be a list of positive integers or \"full\", not {self.ks}")
        if not self.seeds or any(not isinstance(s, int) for s in self.seeds) or len(set(self.seeds)) < len(self.seeds):
            raise InputError(f"{origin}: seeds must be a list of distinct integers, not {self.seeds}")
        self._check_imported(origin)
        bad = [m for m in self.methods + (self.recipe_methods or []) if m not in METHODS and m not in self.imported]
        if bad or not self.methods:
            raise InputError(f"{origin}: unknown method(s) {', '.join(map(str, bad)) or '(none given)'} "
                             f"(choose from {', '.join(METHODS)}, or name an ordering under imported)")
        if not isinstance(self.teacher_layers, list) or any(not isinstance(L, int) or isinstance(L, bool)
                                                            for L in self.teacher_layers):
            raise InputError(f"{origin}: teacher_layers must be a list of layer numbers, e.g. [17], not "
                             f"{self.teacher_layers!r}")
        if not isinstance(self.mapped, bool):
            raise InputError(f"{origin}: mapped must be true or false, not {self.mapped!r}")
        if not isinstance(self.resample_steps, int) or isinstance(self.resample_steps, bool) or self.resample_steps < 0:
            raise InputError(f"{origin}: resample_steps must be 0 or a positive integer, not {self.resample_steps!r}")
        if not isinstance(self.parallel_runs, int) or isinstance(self.parallel_runs, bool) or self.parallel_runs < 1:
            raise InputError(f"{origin}: parallel_runs must be a positive integer, not {self.parallel_runs!r}")
        self._check_recipes(origin)
        self._check_steps_by_k(self.steps_by_k, origin, "steps_by_k")
        for recipe, settings in self.recipe_list():  # validates each recipe's train settings
            self.train_config(Path(self.out), 1, self.seeds[0], recipe=recipe, settings=settings)
        self.eval_config()
        label_methods = [m for m in self.methods if m in LABEL_METHODS]
        if label_methods and any(label is None for _, label in self._corpus_index):
            raise InputError(f"{origin}: method {label_methods[0]} reads the corpus's labels, and {self.source} has "
                             "images without one")
        size = self.corpus_size
        if self.small_ks and max(self.small_ks) > size:
            raise InputError(f"{origin}: k = {max(self.small_ks):,} is above the corpus size ({size:,} images in "
                             f"{self.source}); \"full\" trains on all of it")
        return self

    def _check_imported(self, origin: str) -> None:
        if not isinstance(self.imported, dict) or any(not isinstance(p, str) for p in self.imported.values()):
            raise InputError(f"{origin}: imported must map names to key files, e.g. {{mine: orders/mine-s{{seed}}.txt}}")
        for name, pattern in self.imported.items():
            if not isinstance(name, str) or not IMPORTED_NAME.match(name) or name.lower() in RESERVED:
                raise InputError(f"{origin}: imported ordering {name!r}: give it a name of its own (letters, digits, "
                                 f"_ . -), not one of {', '.join(sorted(RESERVED))}")
            if name not in self.methods:
                continue
            for seed in self.seeds:
                path = imported_file(pattern, seed)
                if not path.is_file():
                    raise InputError(f"{origin}: imported ordering {name} for seed {seed}: {path} is not a file")
                listed = len(read_ordering(path))  # a blank or repeated key: one line here, before any work
                if self.small_ks and listed < self.k_max:
                    raise InputError(f"{origin}: imported ordering {name}: {path} lists {listed:,} keys, "
                                     f"fewer than the sweep's largest k ({self.k_max:,})")

    def _check_recipes(self, origin: str) -> None:
        if not isinstance(self.recipes, list) or any(not isinstance(r, dict) for r in self.recipes):
            raise InputError(f"{origin}: recipes must be a list of {{name: ..., train: {{...}}}}")
        seen: dict[str, str] = {}
        for r in self.recipes:
            extra = sorted(set(r) - {"name", "train", "steps_by_k"})
            name = r.get("name")
            if extra or not isinstance(name, str) or not RECIPE_NAME.match(name) or not isinstance(r.get("train", {}), dict):
                raise InputError(f"{origin}: recipe {r}: needs a name (letters, digits, _ . -) and a train mapping"
                                 + (f", not {', '.join(extra)}" if extra else ""))
            self._check_steps_by_k(r.get("steps_by_k", {}), origin, f"recipe {name}: steps_by_k")
            if name.lower() in seen:  # run folders of the two would collide (on case-insensitive disks too)
                raise InputError(f"{origin}: recipe names {seen[name.lower()]!r} and {name!r} collide; name each "
                                 "recipe differently")
            seen[name.lower()] = name
            clash = sorted(set(r.get("train", {})) & SET_BY_SWEEP)
            if clash:
                raise InputError(f"{origin}: recipe {name}: train.{clash[0]} is set by the sweep itself, per run")
        clash = sorted(set(self.train) & SET_BY_SWEEP)
        if clash:
            raise InputError(f"{origin}: train.{clash[0]} is set by the sweep itself, per run")

    def _check_steps_by_k(self, steps_by_k, origin: str, where: str) -> None:
        if not isinstance(steps_by_k, dict):
            raise InputError(f"{origin}: {where} must map subset sizes to steps, e.g. {{1000: 3600}}")
        for k, steps in steps_by_k.items():
            if k not in self.ks:
                raise InputError(f"{origin}: {where} names k = {k!r}, which is not among the sweep's ks {self.ks}")
            if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
                raise InputError(f"{origin}: {where}[{k!r}] must be a positive integer, not {steps!r}")

    @functools.cached_property
    def _corpus_index(self) -> list:  # indexing a tar corpus reads it: once per config
        return open_source(self.source).index()

    @property
    def corpus_size(self) -> int:
        return len(self._corpus_index)

    @property
    def small_ks(self) -> list[int]:
        return sorted(k for k in self.ks if k != FULL)

    @property
    def has_full(self) -> bool:
        return FULL in self.ks

    @property
    def k_max(self) -> int:
        return max(self.small_ks, default=0)

    def recipe_list(self) -> list[tuple[str | None, dict]]:
        """(name, train settings) per recipe; no recipes: one unnamed recipe, the shared `train`."""
        if not self.recipes:
            return [(None, dict(self.train))]
        return [(r["name"], {**self.train, **r.get("train", {})}) for r in self.recipes]

    def recipe_steps_by_k(self, i: int) -> dict:
        """The steps by k of recipe `i`, most specific first: its own `steps_by_k`, then its own `train.steps` at every
        k, then the sweep's `steps_by_k`; a k none of them names trains for `train.steps`."""
        if not self.recipes:
            return dict(self.steps_by_k)
        recipe = self.recipes[i]
        shared = {} if "steps" in recipe.get("train", {}) else self.steps_by_k
        return {**shared, **recipe.get("steps_by_k", {})}

    def train_config(self, cache: Path, k: int, seed: int, out: Path | None = None, recipe: str | None = None,
                     settings: dict | None = None, subset: Path | None = None) -> TrainConfig:
        """A run's settings: distillation reads the selection's target cache; a self-supervised objective
        (`objective` in a recipe) reads the selection's images (`subset`, default the cache's folder name under
        subsets/) without a teacher."""
        values = {**(self.train if settings is None else settings), "k": k, "seed": seed,
                  "out": str(out or Path(self.out)), "recipe": recipe}
        if values.get("objective", "distill") in SELF_SUPERVISED:
            values["subset"] = str(subset or Path(self.out) / "subsets" / Path(cache).name)
        else:
            values["targets"] = [str(cache)]
        return TrainConfig.from_dict(values, f"sweep train settings{f' (recipe {recipe})' if recipe else ''}").validate()

    def eval_config(self) -> EvalConfig:
        unknown = sorted(set(self.eval) - {f.name for f in fields(EvalConfig)})
        if unknown:
            raise InputError(f"sweep eval settings: unknown setting(s) {', '.join(unknown)}")
        return EvalConfig(**self.eval)


def run_name(method: str, k: int | str, seed: int) -> str:
    return f"{FULL}-s{seed}" if k == FULL else f"{method}-k{k}-s{seed}"


def selection_name(method: str, seed: int) -> str:
    return f"{method}-s{seed}"


def planned_runs(config: SweepConfig) -> list[tuple[str | None, dict, str, int | str, int]]:
    """(recipe, its train settings at that k, method, k, seed) of every run, in the order they are trained: the first
    recipe over every method, then each other recipe over `recipe_methods`, seed by seed; `full` once per recipe and
    seed."""
    plan = []
    for i, (recipe, shared) in enumerate(config.recipe_list()):
        steps_by_k = config.recipe_steps_by_k(i)
        at = {k: {**shared, "steps": steps_by_k[k]} if k in steps_by_k else shared for k in config.ks}
        methods = config.methods if i == 0 or config.recipe_methods is None else config.recipe_methods
        for s in config.seeds:  # seed by seed, so a stopped sweep has whole seeds to compare
            plan += [(recipe, at[k], m, k, s) for m in methods for k in config.small_ks]
            plan += [(recipe, at[FULL], FULL, FULL, s)] if config.has_full else []
    return plan


class RunPlan(NamedTuple):
    recipe: str | None
    method: str  # FULL for the full corpus
    k: int | str
    seed: int
    label: str
    folder: Path
    config: TrainConfig


def run_plan(config: SweepConfig, out: Path, full_size: int) -> list[RunPlan]:
    """Every planned run with its folder and train settings; the full corpus's runs learn from `full_size` images."""
    todo = planned_runs(config)
    plan = []
    for i, (recipe, settings, method, k, seed) in enumerate(todo, 1):
        name = FULL if k == FULL else selection_name(method, seed)
        run = out / "runs" / (recipe or "") / run_name(method, k, seed)
        train_config = config.train_config(out / "targets" / name, full_size if k == FULL else k, seed, run, recipe,
                                           settings, out / "subsets" / name)
        label = f"run {i}/{len(todo)} {f'{recipe}/{run.name}' if recipe else run.name}"
        plan.append(RunPlan(recipe, method, k, seed, label, run, train_config))
    return plan


def full_corpus_size(config: SweepConfig, out: Path) -> int:
    """The full corpus's images: its ordering's length where the sweep made it (dedup may have dropped some)."""
    ordering = out / "subsets" / FULL
    return len(read_manifest(ordering).order) if (ordering / "manifest.json").exists() else config.corpus_size


def refuse_runs_of_other_settings(config: SweepConfig, out: Path) -> None:
    """A run folder of the plan holding a finished run of other settings (an edited sweep file rerun into the same
    out) is refused before any work starts, not when the sweep reaches it."""
    full_size = full_corpus_size(config, out) if config.has_full else 0
    for p in run_plan(config, out, full_size):
        differ = settings_differing(p.folder, p.config)
        if differ:
            raise InputError(f"{p.folder}: holds a finished run of other settings (differs in {', '.join(differ)}); move "
                             "it away or choose another out")


def selections_needed(config: SweepConfig) -> list[tuple[str, int]]:
    """(method, seed) of every selection the planned runs read (the full corpus needs none of these)."""
    needed = {(m, s) for _, _, m, k, s in planned_runs(config) if k != FULL}
    return [(m, s) for m in config.methods for s in config.seeds if (m, s) in needed]


def select_subsets(config: SweepConfig, out: Path, acc, console: Console) -> dict[tuple[str, int], Manifest]:
    """One embedding of the corpus and one nested selection per (method, seed), reused when already made; with
    `full`, an ordering of the whole corpus too."""
    emb_dir = out / "embeddings"
    console.print(f"[bold]embedding[/] {config.source} with {config.encoder} into {emb_dir}")
    embed_corpus(open_source(config.source), resolve_encoder(config.encoder, config.encoder_resolution), emb_dir,
                 EmbedConfig(), acc)
    acc.wait_for_everyone()
    shards = EmbeddingShards(emb_dir)  # the vectors stay in their maps: each selection reads what it needs
    manifests = import_orderings(config, shards, out, acc, console)
    for name, select in selection_configs(config).items():
        sub = out / "subsets" / name
        if (sub / "manifest.json").exists():
            m = read_manifest(sub)
            if m.meta["embeddings"]["hash"] != shards.meta["hash"] or not _same_selection(m, select):
                raise InputError(f"{sub}: made from other embeddings or settings; use another out or delete it")
            console.print(f"[bold]selection[/] {name}: reusing {sub}")
        else:
            count = "all the" if select.k_max is None else f"{select.k_max:,}"
            console.print(f"[bold]selection[/] {count} images by {select.method} (seed {select.seed}) into {sub}")
            make_selection(shards, sub, select, acc)
            m = read_manifest(sub)
        manifests[name] = m
    return manifests


def selection_configs(config: SweepConfig) -> dict[str, SelectConfig]:
    """The selection settings of every subset folder the sweep's runs read, by folder name."""
    wanted = {selection_name(m, s): SelectConfig(method=m, k_max=config.k_max, seed=s, dedup=config.dedup,
                                                 mapped=config.mapped, **_method_settings(config, m))
              for m, s in selections_needed(config) if m not in config.imported}
    if config.has_full:  # the whole corpus: its order does not matter, only that every image is in it
        wanted[FULL] = SelectConfig(method="random", k_max=None, seed=0, dedup=config.dedup, mapped=config.mapped)
    return wanted


def imported_file(pattern: str, seed: int) -> Path:
    """The key file of an imported ordering for one seed (other braces in the path, such as a shard range, stay)."""
    return Path(pattern.replace("{seed}", str(seed)))


def import_orderings(config: SweepConfig, shards: EmbeddingShards, out: Path, acc, console: Console) -> dict:
    """The subset folder of each imported ordering the runs read, made from its key file (the main process) or
    reused when made from the same file's content."""
    manifests = {}
    for m, s in selections_needed(config):
        if m not in config.imported:
            continue
        keys, sub = imported_file(config.imported[m], s), out / "subsets" / selection_name(m, s)
        if (sub / "manifest.json").exists():
            made = read_manifest(sub)
            if made.meta["embeddings"]["hash"] != shards.meta["hash"] or made.meta["params"].get("sha256") != \
                    file_sha256(keys) or made.meta["seed"] != s:
                raise InputError(f"{sub}: made from other embeddings or another key file than {keys}; use another out "
                                 "or delete it")
            console.print(f"[bold]selection[/] {m} (seed {s}): reusing {sub}")
        else:
            console.print(f"[bold]selection[/] {m} (seed {s}) imported from {keys} into {sub}")
            if acc.is_main_process:
                import_ordering(shards.path, keys, sub, m, seed=s)
            acc.wait_for_everyone()
        manifests[selection_name(m, s)] = read_manifest(sub)
    return manifests


def _method_settings(config: SweepConfig, method: str) -> dict:
    """Settings that only one method reads, given to that method alone: the others' subsets keep the defaults, so
    changing one does not make the sweep refuse their folders as made with other settings."""
    return {"resample_steps": config.resample_steps} if method == "kmeans-resampled" else {}


def make_selection(shards: EmbeddingShards, sub: Path, select: SelectConfig, acc) -> None:
    """One selection: across the sweep's processes where its job maps the shards (k-center, random, --mapped) and
    every process has a shard, so a long ordering does not leave the others waiting past the process group's
    timeout; else in the main process alone."""
    if acc.num_processes > 1 and runs_mapped(select) and acc.num_processes <= len(shards):
        make_subset_across_processes(shards, sub, select, Comm())
    elif acc.is_main_process:
        make_subset(shards.path, sub, select)
    acc.wait_for_everyone()


def _same_selection(m: Manifest, select: SelectConfig) -> bool:
    """Made with these settings; a whole-corpus ordering (k_max None) also when its k_max was written out. A setting
    the manifest predates (`device`, `mapped`) counts as its default."""
    params = asdict(SelectConfig()) | dict(m.meta["params"])
    pool = m.meta["corpus_size"] - (m.meta.get("dedup") or {}).get("removed", 0)
    if select.k_max is None and len(m.order) == pool:
        params["k_max"] = None
    return params == asdict(select)


def check_disk(config: SweepConfig, teacher, out: Path) -> None:
    """Refuse, before any work, a sweep whose target caches will not fit on the disk of `out`."""
    per_image = bytes_per_image_view(teacher, config.patch_grid) * config.views
    caches = {out / "targets" / selection_name(m, s): config.k_max for m, s in selections_needed(config)}
    if config.has_full:
        caches[out / "targets" / FULL] = config.corpus_size
    need = sum(k * per_image for path, k in caches.items() if not (path / "index.json").exists())
    probe = out
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need > free:
        full = f" (the full corpus alone: {config.corpus_size * per_image / 2**30:,.1f} GiB)" if config.has_full else ""
        raise InputError(f"{out}: the sweep's target caches need {need / 2**30:,.1f} GiB{full}, the disk has "
                         f"{free / 2**30:,.1f} GiB free; free space, use fewer views or --patch-grid, or drop ks")


def run_sweep(config: SweepConfig, accelerator=None, console: Console | None = None) -> dict:
    """The whole sweep; returns where its outputs are."""
    console = console or output_console()
    start = time.perf_counter()
    out = Path(config.out)
    teacher = load_teacher(config.teacher, resolution=config.teacher_resolution, layers=config.teacher_layers)
    check_disk(config, teacher, out)
    first = config.small_ks[0] if config.small_ks else 1
    acc = accelerator or make_accelerator(config.train_config(out, first, config.seeds[0]))
    with folder_lock(out, acc):  # a second sweep into the same out is refused while this one runs
        refuse_runs_of_other_settings(config, out)
        return _sweep(config, out, teacher, acc, console, start)


def _sweep(config: SweepConfig, out: Path, teacher, acc, console: Console, start: float) -> dict:
    manifests = select_subsets(config, out, acc, console)
    shown = [m for name, m in manifests.items() if name != FULL and m.meta["seed"] == config.seeds[0]]
    if acc.is_main_process and shown:  # a sweep of the full corpus alone has no subset to report
        print_coverage(shown, console)
        plot_coverage(shown, out / "coverage.png")

    source = open_source(config.source)
    caches = {}
    distills = any(settings.get("objective", "distill") not in SELF_SUPERVISED for _, settings in config.recipe_list())
    for name, m in manifests.items():
        caches[name] = out / "targets" / name
        if not distills:  # self-supervised recipes read the images, not a teacher's targets
            continue
        k = len(m.order) if name == FULL else config.k_max
        console.print(f"[bold]targets[/] {teacher.info.name} on the first {k:,} of {name} into {caches[name]}")
        cache_targets(source, m, teacher, caches[name], k,
                      CacheConfig(views=ViewPolicy(views=config.views), patch_grid=config.patch_grid), acc)
    eval_config = config.eval_config()
    runs, pending = [], []
    for p in run_plan(config, out, len(manifests[FULL].order) if config.has_full else 0):
        runs.append(p.folder)
        if is_finished(p.folder, p.config, eval_config):
            console.print(f"[bold]{p.label}[/]: done, skipped")
            continue
        pending.append(PendingRun(p.label, p.config, holds_run(p.folder) and not is_complete(p.folder)))
    wanted = config.parallel_runs > 1 and len(pending) > 1
    side_by_side = wanted and acc.num_processes == 1 and acc.device.type == "cpu"
    if wanted and not side_by_side:
        console.print(f"parallel_runs {config.parallel_runs}: runs are trained one at a time here (side by side is "
                      "for training on the CPU in one process)")
    def evaluate(p: PendingRun) -> None:  # as soon as it is trained: a study under way compares what it has
        console.print(f"[bold]{p.label}[/]: evaluating")
        evaluate_run(Path(p.config.out), eval_config)

    if side_by_side:
        train_side_by_side(pending, config.parallel_runs, console, on_trained=evaluate)
    else:
        for p in pending:
            console.print(f"[bold]{p.label}[/]: training")
            train(p.config, acc, resume=p.resume or None)
            if acc.is_main_process:
                evaluate(p)
            acc.wait_for_everyone()
    result = {"embeddings": out / "embeddings", "subsets": out / "subsets", "targets": out / "targets",
              "runs": runs, "coverage_plot": out / "coverage.png"}
    if acc.is_main_process:
        comparison = compare_runs(runs, out / "comparison", console, baseline=config.baseline)
        result |= {f"comparison_{k}": v for k, v in comparison.items()}
        console.print(f"sweep finished in {time.perf_counter() - start:.0f} s")
    return result


def settings_differing(run: Path, train_config: TrainConfig) -> list[str] | None:
    """The settings (those that change what a run computes) in which the finished run in `run` differs from
    `train_config`; None where no finished run is there."""
    record = run_record(run)
    if not (record and record.get("complete")):
        return None
    try:  # settings added since the run was made count at their defaults (which keep the old behaviour)
        done = TrainConfig.from_dict(record["config"], str(run)).to_dict()
    except InputError as e:  # a setting that no longer exists: made by another version
        return [f"settings of another version ({str(e).rsplit(': ', 1)[-1]})"]
    theirs = record.get("identity", {}).get("contents")  # runs made before it compare their places by path
    wanted = train_config.to_dict()
    return [k for k in settings_that_differ(done, wanted, theirs, theirs and contents_of(wanted)) if k not in OPERATIONAL]


def trained_as(run: Path, train_config: TrainConfig) -> bool:
    """The run finished training with these settings."""
    return settings_differing(run, train_config) == []


def evaluated_as(run: Path, eval_config: EvalConfig) -> bool:
    return (run / "eval.json").exists() and \
        read_json(run / "eval.json", "evaluation")["eval_set"] == eval_config.eval_set()


def is_finished(run: Path, train_config: TrainConfig, eval_config: EvalConfig) -> bool:
    """Trained with these settings and evaluated on the same evaluation set as asked."""
    return trained_as(run, train_config) and evaluated_as(run, eval_config)


def example_sweep_file() -> str:
    """A sweep file with every setting at its default, for `distill sweep --example`."""
    example = SweepConfig(train={"steps": 300, "batch_size": 64}, seeds=[0, 1, 2],
                          methods=[m for m in METHODS if m not in LABEL_METHODS],
                          ks=[100, 300, 1000, FULL],
                          recipes=[{"name": "base", "train": {}}, {"name": "patch-stem", "train": {"stem": "patch"}},
                                   {"name": "token-only", "train": {"w_feature": 0.0}}],
                          recipe_methods=["random"], eval={})
    return commented_yaml(asdict(example), SweepConfig,
                          "A sweep: recipes x methods x ks x seeds, end to end. Run it with `distill sweep --config FILE`\n"
                          "(`--plan` first says what it will train and for how long). Each setting below is at its\n"
                          "default but for methods, ks, seeds, train and recipes, which show what they take.")
