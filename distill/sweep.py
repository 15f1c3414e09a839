"""Sweeps: recipes x selection methods x subset sizes k x seeds, end to end.

One embedding of the corpus; for each method and seed one selection (a seed draws another subset: random
another permutation, kcenter another start, the k-means methods another initialisation) ordered to the
largest k, and one target cache made at the largest k and read for every smaller k. `full` as a k trains on
the whole corpus (one cache, whatever the method). Each recipe (named train settings over the shared ones)
trains one run per (method, k, seed), then every run is evaluated and the comparison made. Finished runs
are skipped, so an interrupted sweep rerun with the same file resumes.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from subsets.comm import Comm
from subsets.console import output_console
from subsets.embed import EmbedConfig, embed_corpus
from subsets.errors import InputError
from subsets.fileio import file_sha256
from subsets.imported import import_ordering
from subsets.lock import folder_lock
from subsets.make_subset import SelectConfig, make_subset, make_subset_across_processes, runs_mapped
from subsets.manifest import Manifest, read_manifest
from subsets.report import plot_coverage, print_coverage, shared_images_table
from subsets.shards import EmbeddingShards
from subsets.sources import open_source
from teachers import load_teacher
from teachers.cache import CacheConfig, bytes_per_image_view, cache_targets
from teachers.views import ViewPolicy

from .compare import compare_runs
from .config import SELF_SUPERVISED
from .encoders import resolve_encoder
from .evaluate import evaluate_run
from .run_dir import holds_run, is_complete
from .side_by_side import PendingRun, train_side_by_side
from .sweep_config import (
    FULL,
    SweepConfig,
    full_corpus_size,
    imported_file,
    is_finished,
    planned_runs,
    run_plan,
    selection_name,
    settings_differing,
)
from .train import make_accelerator, train


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


# what a sweep writes first in its out folder, and only a sweep (an `export` may be anyone's)
SWEEP_ENTRIES = frozenset({"embeddings", "subsets", "targets", "runs"})


def refuse_a_folder_of_other_things(out: Path) -> None:
    """An out that exists and holds none of a sweep's entries is someone else's folder: the sweep would write beside
    what is there, and the demo's export over an `export` of theirs. Refused before any work; a new or empty folder,
    or a sweep's own (to resume it), is taken."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file, not a folder; choose another out")
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if present and not SWEEP_ENTRIES & set(present):
        shown = ", ".join(present[:3]) + (f" and {len(present) - 3} more" if len(present) > 3 else "")
        raise InputError(f"{out}: not empty and not a sweep's folder (it holds {shown}); choose a new or empty out")


def run_sweep(config: SweepConfig, accelerator=None, console: Console | None = None) -> dict:
    """The whole sweep; returns where its outputs are."""
    console = console or output_console()
    start = time.perf_counter()
    out = Path(config.out)
    refuse_a_folder_of_other_things(out)
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
        if table := shared_images_table([m for name, m in manifests.items() if name != FULL]):  # seeds' subsets alike
            console.print(table)

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


