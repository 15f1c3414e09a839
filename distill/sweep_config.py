"""A sweep's settings and its plan: the typed sweep file, the runs it plans with their folders and settings, and
whether a run is already done. Apart from running the sweep (distill/sweep.py), so `distill sweep --example` and
`--plan` check and plan a sweep without loading torch and the pipeline."""

from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

from subsets.errors import InputError
from subsets.fileio import read_json
from subsets.imported import NAME as IMPORTED_NAME
from subsets.imported import RESERVED, read_ordering
from subsets.manifest import read_manifest
from subsets.select import LABEL_METHODS, METHODS
from subsets.sources import open_source

from .config import OPERATIONAL, SELF_SUPERVISED, TrainConfig, read_yaml_mapping
from .config_docs import commented_yaml
from .encoders import DEFAULT_ENCODER
from .eval_config import DEMO_TEST, EvalConfig
from .run_dir import contents_of, run_record, settings_that_differ
from .typed_settings import checked_settings, settle_fields

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
    # evaluation settings (EvalConfig): train_source (default: the sweep's source), test_source (needed but for the
    # demo's corpus), train_samples, test_samples, knn_k, ...
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
        return cls(**checked_settings(cls, values, str(path))).check(str(path))

    def check(self, origin: str = "sweep") -> SweepConfig:
        """Everything that can be refused is refused here, before any work starts."""
        settle_fields(self, origin)  # a sweep made in a notebook too
        outside = sorted(set(self.recipe_methods or []) - set(self.methods))
        if outside:
            raise InputError(f"{origin}: recipe_methods {', '.join(outside)} not among the sweep's methods")
        if not self.ks or any(k != FULL and (not isinstance(k, int) or isinstance(k, bool) or k < 1) for k in self.ks):
            raise InputError(f"{origin}: ks must be a list of positive integers or \"full\", not {self.ks}")
        if not self.seeds or any(not isinstance(s, int) for s in self.seeds) or len(set(self.seeds)) < len(self.seeds):
            raise InputError(f"{origin}: seeds must be a list of distinct integers, not {self.seeds}")
        for name in ("ks", "methods"):  # a repeat would train the same runs twice, into one folder
            repeated = _first_repeat(getattr(self, name))
            if repeated is not None:
                raise InputError(f"{origin}: {name} lists {repeated!r} twice")
        self._check_imported(origin)
        if self.baseline != "random" and self.baseline not in self.methods:  # compare_runs refuses it, after the runs
            raise InputError(f"{origin}: baseline {self.baseline} is not among the sweep's methods")
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
        for name in ("views", "encoder_resolution", "teacher_resolution", "patch_grid"):  # refused by the stage, later
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InputError(f"{origin}: {name} must be a positive integer, not {getattr(self, name)!r}")
        if self.dedup is not None and not 0 < self.dedup < 1:
            raise InputError(f"{origin}: dedup must be a cosine threshold between 0 and 1, not {self.dedup!r}")
        self._check_recipes(origin)
        self._check_steps_by_k(self.steps_by_k, origin, "steps_by_k")
        for recipe, settings in self.recipe_list():  # validates each recipe's train settings
            self.train_config(Path(self.out), 1, self.seeds[0], recipe=recipe, settings=settings, origin=origin)
        label_methods = [m for m in self.methods if m in LABEL_METHODS]
        unlabelled = any(label is None for _, label in self._corpus_index)
        if label_methods and unlabelled:
            raise InputError(f"{origin}: method {label_methods[0]} reads the corpus's labels, and {self.source} has "
                             "images without one")
        size = self.corpus_size
        if self.small_ks and max(self.small_ks) > size:
            raise InputError(f"{origin}: k = {max(self.small_ks):,} is above the corpus size ({size:,} images in "
                             f"{self.source}); \"full\" trains on all of it")
        if "train_source" not in self.eval and unlabelled:
            raise InputError(f"{origin}: eval.train_source: {self.source} has images without labels; give labelled "
                             "images for the k-NN memory and the probe")
        self.eval_config(origin).check(f"{origin}: eval settings")
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
                     settings: dict | None = None, subset: Path | None = None, origin: str = "sweep") -> TrainConfig:
        """A run's settings: distillation reads the selection's target cache; a self-supervised objective
        (`objective` in a recipe) reads the selection's images (`subset`, default the cache's folder name under
        subsets/) without a teacher."""
        values = {**(self.train if settings is None else settings), "k": k, "seed": seed,
                  "out": str(out or Path(self.out)), "recipe": recipe}
        if values.get("objective", "distill") in SELF_SUPERVISED:
            values["subset"] = str(subset or Path(self.out) / "subsets" / Path(cache).name)
        else:
            values["targets"] = [str(cache)]
        where = f"{origin}: train settings{f' (recipe {recipe})' if recipe else ''}"
        return TrainConfig.from_dict(values, where).validate(where)

    def eval_config(self, origin: str = "sweep") -> EvalConfig:
        """The runs' evaluation, as `distill eval` takes it: the k-NN memory and probe from the sweep's own corpus
        unless `eval.train_source` says otherwise, and a test set that must be named unless the corpus's is known
        (the demo's). Before 2026-12-04 both defaulted to the demo's CIFAR-10 splits, whatever the corpus."""
        values = checked_settings(EvalConfig, self.eval, f"{origin}: eval settings")
        values.setdefault("train_source", self.source)
        if "test_source" not in values:
            if self.source not in DEMO_TEST:
                raise InputError(f"{origin}: eval.test_source: give the labelled held-out images to evaluate on (the "
                                 f"test split of {self.source} is not known)")
            values["test_source"] = DEMO_TEST[self.source]
        return EvalConfig(**values)


def _first_repeat(items: list):
    seen = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


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


def imported_file(pattern: str, seed: int) -> Path:
    """The key file of an imported ordering for one seed (other braces in the path, such as a shard range, stay)."""
    return Path(pattern.replace("{seed}", str(seed)))


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
