"""The `distill` command: a thin layer over functions a notebook can call.

Runs the same under `accelerate launch -m distill ...` with any number of processes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from subsets.errors import InputError

from .config import ExtendList, add_config_flags
from .eval_config import DEMO_TEST
from .stop_signal import Stopped, Terminated, sigterm_unwinds


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def _names(text: str) -> list[int | str]:
    """A comma-separated list; numbers become ints, names stay (resolved against the data where it is known)."""
    items = [v.strip() for v in text.split(",") if v.strip()]
    return [int(v) if v.lstrip("-").isdigit() else v for v in items]


def _accelerator():
    import torch
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available())


def cmd_subset_embed(a: argparse.Namespace) -> None:
    from subsets.embed import EmbedConfig, embed_corpus
    from subsets.sources import open_source

    from .encoders import resolve_encoder

    source = open_source(a.source)
    encoder = resolve_encoder(a.encoder, a.resolution)
    acc = _accelerator()
    try:
        out = embed_corpus(source, encoder, a.out, EmbedConfig(a.batch_size, a.shard_size, a.strict), acc)
        if acc.is_main_process:
            print(f"embeddings: {out}")
    finally:
        acc.end_training()


def _select_across_processes(a: argparse.Namespace, config):
    """The selection with every process mapping its own shards; the main process writes the manifest and gets it,
    the others None."""
    from subsets.comm import Comm
    from subsets.lock import folder_lock
    from subsets.make_subset import make_subset_across_processes

    acc = _accelerator()
    try:
        with folder_lock(a.out, acc):  # one job per subset folder, and per k-center checkpoint beside it
            manifest = make_subset_across_processes(a.embeddings, a.out, config, Comm(), overwrite=a.overwrite)
            acc.wait_for_everyone()
    finally:
        acc.end_training()
    return manifest


def cmd_subset_select(a: argparse.Namespace) -> None:
    from subsets.make_subset import SelectConfig, make_subset
    from subsets.report import print_coverage

    config = SelectConfig(method=a.method, k_max=a.k_max, seed=a.seed, dedup=a.dedup, clusters=a.clusters,
                          niter=a.niter, resample_steps=a.resample_steps, report_k=a.report_k, device=a.device,
                          mapped=a.mapped)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # accelerate launch / torchrun: the processes share the work
        manifest = _select_across_processes(a, config)
        if manifest is None:
            return
    else:
        from subsets.lock import folder_lock

        with folder_lock(a.out):
            manifest = make_subset(a.embeddings, a.out, config, overwrite=a.overwrite)
    print_coverage([manifest])
    print(f"subset: {manifest.path} ({manifest.method}, k_max {len(manifest.order)}, "
          f"{manifest.meta['select_seconds']:.1f} s)")


def cmd_subset_import(a: argparse.Namespace) -> None:
    from subsets.imported import import_ordering
    from subsets.lock import folder_lock
    from subsets.report import print_coverage

    with folder_lock(a.out):
        manifest = import_ordering(a.embeddings, a.keys, a.out, a.name, seed=a.seed, report_k=a.report_k,
                                   overwrite=a.overwrite)
    print_coverage([manifest])
    print(f"subset: {manifest.path} ({manifest.method}, k_max {len(manifest.order)}, imported from {a.keys})")


def cmd_subset_show(a: argparse.Namespace) -> None:
    from subsets.manifest import read_manifest
    from subsets.report import plot_coverage, print_coverage

    manifests = [read_manifest(p) for p in a.subsets]
    print_coverage(manifests)
    png = plot_coverage(manifests, a.out or manifests[0].path.parent / "coverage.png")
    print(f"plot: {png}")


def cmd_subset_longtail(a: argparse.Namespace) -> None:
    import json

    from subsets.console import output_console
    from subsets.longtail import RECORD, LongtailConfig, make_longtail
    from subsets.sources import open_source

    config = LongtailConfig(imbalance=a.imbalance, head=a.head, seed=a.seed, shard_size=a.shard_size)
    pattern = make_longtail(open_source(a.source), a.out, config, overwrite=a.overwrite)
    record = json.loads((a.out / RECORD).read_text())
    names = record["classes"] or [str(c) for c in range(len(record["counts"]))]
    console = output_console()
    console.print("images per class: " + ", ".join(f"{n} {c:,}" for n, c in zip(names, record["counts"])))
    if record["skipped"]:
        console.print(f"{len(record['skipped']):,} unreadable image(s) skipped (listed in {a.out / RECORD})")
    console.print(f"long-tailed corpus: {record['images']:,} images; use it as --source {pattern}")


def cmd_cache(a: argparse.Namespace) -> None:
    from subsets.manifest import read_manifest
    from subsets.sources import open_source
    from teachers import load_teacher
    from teachers.cache import CacheConfig, cache_targets
    from teachers.stats import StatsConfig
    from teachers.views import ViewPolicy

    source, subset = open_source(a.source), read_manifest(a.subset)
    teacher = load_teacher(a.teacher, resolution=a.resolution, layers=a.teacher_layers)
    config = CacheConfig(views=ViewPolicy(views=a.views, seed=a.seed), batch_size=a.batch_size,
                         shard_size=a.shard_size, patch_grid=a.patch_grid, strict=a.strict,
                         stats=StatsConfig(samples=a.stats_samples))
    acc = _accelerator()
    try:
        out = cache_targets(source, subset, teacher, a.out, a.k, config, acc)
        if acc.is_main_process:
            print(f"targets: {out}")
    finally:
        acc.end_training()


def cmd_train(a: argparse.Namespace) -> None:
    from .config import config_from_args, example_train_file

    if a.example:
        print(example_train_file(), end="")
        return
    config = config_from_args(a)  # a config's mistakes in a fraction of a second, before torch is imported

    from .train import make_accelerator, train

    acc = make_accelerator(config)
    try:
        train(config, acc, resume=a.resume, stop_after=a.stop_after)
    finally:
        acc.end_training()


def cmd_eval(a: argparse.Namespace) -> None:
    if a.teacher:
        return cmd_eval_teachers(a)
    if a.resolution is not None or a.out is not None:
        raise InputError("distill eval: --resolution and --out are for --teacher; a run is evaluated as it was "
                         "trained, into RUN/eval.json")
    from .evaluate import EvalConfig, check_complete, evaluate_run, run_corpus

    check_complete(a.run)
    if a.source is not None:
        print("note: `distill eval --source` is deprecated and will be removed; it is --test-source", file=sys.stderr)
    corpus = run_corpus(a.run)
    test_source = a.test_source or a.source or DEMO_TEST.get(corpus)
    if test_source is None:
        raise InputError(f"{a.run}: give --test-source, the labelled held-out images to evaluate on (the run was "
                         f"distilled from {corpus or 'a corpus this machine cannot see'})")
    train_source = a.train_source or corpus
    if train_source is None:
        raise InputError(f"{a.run}: give --train-source, labelled images for the k-NN memory and the probe")
    config = EvalConfig(train_source=train_source, test_source=test_source, train_samples=a.train_samples or None,
                        test_samples=a.test_samples or None, knn_k=a.knn_k, teachers=not a.no_teacher)
    from subsets.console import output_console

    from .compare_stats import headroom_note

    result = evaluate_run(a.run, config)
    console = output_console()
    console.print(evaluation_table(a.run, result))
    if easy := headroom_note(result["untrained"], list(result["teachers"].values())):
        console.print(f"[bold yellow]{easy}[/]")
    console.print(f"wrote {a.run / 'eval.json'}")


def cmd_eval_teachers(a: argparse.Namespace) -> None:
    from subsets.console import output_console

    from .eval_config import EvalConfig
    from .teacher_eval import evaluate_teachers, teachers_table

    test_source = a.test_source or a.source
    train_source = a.train_source or {v: k for k, v in DEMO_TEST.items()}.get(test_source)
    if test_source is None or train_source is None:
        raise InputError("distill eval --teacher: give --test-source (labelled held-out images) and --train-source "
                         "(labelled images for the k-NN memory and the probe)")
    if a.no_teacher:
        raise InputError("distill eval: --no-teacher skips a run's teacher row; with --teacher there is nothing else")
    config = EvalConfig(train_source=train_source, test_source=test_source, train_samples=a.train_samples or None,
                        test_samples=a.test_samples or None, knn_k=a.knn_k)
    names = list(dict.fromkeys(a.teacher))  # a name given twice is evaluated once
    result = evaluate_teachers(names, config, a.resolution, out=a.out)
    tables, notes = teachers_table(result)
    console = output_console()
    for table in tables:
        console.print(table)
    for note in notes:
        console.print(f"[dim]{note}[/]")
    if a.out:
        console.print(f"wrote {a.out}")


def evaluation_table(run: Path, result: dict):
    """One run's accuracies beside its untrained twin's (the floor) and each teacher's (the ceiling): a student's
    figure means little without both; and what each costs per image, which is what distilling buys."""
    from rich.table import Table

    from .compute_account import compute_words
    from .model_cost import cost_cells

    st, floor = result["student"], result["untrained"]
    costs = result.get("cost") or {}  # evaluations made before costs were recorded have none
    table = Table(title=f"{run}: {len(st['correct']['knn_top1']):,} test images")
    for col in ("model", "k-NN top-1", "linear probe top-1", "cosine to teacher", "parameters", "MACs / image"):
        table.add_column(col, justify="left" if col == "model" else "right")
    agree = ", ".join(f"{n} {v:.3f}" for n, v in st["agreement"].items() if v is not None) or "-"
    student_cost = cost_cells(costs.get("student"))
    table.add_row("student", f"{st['knn_top1']:.3f}", f"{st['probe_top1']:.3f}", agree, *student_cost)
    table.add_row("untrained twin (the floor)", f"{floor['knn_top1']:.3f}", f"{floor['probe_top1']:.3f}", "-",
                  *student_cost)
    for name, t in result["teachers"].items():
        if t:
            table.add_row(f"teacher {name} (the ceiling)", f"{t['knn_top1']:.3f}", f"{t['probe_top1']:.3f}", "1",
                          *cost_cells(costs.get("teachers", {}).get(name)))
    table.caption = compute_words(costs.get("compute"))
    return table


def cmd_compare(a: argparse.Namespace) -> None:
    from .compare import compare_runs

    runs = a.runs
    if a.evaluated_only:  # a study under way: what is there so far, saying what is not
        runs = [r for r in a.runs if (r / "eval.json").exists()]
        if len(runs) < len(a.runs):
            left = [str(r) + ("" if r.is_dir() else " (no folder yet)") for r in a.runs if r not in runs]
            print(f"left out {len(left)} run(s) not evaluated yet: {', '.join(left)}")
        if not runs:
            raise InputError(f"compare --evaluated-only: none of the {len(a.runs)} run(s) given is evaluated yet")
    paths = compare_runs(runs, a.out, baseline=a.baseline, require_verdicts=a.verdicts,
                         baseline_recipe=a.baseline_recipe, classes=a.classes)
    width = max(map(len, paths))
    for name, path in paths.items():
        print(f"{name:{width}s} {path}")


def cmd_export(a: argparse.Namespace) -> None:
    from .export import export_run, push

    folder = export_run(a.run, a.out, overwrite=a.overwrite, license=a.license)
    print(f"exported {a.run} to {folder} (timm.create_model('local-dir:{folder}', pretrained=True))")
    if a.push:
        print(f"pushed: {push(folder, a.push, a.private)}")


def cmd_sweep(a: argparse.Namespace) -> None:
    from .sweep_config import SweepConfig, example_sweep_file  # the pipeline is imported only to run the sweep

    if a.example:
        print(example_sweep_file(), end="")
        return
    if a.config is None:
        raise InputError("distill sweep: give --config SWEEP_FILE (distill sweep --example prints one)")
    config = SweepConfig.load(a.config)
    if a.out:
        config.out = str(a.out)
    if a.plan:
        from .sweep_plan import plan_runs, print_plan

        print_plan(config, plan_runs(config))
        return
    from .sweep import run_sweep
    from .train import make_accelerator

    acc = make_accelerator(config.train_config(Path(config.out), 1, config.seeds[0]))
    try:
        run_sweep(config, acc)
    finally:
        acc.end_training()


def cmd_teachers(a: argparse.Namespace) -> None:
    from rich.table import Table

    from subsets.console import output_console
    from teachers import teacher_catalog
    from teachers.hf import hub_cache_dir, offline

    from .model_cost import amount

    rows, others = teacher_catalog()
    table = Table(title=f"teachers by name (--teacher, --encoder); Hugging Face cache: {hub_cache_dir()}")
    for col in ("name", "weights", "here"):
        table.add_column(col)
    for r in rows:
        here = "yes" + (f" ({amount(r['bytes'])}B)" if r["bytes"] else "") if r["here"] else "no"
        table.add_row(r["name"], r["weights"], here)
    console = output_console()
    console.print(table)
    if others:
        more = Table(title="other models in the cache that load as teachers (--teacher HUB_ID)")
        for col in ("Hub id", "kind", "size"):
            more.add_column(col)
        for r in others:
            more.add_row(r["name"], r["model_type"], f"{amount(r['bytes'])}B")
        console.print(more)
    missing = sum(not r["here"] for r in rows)
    fetch = "HF_HUB_OFFLINE=1 is set: only what is here loads" if offline() else \
        "a name not here downloads from the Hub on first use"
    console.print(f"{len(rows) - missing} of {len(rows)} named teachers are here; {fetch} (`huggingface-cli download "
                  "HUB_ID` fetches one ahead). Also: timm:NAME (any timm model), a Hub id or a local folder of a "
                  "DINOv2, DINOv3, CLIP, SigLIP or timm model.")


def cmd_demo(a: argparse.Namespace) -> None:
    from .demo import DemoConfig, run_demo

    acc = _accelerator()
    try:
        run_demo(DemoConfig(out=a.out), accelerator=acc)
    finally:
        acc.end_training()


class _PrintVersion(argparse.Action):
    """--version: the text is made when asked for, not with every parser (it asks git for the commit)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from subsets.provenance import version_text

        print(version_text())  # on stdout, as argparse's own version action prints
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="distill", description=__doc__.splitlines()[0])
    p.add_argument("--version", action=_PrintVersion, help="this code's version and commit, and its libraries'")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("subset", help="embed a corpus and select nested diverse subsets")
    ss = sp.add_subparsers(dest="subset_command", required=True)

    e = ss.add_parser("embed", help="embed every image of a corpus (resumable, multi-process)")
    e.add_argument("--source", required=True,
                   help="image folder, WebDataset pattern, hf:HUB_ID_OR_FOLDER[:SPLIT], or builtin:NAME")
    e.add_argument("--encoder", default="mobilenetv2_imagenet", help="teacher registry name or timm:NAME")
    e.add_argument("--out", required=True, type=Path, help="embeddings directory to write (or resume)")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--shard-size", type=int, default=4096, help="images per embeddings shard (the resume unit)")
    e.add_argument("--resolution", type=int, default=None, help="input side in pixels (default: the encoder's)")
    e.add_argument("--strict", action="store_true", help="fail on an unreadable image instead of skipping it")
    e.set_defaults(func=cmd_subset_embed)

    s = ss.add_parser("select", help="select a nested, ordered subset (first k entries = the k-subset)",
                      description="Select a nested, ordered subset (first k entries = the k-subset). A kcenter job, "
                                  "and a k-means or dedup job across processes or with --mapped, saves its state "
                                  "every minute into OUT.checkpoint/; rerun the same command to resume it (the same "
                                  "order as an uninterrupted run).")
    s.add_argument("--embeddings", required=True, type=Path)
    s.add_argument("--method", default="kcenter",
                   help="kcenter | kmeans | kmeans-random | kmeans-resampled | prototypes | random | class-balanced "
                        "(reads the labels: a labelled corpus only)")
    s.add_argument("--k-max", type=int, default=1000,
                   help="length of the ordering; every k <= k_max is served (0: the whole corpus)")
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--dedup", type=float, default=None, metavar="T", help="drop near-duplicates above cosine T first")
    s.add_argument("--clusters", type=_ints, action=ExtendList, default=None,
                   help="kmeans: clusters per level, finest first, e.g. 500,22; prototypes: one count")
    s.add_argument("--niter", type=int, default=20, help="kmeans iterations per level")
    s.add_argument("--resample-steps", type=int, default=10,
                   help="kmeans-resampled: resampling steps after each level's k-means (k-means again on the images "
                        "nearest each centroid, an equal number from every cluster; ssl-data-curation's 10)")
    s.add_argument("--report-k", type=_ints, action=ExtendList, default=None,
                   help="k values for coverage (default 10,20,50,...,k_max)")
    s.add_argument("--device", default="cpu",
                   help="where the ordering's distance products run: cpu (numpy and faiss) or cuda (torch, each "
                        "process on its own GPU); either gives one order for any number of processes")
    s.add_argument("--mapped", action="store_true",
                   help="in one process, run the k-means methods, prototypes and --dedup over the memory-mapped "
                        "shards (Lloyd's k-means over every row, the order of a job across processes, memory flat "
                        "in N) instead of faiss's in-memory versions (faster: faiss trains on a sample)")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_subset_select)

    im = ss.add_parser("import", help="an ordering made elsewhere (a file of image keys) as a subset directory",
                       description="Your own selection method, a filter or a list by hand, compared with ours: the "
                                   "keys (one a line, first pick first) are checked against the embeddings' corpus "
                                   "and written as a nested subset like any other, with its coverage against k.")
    im.add_argument("--embeddings", required=True, type=Path, help="the embeddings directory of the corpus")
    im.add_argument("--keys", required=True, type=Path, help="the ordering: one image key a line, first pick first")
    im.add_argument("--name", required=True, help="the method's name in tables and plots (not one of ours)")
    im.add_argument("--seed", type=int, default=0, help="the seed that drew this ordering (pairs it with ours)")
    im.add_argument("--report-k", type=_ints, action=ExtendList, default=None, help="k values to report coverage at")
    im.add_argument("--out", required=True, type=Path)
    im.add_argument("--overwrite", action="store_true")
    im.set_defaults(func=cmd_subset_import)

    w = ss.add_parser("show", help="coverage against k for subsets of one corpus: table and PNG")
    w.add_argument("subsets", nargs="+", type=Path)
    w.add_argument("--out", type=Path, default=None, help="PNG path (default: coverage.png beside the first)")
    w.set_defaults(func=cmd_subset_show)

    lt = ss.add_parser("longtail", help="a long-tailed corpus from a labelled one (CIFAR-10-LT's profile), as tar shards",
                       description="Keep every class of a labelled corpus but thin class r (0 = the head, in class "
                                   "order) to HEAD * IMBALANCE^(-r/(C-1)) images, and write them, bytes untouched, "
                                   "as WebDataset shards with a longtail.json record: a skewed corpus on which to "
                                   "compare selection methods.")
    lt.add_argument("--source", required=True,
                    help="a labelled image folder, WebDataset pattern, hf:HUB_ID_OR_FOLDER[:SPLIT], or builtin:NAME")
    lt.add_argument("--out", required=True, type=Path, help="folder to write (shards and longtail.json)")
    lt.add_argument("--imbalance", type=float, default=10.0, help="the head class's images over the last class's")
    lt.add_argument("--head", type=int, default=None, help="images of the head class (default: the smallest class's)")
    lt.add_argument("--seed", type=int, default=0, help="which images of each class are kept")
    lt.add_argument("--shard-size", type=int, default=10_000, help="images per tar shard")
    lt.add_argument("--overwrite", action="store_true")
    lt.set_defaults(func=cmd_subset_longtail)

    c = sub.add_parser("cache", help="run a teacher once over a subset's views and store its targets")
    c.add_argument("--source", required=True, help="the corpus the subset was selected from")
    c.add_argument("--subset", required=True, type=Path, help="subset directory (manifest)")
    c.add_argument("--teacher", default="mobilenetv2_imagenet", help="registry name, timm:NAME, Hub id or folder")
    c.add_argument("--out", required=True, type=Path, help="target cache directory to write (or resume)")
    c.add_argument("--k", type=int, default=None, help="cache only the first k of the subset (default: all)")
    c.add_argument("--views", type=int, default=2, help="augmented views per image (view 0 is the whole image)")
    c.add_argument("--seed", type=int, default=0, help="seed of the crops and flips")
    c.add_argument("--patch-grid", type=int, default=None, help="pool patch tokens to g x g before storing")
    c.add_argument("--resolution", type=int, default=None, help="teacher input side (default: the teacher's)")
    c.add_argument("--teacher-layers", type=_ints, action=ExtendList, default=[], metavar="L[,L...]",
                   help="also store these intermediate maps (layerL_patch) for the layer level: mobilenetv2_imagenet's "
                        "feature modules 1..18 (17: 160 channels at stride 32), DINOv2's and CLIP's blocks")
    c.add_argument("--batch-size", type=int, default=32)
    c.add_argument("--shard-size", type=int, default=256, help="images per shard (the resume unit)")
    c.add_argument("--strict", action="store_true", help="fail on an unreadable image instead of skipping it")
    c.add_argument("--stats-samples", type=int, default=1000,
                   help="images of the corpus (a seeded sample) for the target statistics every run normalises by")
    c.set_defaults(func=cmd_cache)

    t = sub.add_parser("train", help="distil a student (ViT, SCOTT-stem ViT or CNN) from target caches (or a teacher run online)",
                       description="Every setting has a working default; --config FILE (YAML) sets many at once "
                                   "and flags override it. Under `accelerate launch -m distill.train` the same flags apply.")
    t.add_argument("--config", type=Path, default=None, help="YAML file of settings (flags override it)")
    t.add_argument("--example", action="store_true", help="print a settings file with every setting and exit")
    t.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT",
                   help="continue the run in --out from its latest checkpoint (or the one named)")
    t.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="stop after N more steps (with a checkpoint); continue later with --resume")
    add_config_flags(t)
    t.set_defaults(func=cmd_train)

    v = sub.add_parser("eval", help="k-NN and linear probe on frozen features, agreement with the teacher; or "
                                    "teachers alone (--teacher), to choose one before distilling")
    what = v.add_mutually_exclusive_group(required=True)
    what.add_argument("--run", type=Path, help="a complete training run")
    what.add_argument("--teacher", action="append", metavar="NAME",
                      help="a teacher alone (repeat for several: side by side, each against the best); needs "
                           "--train-source and --test-source")
    v.add_argument("--resolution", type=int, default=None, help="--teacher: input side (default: each teacher's own)")
    v.add_argument("--out", type=Path, default=None, help="--teacher: also write the results to this JSON file")
    v.add_argument("--test-source", default=None, help="labelled held-out images: the test set (default only for runs "
                                                         "on the demo corpus: its test split)")
    v.add_argument("--source", default=None, help=argparse.SUPPRESS)  # deprecated spelling of --test-source
    v.add_argument("--train-source", default=None, help="labelled images for the k-NN memory and probe (default: the "
                                                          "run's own corpus)")
    v.add_argument("--train-samples", type=int, default=2000, help="a seeded sample of the train source (0: all)")
    v.add_argument("--test-samples", type=int, default=0, help="a seeded sample of the test source (0: all)")
    v.add_argument("--knn-k", type=int, default=20)
    v.add_argument("--no-teacher", action="store_true", help="skip the teacher's reference row")
    v.set_defaults(func=cmd_eval)

    m = sub.add_parser("compare", help="gather evaluated runs: tables with 95%% intervals, verdicts against a "
                                       "baseline method, a baseline recipe and the full corpus, rank correlations "
                                       "with full-corpus runs, CSV, plots")
    m.add_argument("runs", nargs="+", type=Path)
    m.add_argument("--out", required=True, type=Path)
    m.add_argument("--baseline", default="random", help="the method every other one is compared with, paired by seed")
    m.add_argument("--baseline-recipe", default=None, metavar="RECIPE",
                   help="the recipe every other one is compared with, paired by seed (default: the first run's)")
    m.add_argument("--verdicts", action="store_true",
                   help="fail unless verdicts can be given (at least two seeds of each method at a k)")
    m.add_argument("--classes", type=_names, action=ExtendList, default=None, metavar="C,C,...",
                   help="count only the test images of these classes, by number or name (e.g. a long-tailed "
                        "corpus's tail: 5,6,7,8,9 or dog,frog,horse,ship,truck): every accuracy, interval and "
                        "verdict, the floor and the teacher included")
    m.add_argument("--evaluated-only", action="store_true",
                   help="leave out (and name) the runs not evaluated yet, e.g. a sweep's under way")
    m.set_defaults(func=cmd_compare)

    x = sub.add_parser("export", help="a Hub-ready timm folder with a model card; --push uploads it")
    x.add_argument("--run", required=True, type=Path)
    x.add_argument("--out", required=True, type=Path)
    x.add_argument("--push", default=None, metavar="REPO_ID", help="upload to this Hub repository (needs a token)")
    x.add_argument("--private", action="store_true", help="create the Hub repository as private")
    x.add_argument("--overwrite", action="store_true")
    x.add_argument("--license", default="other", help="the model card's license field (a Hub license id; default: "
                                                       "other, as a student inherits its teachers' and data's terms)")
    x.set_defaults(func=cmd_export)

    w = sub.add_parser("sweep", help="methods x k x seeds end to end, reusing one selection and one cache per method")
    w.add_argument("--config", type=Path, default=None, help="sweep file (YAML)")
    w.add_argument("--out", type=Path, default=None, help="override the sweep file's out")
    w.add_argument("--example", action="store_true", help="print a sweep file with every setting and exit")
    w.add_argument("--plan", action="store_true",
                   help="print the runs the sweep plans (budgets; done, under way, to train; time left) and exit")
    w.set_defaults(func=cmd_sweep)

    te = sub.add_parser("teachers", help="the teachers this machine can load: names, Hub ids, which are in the HF cache")
    te.set_defaults(func=cmd_teachers)

    d = sub.add_parser("demo", help="the embedded default, end to end, offline")
    d.add_argument("--out", type=Path, default=Path("demo-out"))
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with sigterm_unwinds():
            args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated (SIGTERM)", file=sys.stderr)
        return 143
    except Stopped as e:  # a signal during training: checkpointed at the step's end, not a failure of the input
        if os.environ.get("RANK", "0") == "0":
            print(str(e), file=sys.stderr)
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - what a user can cause is one line; a bug still gets its traceback
        errors = sys.modules.get("students.errors")  # not imported: the error is none of its (nor imports timm)
        ours = (InputError, errors.StudentError) if errors else InputError
        line = worker_message(str(e)) if isinstance(e, ours) else failure_line(e)
        if line is None:
            raise
        if os.environ.get("RANK", "0") == "0":  # under accelerate launch, one process reports it
            print(f"error: {line}", file=sys.stderr)
        return 2
    return 0


def worker_message(message: str) -> str:
    """Our own line out of an error re-raised from a DataLoader worker, which wraps it in the worker's traceback."""
    if "Original Traceback" not in message:
        return message
    last = [line for line in message.splitlines() if line.strip()][-1]
    return last.split("Error: ", 1)[1] if "Error: " in last else last


def failure_line(e: BaseException) -> str | None:
    """One line for a failure that comes from the user's files, disk or network rather than from our code: an
    OS error (a missing, unreadable or read-only path, a full disk), a damaged safetensors or pickle file, a Hub
    or network error. None for anything else (a bug: its traceback is worth seeing)."""
    import pickle

    from subsets.fileio import is_disk_full

    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        if is_disk_full(e):
            return f"{where}the disk is full; free space and rerun the same command to resume"
        return f"{where}{e.strerror or e}"
    module = type(e).__module__ or ""
    if type(e).__name__ == "SafetensorError" or module.startswith("safetensors"):
        return f"a safetensors file is damaged or not one ({e}); rerun the step that wrote it"
    if isinstance(e, (pickle.UnpicklingError, EOFError)):
        return f"a checkpoint file is damaged ({e}); resume from an earlier checkpoint or start the run again"
    if module.startswith(("huggingface_hub", "httpx", "requests", "urllib3")):
        return f"the Hugging Face Hub or the network failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    return None
