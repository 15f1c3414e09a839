"""Sweeps end to end, comparison, export to timm, and their bad input."""

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import load_file

from distill.compare import compare_runs
from distill.config import TrainConfig
from distill.evaluate import EvalConfig, evaluate_run, load_run
from distill.export import EXPORT_FILES, export_run
from distill.model_cost import amount
from distill.sweep import SweepConfig, run_sweep
from subsets.errors import InputError

from .helpers import ROOT, error_line, run_cli

EVAL = {"train_source": "builtin:cifar10-demo", "train_samples": 200, "test_source": "builtin:cifar10-demo-test",
        "test_samples": 100}


def _sweep(out, image_folder) -> SweepConfig:
    return SweepConfig(out=str(out), source=str(image_folder), encoder_resolution=32, methods=["kcenter", "random"],
                       ks=[20, 40], teacher_resolution=64,
                       train={"steps": 4, "batch_size": 8, "student_kwargs": {"depth": 1}, "workers": 0,
                              "normalize_targets": True, "distance": "cosine"},
                       eval=EVAL).check()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, image_folder):
    out = tmp_path_factory.mktemp("sweep") / "sw"
    return out, run_sweep(_sweep(out, image_folder))


def test_a_tiny_sweep_yields_an_eval_per_run_a_csv_with_exactly_those_rows_and_a_plot(sweep):
    out, paths = sweep
    names = {f"{m}-k{k}-s0" for m in ("kcenter", "random") for k in (20, 40)}
    assert {p.name for p in paths["runs"]} == names
    for run in paths["runs"]:
        ev = json.loads((run / "eval.json").read_text())
        assert 0 <= ev["student"]["knn_top1"] <= 1 and ev["teachers"]["mobilenetv2_imagenet"]["knn_top1"] > 0.2
        assert ev["environment"]["libraries"]["torch"] == torch.__version__  # which code made the figure
    with open(paths["comparison_csv"]) as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["method"], int(r["k"])) for r in rows) == [("kcenter", 20), ("kcenter", 40), ("random", 20),
                                                                ("random", 40)]
    assert all(r["steps"] == "4" for r in rows)
    assert paths["comparison_plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = paths["comparison_markdown"].read_text()
    assert "teacher: mobilenetv2_imagenet" in table and "| untrained student |" in table  # ceiling and floor rows
    assert "| steps |" not in table  # every run had the same budget: no column for it
    assert all(0 < float(r["untrained_knn_top1"]) < 1 for r in rows)
    # what each costs per image: the student's figures are the exported timm model's; the teacher's are its own
    cost = json.loads((paths["runs"][0] / "eval.json").read_text())["cost"]
    exported = timm.create_model(f"local-dir:{paths['runs'][0] / 'student'}")
    assert cost["student"]["params"] == sum(p.numel() for p in exported.parameters())
    assert cost["student"]["img_size"] == 32 and cost["teachers"]["mobilenetv2_imagenet"]["img_size"] == 64
    ratio = cost["teachers"]["mobilenetv2_imagenet"]["macs"] / cost["student"]["macs"]  # 0.83: a teacher at 64 px
    assert f"({ratio:.2g}x the student's compute)" in table and "_Cost: student " in table  # costs less than 64 tokens
    # what each answer cost: the encoder's pass over the corpus for kcenter alone (random reads no embeddings), the
    # cached teacher's pass over the run's k images x 2 views, and the counted training steps
    encoder = json.loads((out / "embeddings" / "meta.json").read_text())
    for run in paths["runs"]:
        record, ev = (json.loads((run / name).read_text()) for name in ("run.json", "eval.json"))
        k, account = record["subset"]["k"], ev["cost"]["compute"]
        assert account["selection"] == (encoder["encoder_cost"]["macs"] * 120 if "kcenter" in run.name else 0)
        assert account["teacher"] == ev["cost"]["teachers"]["mobilenetv2_imagenet"]["macs"] * k * 2
        assert account["training"] == record["macs_per_step"] * 4 and record["macs_per_step"] > 0
        assert account["total"] == account["selection"] + account["teacher"] + account["training"]
    assert sum(float(r["total_macs"]) for r in rows if r["method"] == "kcenter") > \
        sum(float(r["total_macs"]) for r in rows if r["method"] == "random")
    assert "## What each answer cost" in table and "| kcenter | 40 | 1 |" in table
    assert paths["comparison_compute_plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # k-NN against compute
    # one cache per method and seed, made at the largest k and read by both k
    assert sorted(p.name for p in (out / "targets").iterdir()) == ["kcenter-s0", "random-s0"]
    assert json.loads((out / "targets" / "kcenter-s0" / "index.json").read_text())["k"] == 40
    # one seed: intervals from the test set alone, and no verdict (it needs two seeds), said so
    result = json.loads(paths["comparison_json"].read_text())
    assert result["verdicts"] == [] and "at least two seeds" in table
    assert result["floor_gains"] == [] and "4 of 4 cells have one seed" in table  # not against their twins either
    assert all(a["knn_top1_low"] <= a["knn_top1"] <= a["knn_top1_high"] for a in result["aggregate"])
    # the comparison names the code that trained its runs
    commit = json.loads((paths["runs"][0] / "run.json").read_text())["invocations"][0]["environment"]["code"]["commit"]
    assert commit is None or f"Trained by code: {commit[:10]}" in table
    for made in (out / "embeddings" / "meta.json", out / "subsets" / "kcenter-s0" / "manifest.json",
                 out / "targets" / "kcenter-s0" / "index.json"):  # and so does everything the runs were made from
        assert json.loads(made.read_text())["environment"]["code"]["commit"] == commit, made


def test_runs_trained_side_by_side_equal_the_same_runs_trained_alone_on_the_workers_threads(tmp_path, image_folder):
    from safetensors.torch import load_file

    from distill.train import train

    config = _sweep(tmp_path / "sw", image_folder)
    config.methods, config.ks, config.parallel_runs = ["random"], [20, 40], 2
    config.steps_by_k = {40: 6}
    paths = run_sweep(config)
    assert all((r / "eval.json").exists() for r in paths["runs"])
    # steps_by_k gives k = 40 its own budget; the other k keeps the recipe's
    assert [json.loads((r / "run.json").read_text())["steps"] for r in paths["runs"]] == [4, 6]
    table = paths["comparison_markdown"].read_text()  # and the comparison shows each row's budget
    assert "| method | k | seeds | steps |" in table and "| random | 20 | 1 | 4 |" in table and "| random | 40 | 1 | 6 |" in table
    run = paths["runs"][1]
    alone = TrainConfig.from_dict(json.loads((run / "run.json").read_text())["config"])
    alone.out = str(tmp_path / "alone")
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // 2))  # the worker's share of this machine's threads
    try:
        train(alone)
    finally:
        torch.set_num_threads(threads)
    side, solo = load_file(str(run / "student.safetensors")), load_file(str(tmp_path / "alone" / "student.safetensors"))
    assert side.keys() == solo.keys() and all(torch.equal(side[k], solo[k]) for k in side)
    # and each counted its own steps' compute, not the other run's beside it
    assert json.loads((run / "run.json").read_text())["macs_per_step"] == \
        json.loads((tmp_path / "alone" / "run.json").read_text())["macs_per_step"]


def test_a_recipes_own_budget_comes_before_the_sweeps_so_budgets_can_be_recipes(image_folder):
    from distill.sweep import planned_runs

    config = SweepConfig(source=str(image_folder), methods=["random"], ks=[20, 40, "full"], train={"steps": 4},
                         steps_by_k={20: 2, "full": 8}, eval=EVAL,
                         recipes=[{"name": "demo"},  # the sweep's budgets
                                  {"name": "x3", "train": {"steps": 12}},  # its own steps at every k
                                  {"name": "mixed", "train": {"steps": 12}, "steps_by_k": {40: 30}},
                                  {"name": "by-k", "steps_by_k": {20: 6}}]).check()
    steps = {(recipe, k): settings["steps"] for recipe, settings, _, k, _ in planned_runs(config)}
    assert steps == {("demo", 20): 2, ("demo", 40): 4, ("demo", "full"): 8,
                     ("x3", 20): 12, ("x3", 40): 12, ("x3", "full"): 12,
                     ("mixed", 20): 12, ("mixed", 40): 30, ("mixed", "full"): 12,
                     ("by-k", 20): 6, ("by-k", 40): 4, ("by-k", "full"): 8}


def _instant_pool(started: list, fails: int | None = None):
    """A stand-in for the process pool: each run ends as soon as it is handed over (k = `fails` with an error),
    and `started` records the k of each run in the order the workers took them."""
    from concurrent.futures import Future

    class Pool:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, config, resume):
            started.append(config.k)
            future = Future()
            if config.k == fails:
                future.set_exception(InputError(f"runs/kcenter-k{fails}-s0: holds a run already"))
            else:
                future.set_result(None)
            return future

    return Pool


def _pending_runs(side) -> list:
    return [side.PendingRun(f"run {k}", TrainConfig(k=k, steps=steps), False)
            for k, steps in [(100, 1800), (300, 1800), (1000, 3600), (50, 900)]]


def test_runs_side_by_side_start_longest_first_so_unequal_runs_fill_the_workers(monkeypatch):
    from rich.console import Console

    import distill.side_by_side as side

    started = []
    monkeypatch.setattr(side, "ProcessPoolExecutor", _instant_pool(started))
    side.train_side_by_side(_pending_runs(side), 2, Console(quiet=True))
    assert started == [1000, 100, 300, 50]


def test_runs_resumed_side_by_side_start_their_bars_at_their_checkpoints(monkeypatch, tmp_path):
    from rich.console import Console

    import distill.side_by_side as side

    state = tmp_path / "kcenter-k100-s0" / "checkpoints" / "step-000900" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"step": 900}))
    runs = [side.PendingRun(p.label, TrainConfig(**(p.config.to_dict() | {"out": str(tmp_path / f"kcenter-k{p.config.k}-s0")})),
                            True) for p in _pending_runs(side)]  # out as a sweep gives it: a str
    started = []
    monkeypatch.setattr(side, "ProcessPoolExecutor", _instant_pool(started))
    side.train_side_by_side(runs, 2, Console(quiet=True))
    assert started == [1000, 100, 300, 50]


def test_each_run_side_by_side_is_handed_on_as_it_finishes_while_the_others_train(monkeypatch):
    from rich.console import Console

    import distill.side_by_side as side

    events = []
    pool = _instant_pool(events)  # records the k of each run as a worker takes it
    monkeypatch.setattr(side, "ProcessPoolExecutor", pool)
    side.train_side_by_side(_pending_runs(side), 2, Console(quiet=True),
                            on_trained=lambda run: events.append(f"done {run.config.k}"))
    # the first two are handed on (a sweep evaluates them) before the next two start, not after every run
    assert set(events[:2]) == {1000, 100} and set(events[2:4]) == {"done 1000", "done 100"}
    assert set(events[4:6]) == {300, 50} and set(events[6:]) == {"done 300", "done 50"}
    events.clear()
    monkeypatch.setattr(side, "ProcessPoolExecutor", _instant_pool(events, fails=1000))
    with pytest.raises(InputError):
        side.train_side_by_side(_pending_runs(side), 2, Console(quiet=True),
                                on_trained=lambda run: events.append(f"done {run.config.k}"))
    assert "done 1000" not in events  # a failed run is not handed on


def test_a_run_that_fails_side_by_side_is_reported_and_no_other_run_starts_after_it(monkeypatch):
    from rich.console import Console

    import distill.side_by_side as side

    started = []
    monkeypatch.setattr(side, "ProcessPoolExecutor", _instant_pool(started, fails=1000))
    console = Console(record=True, width=200)
    with pytest.raises(InputError, match="holds a run already"):
        side.train_side_by_side(_pending_runs(side), 2, console)
    assert started == [1000, 100]  # the two the workers took; the other two never start
    assert "run 1000: failed (runs/kcenter-k1000-s0: holds a run already)" in console.export_text()


def test_a_resumed_sweep_does_not_redo_finished_runs(tmp_path, image_folder):
    import shutil

    out = tmp_path / "sw"
    config = _sweep(out, image_folder)
    config.methods, config.ks = ["random"], [20, 40]
    paths = run_sweep(config)
    stamps = {r.name: (r / "run.json").stat().st_mtime_ns for r in paths["runs"]}
    shutil.rmtree(out / "runs" / "random-k40-s0")  # as if the sweep had been stopped before its last run
    run_sweep(config)
    assert (out / "runs" / "random-k20-s0" / "run.json").stat().st_mtime_ns == stamps["random-k20-s0"]
    assert (out / "runs" / "random-k40-s0" / "eval.json").exists()


def test_the_exported_folder_loads_with_timm_and_reproduces_the_students_features(sweep, tmp_path):
    run = sweep[1]["runs"][0]
    folder = export_run(run, tmp_path / "hub")
    assert {p.name for p in folder.iterdir()} == set(EXPORT_FILES)  # what --overwrite may replace
    model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    student, record = load_run(run)
    x = torch.randn(3, 3, 32, 32)
    in_run = timm.create_model(f"local-dir:{run / 'student'}", pretrained=True).eval()  # the run folder's own
    with torch.no_grad():
        torch.testing.assert_close(model(x), student.student.features(x))
        torch.testing.assert_close(in_run(x), student.student.features(x))
    cfg = timm.data.resolve_data_config(model=model)
    assert cfg["input_size"] == (3, 32, 32) and tuple(cfg["mean"]) == tuple(record["student"]["mean"])
    card = (folder / "README.md").read_text()
    assert "library_name: timm" in card and f"{record['subset']['method']} subset" in card and "k-NN top-1" in card
    assert "Compute this student took: " in card and " MACs to select its subset" in card  # and what it took
    # the card says the real shape, no path of the training machine, and a license
    assert "(ViT, 1 blocks, width 192, patch 4, 32 px, patch stem)" in card and "license: other" in card
    assert str(tmp_path.parent) not in card and str(run.parent) not in card
    # timm's own transform is the evaluation's: the whole image squashed to the input size, not cropped
    from PIL import Image

    from distill.evaluate import _to_tensor

    transform = timm.data.create_transform(**cfg)
    ours = _to_tensor(32, record["student"]["mean"], record["student"]["std"])
    rng = np.random.default_rng(0)
    square = Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    torch.testing.assert_close(transform(square), ours(square))
    wide = Image.fromarray(rng.integers(0, 255, (40, 64, 3), dtype=np.uint8))
    assert transform(wide).shape == ours(wide).shape == (3, 32, 32)
    # squashed like ours (a centre crop would keep only the middle of the wide image): close, up to PIL's and
    # torch's bicubic kernels
    assert (transform(wide) - ours(wide)).abs().mean() < 0.1


def test_comparing_runs_evaluated_on_different_sets_is_refused(sweep, tmp_path):
    import shutil

    runs = sweep[1]["runs"][:2]
    other = tmp_path / runs[1].name
    shutil.copytree(runs[1], other)
    evaluate_run(other, EvalConfig(**(EVAL | {"test_samples": 50, "teachers": False})))
    with pytest.raises(InputError, match="evaluated on another set.*test_samples"):
        compare_runs([runs[0], other], tmp_path / "cmp")


def test_runs_of_other_settings_under_one_recipe_are_refused_not_averaged_in_as_seeds(sweep, tmp_path):
    import shutil

    runs = sweep[1]["runs"]
    other = tmp_path / "random-k20-s1"
    shutil.copytree(next(r for r in runs if r.name == "random-k20-s0"), other)
    record = json.loads((other / "run.json").read_text())
    record["config"] |= {"lr": 3e-3}  # as if trained alone with another lr: not a duplicate of its seed
    (other / "run.json").write_text(json.dumps(record))
    res = run_cli("compare", *runs, other, "--out", tmp_path / "cmp")
    assert res.returncode == 2 and error_line(res) == (
        f"error: compare: {runs[0]} and {other} are both without a recipe but differ in lr; train runs of other settings with "
        "--recipe NAME (a sweep's recipes) to compare them as recipes")
    assert not (tmp_path / "cmp").exists()
    record["config"] |= {"recipe": "lr-3e-3"}  # named, it is a recipe compared with the others
    (other / "run.json").write_text(json.dumps(record))
    res = run_cli("compare", *runs, other, "--out", tmp_path / "cmp")
    assert res.returncode == 0, res.stderr
    assert "lr-3e-3" in (tmp_path / "cmp" / "results.md").read_text()


def test_runs_whose_targets_differ_are_refused_as_one_recipe(sweep, tmp_path):
    """`targets` names a cache per method, so the caches' contents are compared: a method distilled from the teacher
    at another resolution, or on other views, is not a method of the same comparison (it was, unsaid)."""
    import shutil

    runs = sweep[1]["runs"]
    base = next(r for r in runs if r.name == "random-k20-s0")
    assert json.loads((base / "run.json").read_text())["view_policy"]["views"] == 2  # the run keeps its views
    other = tmp_path / "random-k20-s7"
    for change, differ in (({"teachers": lambda ts: [t | {"resolution": 96, "tokens": 9} for t in ts]}, "teachers"),
                           ({"view_policy": lambda v: v | {"views": 3}}, "view_policy"),
                           ({"view_policy": lambda v: v | {"seed": 5}}, None),  # the crop seed is a seed
                           ({"view_policy": lambda v: None}, None)):  # a run made before runs kept their views
        shutil.rmtree(other, ignore_errors=True)
        shutil.copytree(base, other)
        record = json.loads((other / "run.json").read_text())
        record |= {key: edit(record[key]) for key, edit in change.items()}
        record["config"]["seed"] = 7  # a seed of its own: not a repeat of its original
        (other / "run.json").write_text(json.dumps(record))
        if differ:
            with pytest.raises(InputError, match=f"both without a recipe but differ in {differ};"):
                compare_runs([*runs, other], tmp_path / "cmp")
        else:
            compare_runs([*runs, other], tmp_path / "cmp")


def test_a_study_under_way_compares_its_evaluated_runs_naming_those_left_out(sweep, tmp_path):
    import shutil

    runs = sweep[1]["runs"]
    under_way = tmp_path / "random-k40-s1"
    shutil.copytree(runs[-1], under_way, ignore=shutil.ignore_patterns("eval.json"))
    res = run_cli("compare", *runs, under_way, "--out", tmp_path / "cmp")
    assert res.returncode == 2 and error_line(res) == (f"error: {under_way}: no eval.json; evaluate it first (distill "
                                                       f"eval --run {under_way}), or compare the others with "
                                                       "--evaluated-only")
    res = run_cli("compare", *runs, "--out", tmp_path / "cmp", "--baseline", "randon")
    assert res.returncode == 2 and "baseline randon is none of the runs' methods (" in error_line(res)
    typo = tmp_path / "randon-k40-s1"
    res = run_cli("compare", *runs, typo, "--out", tmp_path / "cmp")
    assert res.returncode == 2 and error_line(res) == f"error: {typo}: no such run folder"
    res = run_cli("compare", *runs, under_way, "--out", tmp_path / "cmp", "--evaluated-only")
    assert res.returncode == 0 and f"left out 1 run(s) not evaluated yet: {under_way}" in res.stdout
    assert len((tmp_path / "cmp" / "results.csv").read_text().splitlines()) == 1 + len(runs)


def test_exporting_or_evaluating_an_unfinished_run_says_so(tmp_path, sweep):
    from distill.train import train

    out, paths = sweep
    config = TrainConfig(out=str(tmp_path / "unfinished"), targets=[str(out / "targets" / "random-s0")], k=20, steps=4,
                         batch_size=8, student_kwargs={"depth": 1}, workers=0)
    train(config, stop_after=2)
    for cmd in (["export", "--run", tmp_path / "unfinished", "--out", tmp_path / "hub"],
                ["eval", "--run", tmp_path / "unfinished"]):
        res = run_cli(*cmd)
        assert res.returncode == 2 and "not a complete training run" in error_line(res) and "--resume" in error_line(res)
    assert not (tmp_path / "hub").exists()


def test_push_without_a_token_says_what_is_missing_and_keeps_the_folder(sweep, tmp_path):
    res = run_cli("export", "--run", sweep[1]["runs"][0], "--out", tmp_path / "hub", "--push", "someone/student",
                  env_extra={"HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": ""})
    assert res.returncode == 2 and "no Hugging Face token" in error_line(res)
    assert (tmp_path / "hub" / "config.json").exists()


@pytest.mark.parametrize("change, message", [
    ({"methods": ["kcenter", "fastest"]}, "unknown method(s) fastest"),
    ({"ks": [20, 500]}, "k = 500 is above the corpus size (120 images"),
    ({"train": {"steps": 4, "k": 3}}, "train.k is set by the sweep itself"),
    ({"train": {"stepz": 4}}, "unknown setting(s) stepz"),
    ({"recipes": [{"name": "wide", "train": {}}, {"name": "Wide", "train": {"lr": 1e-4}}]},
     "recipe names 'wide' and 'Wide' collide"),
    ({"recipes": [{"name": "a/b", "train": {}}]}, "needs a name (letters, digits"),
    ({"recipes": [{"name": "x", "train": {"seed": 3}}]}, "recipe x: train.seed is set by the sweep itself"),
    ({"seeds": [1, 1]}, "seeds must be a list of distinct integers"),
    ({"recipes": [{"name": "x", "train": {"lr": "fast"}}]}, "train settings (recipe x): lr = 'fast' is not a number"),
    ({"ks": 20}, "sweep.yaml: ks = 20 is not a list"),
    ({"train": 5}, "sweep.yaml: train = 5 is not a mapping"),
    ({"views": "two"}, "sweep.yaml: views = 'two' is not an integer"),
    ({"ks": [20, 20]}, "sweep.yaml: ks lists 20 twice"),
    ({"views": 0}, "sweep.yaml: views must be a positive integer, not 0"),
    ({"train": {"min_lr": 0.1}}, "sweep.yaml: train settings: min_lr 0.1: must lie in [0, lr = 0.001]"),
    ({"baseline": "randon"}, "sweep.yaml: baseline randon is not among the sweep's methods"),
    ({"dedup": 1.5}, "sweep.yaml: dedup must be a cosine threshold between 0 and 1, not 1.5"),
    ({"methods": ["kcenter", "random", "kcenter"]}, "sweep.yaml: methods lists 'kcenter' twice"),
    ({"eval": {"knn_k": "x"}}, "sweep.yaml: eval settings: knn_k = 'x' is not an integer"),
    ({"eval": {"train_samples": 0, "test_source": "builtin:cifar10-demo-test"}},
     "train_samples = 0 must be a positive integer, or null for all of the source"),
    ({"eval": {"test_source": "no/such/folder"}}, "no/such/folder: not a folder of images"),
    ({"eval": {}}, "sweep.yaml: eval.test_source: give the labelled held-out images to evaluate on"),
    ({"ks": [20, "all"]}, 'ks must be a list of positive integers or "full"'),
    ({"parallel_runs": 0}, "parallel_runs must be a positive integer, not 0"),
    ({"resample_steps": -2}, "resample_steps must be 0 or a positive integer, not -2"),
    ({"steps_by_k": {40: 100}}, "steps_by_k names k = 40, which is not among the sweep's ks [20]"),
    ({"steps_by_k": {20: 0}}, "steps_by_k[20] must be a positive integer, not 0"),
    ({"recipes": [{"name": "long", "steps_by_k": {40: 100}}]},
     "recipe long: steps_by_k names k = 40, which is not among the sweep's ks [20]"),
    ({"recipes": [{"name": "long", "steps_by_k": [20, 100]}]}, "recipe long: steps_by_k must map subset sizes to steps"),
])
def test_a_bad_sweep_file_fails_before_any_work(tmp_path, image_folder, change, message):
    import yaml

    config = {"out": str(tmp_path / "sw"), "source": str(image_folder), "methods": ["kcenter"], "ks": [20]} | change
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))
    res = run_cli("sweep", "--config", tmp_path / "sweep.yaml")
    assert res.returncode == 2 and message in error_line(res)
    assert not (tmp_path / "sw").exists()


def test_agreement_is_measured_where_the_loss_compared_student_and_teacher(sweep):
    """With normalised targets and cosine distance the head's output scale is free: agreement must not depend on it."""
    from distill.evaluate import _data, agreement, extract

    run = sweep[1]["runs"][0]
    model, record = load_run(run)
    config = EvalConfig(**EVAL)
    s = record["student"]
    feats = extract(lambda x: model.student(x)["cls"], _data(config, "test"), s["img_size"], s["mean"], s["std"], 64,
                    "cpu", "student")
    before = agreement(model, record, feats, config, "cpu")["mobilenetv2_imagenet"]
    head = model.heads["mobilenetv2_imagenet"].heads["token"][1]
    with torch.no_grad():
        head.weight.mul_(10)
        head.bias.mul_(10)
    after = agreement(model, record, feats, config, "cpu")["mobilenetv2_imagenet"]
    assert after == pytest.approx(before, abs=1e-5) and -1 <= before <= 1
    assert before == pytest.approx(json.loads((run / "eval.json").read_text())["student"]["agreement"]["mobilenetv2_imagenet"],
                                   abs=1e-5)


def test_one_teacher_at_two_resolutions_has_a_ceiling_and_a_cost_for_each(sweep, image_folder, tmp_path):
    """Two caches of one teacher at two resolutions, or runs distilled from it at two: each resolution has its own
    ceiling row, cost and agreement, in eval.json and in a comparison; one never stands in for the other."""
    from distill.train import train
    from subsets.manifest import read_manifest
    from subsets.sources import open_source
    from teachers import load_teacher
    from teachers.cache import CacheConfig, cache_targets
    from teachers.views import ViewPolicy

    out, paths = sweep
    at96 = tmp_path / "t96"
    cache_targets(open_source(str(image_folder)), read_manifest(out / "subsets" / "random-s0"),
                  load_teacher("mobilenetv2_imagenet", resolution=96), at96,
                  config=CacheConfig(views=ViewPolicy(views=2), shard_size=16))  # the sweep's views
    run = train(TrainConfig(targets=[str(out / "targets" / "random-s0"), str(at96)], k=20, steps=2, batch_size=8,
                            workers=0, recipe="two-resolutions", out=str(tmp_path / "random-k20-s0")))
    ev = evaluate_run(run, EvalConfig(**EVAL))
    both = ("mobilenetv2_imagenet at 64 px", "mobilenetv2_imagenet at 96 px")
    assert set(ev["teachers"]) == set(ev["cost"]["teachers"]) == set(ev["student"]["agreement"]) == set(both)
    assert [ev["cost"]["teachers"][t]["img_size"] for t in both] == [64, 96]
    alone = json.loads((next(r for r in paths["runs"] if r.name == "random-k20-s0") / "eval.json").read_text())
    assert ev["teachers"][both[0]]["correct"] == alone["teachers"]["mobilenetv2_imagenet"]["correct"]
    assert ev["teachers"][both[1]]["correct"] != ev["teachers"][both[0]]["correct"]  # another teacher's answers
    # beside runs distilled at 64 px alone, the comparison keeps both ceilings and both costs apart
    kcenter = next(r for r in paths["runs"] if r.name == "kcenter-k20-s0")
    result = compare_runs([kcenter, run], tmp_path / "cmp")
    references = json.loads(result["json"].read_text())["references"]
    assert {f"teacher: {t}" for t in both} <= set(references)
    assert references[f"teacher: {both[1]}"]["knn_top1"] == ev["teachers"][both[1]]["knn_top1"]
    table = result["markdown"].read_text()
    assert "teacher mobilenetv2_imagenet at 64 px: " in table and "teacher mobilenetv2_imagenet at 96 px: " in table
    assert "teacher: mobilenetv2_imagenet |" not in table  # no row under the bare name, standing for either


def test_runs_evaluated_before_resolutions_were_recorded_share_their_teachers_ceiling_row(sweep, tmp_path):
    """A study's older runs (eval.json without teacher resolutions) compared beside its newer ones: the runs' records
    tell the resolution, so one teacher at one resolution is one ceiling row, not a second standing for another."""
    import shutil

    old, new = (tmp_path / name for name in ("old", "new"))
    for copy, name in ((old, "kcenter-k20-s0"), (new, "random-k20-s0")):
        shutil.copytree(next(r for r in sweep[1]["runs"] if r.name == name), copy)
    evaluation = json.loads((old / "eval.json").read_text())
    evaluation["teachers"] = {key: {k: v for k, v in t.items() if k not in ("name", "resolution")}
                              for key, t in evaluation["teachers"].items()}  # as an older version wrote it
    (old / "eval.json").write_text(json.dumps(evaluation))
    result = compare_runs([old, new], tmp_path / "cmp")
    assert [r for r in json.loads(result["json"].read_text())["references"] if r.startswith("teacher")] == \
        ["teacher: mobilenetv2_imagenet"]
    table = result["markdown"].read_text()
    assert "teacher mobilenetv2_imagenet: " in table and "mobilenetv2_imagenet at " not in table  # its cost too


@pytest.mark.parametrize("student", [{"stem": "scott", "patch_size": 8}, {"student": "resnet10t", "w_patch": 0.0}])
def test_scott_and_cnn_students_export_to_folders_timm_loads(sweep, tmp_path, student):
    import students  # noqa: F401  (registers vit_scott, as the model card says)
    from distill.train import train

    out, _ = sweep
    config = TrainConfig(**({"targets": [str(out / "targets" / "random-s0")], "k": 20, "steps": 2, "batch_size": 8,
                             "workers": 0, "out": str(tmp_path / "run")} | student))
    run = train(config)
    folder = export_run(run, tmp_path / "hub")
    model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    trained, _ = load_run(run)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), trained.student.features(x))
    card = (folder / "README.md").read_text()
    assert ("import students" in card) == (student.get("stem") == "scott")


def test_comparing_one_seed_with_verdicts_asked_says_two_are_needed(sweep, tmp_path):
    res = run_cli("compare", *sweep[1]["runs"], "--out", tmp_path / "cmp", "--verdicts")
    assert res.returncode == 2 and "needs at least two seeds" in error_line(res)


def test_a_full_corpus_too_big_for_the_disk_is_refused_before_any_work(tmp_path, image_folder, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))  # 1 MB free
    config = _sweep(tmp_path / "sw", image_folder)
    config.ks = [20, "full"]
    with pytest.raises(InputError, match=r"need [0-9.]+ GiB \(the full corpus alone: [0-9.]+ GiB\), the disk has"):
        run_sweep(config)
    assert not (tmp_path / "sw").exists()


def test_a_sweep_into_a_folder_of_other_things_is_refused_and_the_folder_left_as_it_was(tmp_path, image_folder):
    """The demo exports over out/export: pointed at someone's folder, it would write beside and over their files."""
    theirs = tmp_path / "theirs"
    (theirs / "export").mkdir(parents=True)
    (theirs / "export" / "model.safetensors").write_bytes(b"their weights")
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"theirs: not empty and not a sweep's folder \(it holds export, notes.txt\); "):
        run_sweep(_sweep(theirs, image_folder))
    assert sorted(p.name for p in theirs.rglob("*")) == ["export", "model.safetensors", "notes.txt"]
    assert not (tmp_path / ".theirs.lock").exists()
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(InputError, match="a-file: is a file, not a folder"):
        run_sweep(_sweep(tmp_path / "a-file", image_folder))
    import yaml

    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump({"out": str(theirs), "source": str(image_folder),
                                                         "methods": ["kcenter"], "ks": [20], "eval": EVAL}))
    res = run_cli("sweep", "--config", tmp_path / "sweep.yaml")  # the command line: one line, no traceback
    assert res.returncode == 2 and "not a sweep's folder" in error_line(res) and "Traceback" not in res.stderr


@pytest.fixture(scope="module")
def seeded_sweep(tmp_path_factory, image_folder):
    """Two seeds, the full corpus, and three recipes (the last two on random subsets only)."""
    out = tmp_path_factory.mktemp("seeded") / "sw"
    config = _sweep(out, image_folder)
    config.ks, config.seeds = [20, "full"], [0, 1]
    config.recipes = [{"name": "base", "train": {}}, {"name": "slow", "train": {"lr": 1e-5}},
                      {"name": "deeper", "train": {"student_kwargs": {"depth": 2}}}]
    config.recipe_methods = ["random"]
    from rich.console import Console

    console = Console(record=True, width=200, file=io.StringIO())
    paths = run_sweep(config.check(), console=console)
    return out, paths | {"printed": console.export_text()}


def test_seeds_draw_other_subsets_and_each_method_gets_a_verdict_against_random(seeded_sweep):
    import numpy as np

    out, paths = seeded_sweep
    orders = {s: np.load(out / "subsets" / f"random-s{s}" / "order.npy") for s in (0, 1)}
    assert set(orders[0][:20]) != set(orders[1][:20])
    starts = {s: np.load(out / "subsets" / f"kcenter-s{s}" / "order.npy")[0] for s in (0, 1)}
    assert starts[0] != starts[1]
    # and the sweep says how alike each method's seeds' subsets are
    shared = len(set(orders[0][:20]) & set(orders[1][:20])) / 20
    table = paths["printed"][paths["printed"].index("share of images two of a method's subsets"):].splitlines()
    header = [cell.strip() for cell in next(line for line in table if "random (2 subsets)" in line).split("┃")]
    row = [cell.strip() for cell in next(line for line in table if "│" in line and " 20 " in line).split("│")]
    assert row[header.index("random (2 subsets)")] == f"{shared:.3f}"
    run = json.loads((out / "runs" / "base" / "kcenter-k20-s1" / "run.json").read_text())
    assert run["subset"]["path"].endswith("kcenter-s1") and run["config"]["seed"] == 1
    result = json.loads(paths["comparison_json"].read_text())
    [v] = result["verdicts"]
    assert (v["recipe"], v["k"], v["method"], v["seeds"]) == ("base", 20, "kcenter", 2)
    assert v["knn_top1_low"] <= v["knn_top1_diff"] <= v["knn_top1_high"]
    assert v["knn_top1_verdict"] in ("better", "worse", "not resolved")
    table = paths["comparison_markdown"].read_text()
    assert "## Against random (paired by seed and test image)" in table
    assert f"- kcenter (base) against random (k-NN top-1): {v['knn_top1_verdict']} at k = 20" in table
    [row] = list(csv.DictReader(open(paths["comparison_verdicts_csv"])))
    assert row["knn_top1_verdict"] == v["knn_top1_verdict"] and "knn_top1_low" in row
    summary = list(csv.DictReader(open(paths["comparison_summary_csv"])))
    assert {"knn_top1_low", "knn_top1_high", "probe_top1_low"} <= set(summary[0])


def test_a_sweep_with_full_trains_on_the_whole_corpus_at_the_same_step_budget(seeded_sweep):
    out, paths = seeded_sweep
    full = json.loads((out / "runs" / "base" / "full-s0" / "run.json").read_text())
    small = json.loads((out / "runs" / "base" / "random-k20-s0" / "run.json").read_text())
    assert full["subset"]["k"] == 120 and full["subset"]["full"] and not small["subset"]["full"]
    assert full["steps"] == small["steps"] == 4 and full["samples_seen"] == small["samples_seen"]
    assert len(list((out / "targets").iterdir())) == 5  # kcenter and random for two seeds, and one full cache
    rows = list(csv.DictReader(open(paths["comparison_csv"])))
    assert sorted(r["seed"] for r in rows if r["recipe"] == "slow" and r["k"] == "full") == ["0", "1"]
    # each subset against its recipe's full corpus, paired by seed
    gaps = json.loads(paths["comparison_json"].read_text())["gaps_to_full"]
    assert sorted((g["recipe"], g["method"], g["k"], g["seeds"]) for g in gaps) == [
        ("base", "kcenter", 20, 2), ("base", "random", 20, 2), ("deeper", "random", 20, 2), ("slow", "random", 20, 2)]
    assert all(g["knn_top1_low"] <= g["knn_top1_diff"] <= g["knn_top1_high"] for g in gaps)
    table = paths["comparison_markdown"].read_text()
    assert "## Against the full corpus (paired by seed and test image)" in table
    assert "- random (base) against the full corpus (k-NN top-1): " in table
    assert len(list(csv.DictReader(open(paths["comparison_gaps_csv"])))) == 4
    # each recipe against the sweep's first, on the method and ks they share
    recipes = json.loads(paths["comparison_json"].read_text())["recipe_verdicts"]
    assert {(r["recipe"], r["method"], r["k"], r["against"]) for r in recipes} == {
        ("deeper", "random", 20, "base"), ("deeper", "full", "full", "base"),
        ("slow", "random", 20, "base"), ("slow", "full", "full", "base")}
    assert "## Recipes against base (paired by seed and test image)" in table
    assert "- slow against base on random (k-NN top-1): " in table
    assert "- slow against base on the full corpus (k-NN top-1): " in table


def test_a_sweep_of_the_full_corpus_alone_trains_it_and_reports_no_subset_coverage(tmp_path, image_folder):
    # the full-corpus runs a study lacks, trained alone into its folder: there is no subset to report coverage of
    config = _sweep(tmp_path / "sw", image_folder)
    config.methods, config.ks = ["random"], ["full"]
    paths = run_sweep(config.check())
    assert [p.name for p in paths["runs"]] == ["full-s0"]
    assert json.loads((paths["runs"][0] / "run.json").read_text())["subset"]["full"]
    assert not (tmp_path / "sw" / "coverage.png").exists() and paths["comparison_csv"].exists()


def test_rank_correlations_between_small_k_and_full_data_come_with_intervals(seeded_sweep):
    out, paths = seeded_sweep
    ranks = json.loads(paths["comparison_json"].read_text())["rank_correlations"]
    [r] = ranks  # only random subsets are shared by all three recipes
    assert (r["method"], r["k"], r["recipes"], r["seeds"]) == ("random", 20, 3, 2)
    assert -1 <= r["low"] <= r["spearman"] <= r["high"] <= 1
    assert paths["comparison_recipes_plot"].read_bytes()[:4] == b"\x89PNG"
    assert "rank recipes as the full corpus does" in paths["comparison_markdown"].read_text()


def test_compare_takes_the_recipe_to_compare_the_others_with(seeded_sweep, tmp_path):
    out, paths = seeded_sweep
    res = run_cli("compare", *paths["runs"], "--out", tmp_path / "cmp", "--baseline-recipe", "slow")
    assert res.returncode == 0
    recipes = json.loads((tmp_path / "cmp" / "results.json").read_text())["recipe_verdicts"]
    assert {r["against"] for r in recipes} == {"slow"} and {r["recipe"] for r in recipes} == {"base", "deeper"}
    res = run_cli("compare", *paths["runs"], "--out", tmp_path / "cmp2", "--baseline-recipe", "fast")
    assert res.returncode == 2 and "no runs of recipe 'fast'" in error_line(res) and "base, deeper, slow" in error_line(res)


def test_the_missing_verdicts_note_appears_only_where_another_method_was_there_to_compare(seeded_sweep, tmp_path):
    runs = seeded_sweep[1]["runs"]
    alone = compare_runs([r for r in runs if "kcenter" not in r.name], tmp_path / "alone")
    assert "no verdicts" not in alone["markdown"].read_text()  # random and full only: nothing was to be compared
    without = compare_runs([r for r in runs if "random" not in r.name], tmp_path / "without")
    assert "no verdicts: no method has runs beside random" in without["markdown"].read_text()


def test_comparing_an_eval_without_per_image_results_asks_for_re_evaluation(sweep, tmp_path):
    import shutil

    old = tmp_path / "old-run"
    shutil.copytree(sweep[1]["runs"][0], old)
    ev = json.loads((old / "eval.json").read_text())
    del ev["student"]["correct"]  # as an older version wrote it
    (old / "eval.json").write_text(json.dumps(ev))
    res = run_cli("compare", old, sweep[1]["runs"][1], "--out", tmp_path / "cmp")
    assert res.returncode == 2 and "has no per-image results" in error_line(res) and "distill eval --run" in error_line(res)


def test_the_example_sweep_file_and_the_shipped_study_load_and_plan_their_runs(tmp_path):
    from distill.sweep_config import example_sweep_file, planned_runs

    (tmp_path / "example.yaml").write_text(example_sweep_file())
    example = SweepConfig.load(tmp_path / "example.yaml")
    lines = example_sweep_file().splitlines()  # each setting with its comment from SweepConfig's source
    assert 'ks: [100, 300, 1000, full]  # subset sizes; "full" is the whole corpus' in lines
    assert lines[lines.index("parallel_runs: 1") - 3].startswith("# Runs trained side by side")
    assert len(planned_runs(example)) == 3 * (6 * 3 + 1) + 2 * 3 * (3 + 1)  # recipes x seeds x (methods x k + full)
    study = SweepConfig.load(ROOT / "studies" / "cifar10.yaml")
    assert set(study.methods) == {"kcenter", "kmeans", "kmeans-random", "prototypes", "random"}
    assert study.ks == [100, 300, 1000, 3000, "full"] and len(study.seeds) == 3 and len(study.recipes) >= 4
    # the study of the current recipe trains the demo's students at the demo's budgets
    from distill.demo import DemoConfig

    current, demo = SweepConfig.load(ROOT / "studies" / "cifar10-current.yaml"), DemoConfig()
    assert current.train == demo.train and current.teacher_layers == list(demo.teacher_layers)
    assert all(current.steps_by_k[k] == steps for k, steps in demo.steps_by_k.items())
    assert len(planned_runs(current)) == 3 * (5 * 4 + 1)
    # the full-data reference at 3x the budget: the same students on the current study's random subsets
    budget = SweepConfig.load(ROOT / "studies" / "cifar10-budget.yaml")
    assert budget.train == demo.train and budget.teacher_layers == current.teacher_layers
    assert [r["train"] for r in budget.recipes] == [{"steps": 3 * current.steps_by_k["full"]}]
    assert (budget.methods, budget.seeds, budget.ks) == (["random"], current.seeds, [300, 1000, 3000, "full"])
    assert len(planned_runs(budget)) == 3 * (3 + 1)
    # the other selection methods at that budget, compared with the budget study's random and full-corpus runs
    methods = SweepConfig.load(ROOT / "studies" / "cifar10-budget-methods.yaml")
    assert (methods.train, methods.recipes, methods.seeds) == (budget.train, budget.recipes, budget.seeds)
    assert "random" not in methods.methods and set(methods.methods) < set(current.methods)
    assert set(methods.ks) < set(budget.ks) and methods.teacher_layers == budget.teacher_layers
    assert len(planned_runs(methods)) == 3 * 3 * 2
    # and three times longer again, on the same random subsets
    long = SweepConfig.load(ROOT / "studies" / "cifar10-budget-long.yaml")
    from distill.train import OPERATIONAL

    def computing(train: dict) -> dict:  # the settings that change what a run computes
        return {k: v for k, v in train.items() if k not in OPERATIONAL}

    assert (computing(long.train), long.methods, long.seeds) == (computing(budget.train), budget.methods, budget.seeds)
    assert [r["train"] for r in long.recipes] == [{"steps": 3 * budget.recipes[0]["train"]["steps"]}]
    assert long.ks == [1000, 3000, "full"] and len(planned_runs(long)) == 3 * 3
    # recipes close together, each one change to the demo's, on the current study's random subsets and budgets
    recipes = SweepConfig.load(ROOT / "studies" / "cifar10-recipes.yaml")
    assert recipes.train == demo.train and recipes.methods == ["random"] and recipes.ks == [100, 300, 1000, "full"]
    assert all(recipes.steps_by_k[k] == current.steps_by_k[k] for k in recipes.ks)
    for recipe in recipes.recipes:
        [(setting, value)] = recipe["train"].items()
        assert demo.train.get(setting, getattr(TrainConfig(), setting)) != value, recipe["name"]
    assert len(planned_runs(recipes)) == 3 * 3 * (3 + 1)
    # the current study's questions over a corpus five times as large, and its budget rule put to a test there; their
    # corpus (CIFAR-10's 50,000 training images) is not shipped, so every other setting is checked against the
    # shipped corpus
    from distill.config import read_yaml_mapping

    def without_its_corpus(name: str) -> tuple[str, SweepConfig]:
        values = read_yaml_mapping(ROOT / "studies" / name, "sweep")
        return values["source"], SweepConfig(**(values | {"source": "builtin:cifar10-demo"})).check(name)

    source, large = without_its_corpus("cifar10-50k.yaml")
    assert (large.train, large.teacher_layers, large.seeds) == (demo.train, current.teacher_layers, current.seeds)
    assert all(large.steps_by_k[k] == current.steps_by_k[k] for k in large.ks)
    assert (large.methods, large.ks) == (["kcenter", "kmeans", "random"], [100, 300, 1000, "full"])
    budget_source, large_budget = without_its_corpus("cifar10-50k-budget.yaml")
    assert (large_budget.train, budget_source, large_budget.recipes) == (large.train, source, budget.recipes)
    assert (large_budget.methods, large_budget.ks) == (["random"], [10000, "full"])
    # more seeds for the one lead that held alone there, on fresh subsets: read beside its seeds, nothing else differs
    seeds_source, large_seeds = without_its_corpus("cifar10-50k-seeds.yaml")
    assert (large_seeds.train, seeds_source, large_seeds.teacher_layers) == (large.train, source, large.teacher_layers)
    assert (large_seeds.methods, large_seeds.ks) == (["kmeans", "random"], [1000])
    assert large_seeds.steps_by_k[1000] == large.steps_by_k[1000] and not set(large_seeds.seeds) & set(large.seeds)
    # nine seeds for kcenter against random there: its first three seeds are the study's runs again, the rest fresh
    kcenter_source, kcenter_seeds = without_its_corpus("cifar10-50k-kcenter-seeds.yaml")
    assert (kcenter_seeds.train, kcenter_source, kcenter_seeds.teacher_layers) == (large.train, source,
                                                                                   large.teacher_layers)
    assert (kcenter_seeds.methods, kcenter_seeds.ks, kcenter_seeds.steps_by_k) == (["kcenter", "random"], [1000],
                                                                                   {1000: large.steps_by_k[1000]})
    assert kcenter_seeds.seeds[:3] == large.seeds and len(kcenter_seeds.seeds) == 9


def test_the_self_supervision_studies_differ_from_the_ones_they_extend_in_what_they_ask_only():
    from dataclasses import replace

    long = SweepConfig.load(ROOT / "studies" / "objectives-long.yaml")
    methods = SweepConfig.load(ROOT / "studies" / "objectives-long-methods.yaml")
    more = SweepConfig.load(ROOT / "studies" / "objectives-long-methods-seeds.yaml")
    # more seeds for the same two cells, read beside the first three: fresh seeds, nothing else differs
    assert replace(more, out=methods.out, seeds=methods.seeds) == methods and not set(more.seeds) & set(methods.seeds)
    variance = SweepConfig.load(ROOT / "studies" / "objectives-long-variance.yaml")
    [local_global] = [r for r in long.recipes if r["name"] == "local-global"]
    [stronger] = variance.recipes
    # the same run but for the two weights, so the two pair by test image (same random subset, seed and student)
    assert stronger["train"] == local_global["train"] | {"w_variance": 25.0, "w_covariance": 1.0}
    assert replace(variance, out=long.out, recipes=long.recipes, parallel_runs=long.parallel_runs) == long


@pytest.mark.parametrize("where", ["run", "inside", "parent"])
def test_export_onto_inside_or_around_its_run_is_refused_and_the_run_kept(sweep, tmp_path, where):
    import shutil

    run = tmp_path / "runs" / "r"
    shutil.copytree(sweep[1]["runs"][0], run)
    out = {"run": run, "inside": run / "hub", "parent": tmp_path / "runs"}[where]
    res = run_cli("export", "--run", run, "--out", out, "--overwrite")
    assert res.returncode == 2 and "export to a folder outside it" in error_line(res)
    assert (run / "run.json").exists() and (run / "student.safetensors").exists()


def test_export_overwrite_replaces_an_earlier_export_but_never_a_folder_of_other_files(sweep, tmp_path):
    run = sweep[1]["runs"][0]
    mine = tmp_path / "models"
    (mine / "other-model").mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    res = run_cli("export", "--run", run, "--out", mine, "--overwrite")
    assert res.returncode == 2 and "--overwrite replaces an earlier export only" in error_line(res)
    assert "notes.txt, other-model" in error_line(res) and (mine / "notes.txt").read_text() == "mine"
    earlier = export_run(run, tmp_path / "hub")
    (earlier / "model.safetensors").write_bytes(b"stale")
    assert run_cli("export", "--run", run, "--out", earlier, "--overwrite").returncode == 0
    assert load_file(earlier / "model.safetensors")  # the stale export replaced whole
    (tmp_path / "a-file").write_text("x")
    res = run_cli("export", "--run", run, "--out", tmp_path / "a-file", "--overwrite")
    assert res.returncode == 2 and "is a file, not a folder" in error_line(res)


def test_failures_from_the_users_files_end_in_one_line_naming_the_file(sweep, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(sweep[1]["runs"][0], run)
    weights = run / "student.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    for cmd in (["eval", "--run", run, "--test-source", "builtin:cifar10-demo-test"],
                ["export", "--run", run, "--out", tmp_path / "hub"]):
        res = run_cli(*cmd)
        assert res.returncode == 2 and f"{weights}: damaged" in error_line(res) and "Traceback" not in res.stderr
    (tmp_path / "file").write_text("not a folder")
    res = run_cli("subset", "embed", "--source", "builtin:cifar10-demo-test", "--out", tmp_path / "file" / "emb")
    assert res.returncode == 2 and str(tmp_path / "file") in error_line(res) and "Traceback" not in res.stderr


def test_eval_needs_a_test_source_except_for_the_demo_corpus_and_the_old_flag_still_works(sweep, tmp_path):
    import shutil

    from distill.evaluate import run_corpus

    run = tmp_path / "run"
    shutil.copytree(sweep[1]["runs"][0], run)
    assert run_corpus(run).endswith("images")  # a folder corpus: no known test split
    res = run_cli("eval", "--run", run)
    assert res.returncode == 2 and "give --test-source" in error_line(res)
    res = run_cli("eval", "--run", run, "--test-source", tmp_path / "missing")  # refused before any features are made
    assert res.returncode == 2 and str(tmp_path / "missing") in error_line(res)
    assert "student on" not in res.stdout + res.stderr
    res = run_cli("eval", "--run", run, "--test-source", "builtin:cifar10-demo-test", "--train-source",
                  "builtin:cifar10-demo-test", "--train-samples", "100")  # every test image in the k-NN memory
    assert res.returncode == 2 and "the test images are those of --train-source" in error_line(res)
    old = run_cli("eval", "--run", run, "--source", "builtin:cifar10-demo-test", "--train-source",
                  "builtin:cifar10-demo", "--train-samples", "100", "--test-samples", "50", "--no-teacher")
    assert old.returncode == 0 and "`distill eval --source` is deprecated" in old.stderr
    result = json.loads((run / "eval.json").read_text())
    assert result["eval_set"]["test_source"] == "builtin:cifar10-demo-test"
    # the printed table puts the student beside its floor, the figures those of eval.json
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in old.stdout.splitlines() if "│" in line]
    knn = {row[0]: row[1] for row in cells if row[1]}  # a label a narrow terminal wraps keeps its figures on line one
    assert knn["student"] == f"{result['student']['knn_top1']:.3f}" and "50 test images" in old.stdout
    assert next(v for label, v in knn.items() if label.startswith("untrained")) == f"{result['untrained']['knn_top1']:.3f}"
    assert "parameters" in old.stdout and amount(result["cost"]["student"]["params"]) in old.stdout  # and what it costs
    assert result["cost"]["teachers"] == {}  # --no-teacher: no teacher loaded
    # so the teacher's part of the run's compute, and its total, are not known: said, not taken for zero
    account = result["cost"]["compute"]
    assert account["teacher"] is None and account["total"] is None and account["training"] > 0
    assert "compute this run" in old.stdout


def test_a_run_made_before_a_setting_existed_counts_as_finished_at_that_settings_default(sweep, tmp_path, image_folder):
    import shutil

    from distill.sweep import is_finished as _finished
    from distill.sweep import settings_differing

    out, paths = sweep
    config = _sweep(out, image_folder)
    run = tmp_path / paths["runs"][0].name
    shutil.copytree(paths["runs"][0], run)
    record = json.loads((run / "run.json").read_text())
    method, k = record["subset"]["method"], record["subset"]["k"]
    train_config = config.train_config(out / "targets" / f"{method}-s0", k, 0, run)
    assert _finished(run, train_config, config.eval_config())
    del record["config"]["ema_warmup"]  # as a version before that setting wrote it
    (run / "run.json").write_text(json.dumps(record))
    assert _finished(run, train_config, config.eval_config())
    record["config"]["lr"] = 0.5  # but other settings are other runs
    (run / "run.json").write_text(json.dumps(record))
    assert not _finished(run, train_config, config.eval_config())
    assert settings_differing(run, train_config) == ["lr"]
    record["config"]["sharpness"] = 2.0  # and so are settings this version does not know
    (run / "run.json").write_text(json.dumps(record))
    assert settings_differing(run, train_config) == ["settings of another version (unknown setting(s) sharpness)"]


def test_the_plan_says_where_each_run_stands_and_an_edited_sweep_file_is_refused_before_any_work(tmp_path,
                                                                                                  image_folder,
                                                                                                  monkeypatch):
    import shutil
    from dataclasses import asdict

    import yaml

    from distill.sweep_plan import evaluation_left, plan_runs, time_left

    copy = tmp_path / "sw"
    config = _sweep(copy, image_folder)
    assert [p.status for p in plan_runs(config)] == ["to train"] * 4
    run_sweep(config)
    assert [p.status for p in plan_runs(config)] == ["done"] * 4
    shutil.rmtree(copy / "runs" / "kcenter-k40-s0")
    (copy / "runs" / "random-k20-s0" / "eval.json").unlink()
    started = copy / "runs" / "random-k40-s0"
    record = json.loads((started / "run.json").read_text()) | {"complete": False}
    shutil.rmtree(started)
    started.mkdir()
    (started / "run.json").write_text(json.dumps(record))  # a run stopped before its first checkpoint
    planned = plan_runs(config)
    assert [(p.method, p.k, p.status, p.steps_left) for p in planned] == [
        ("kcenter", 20, "done", 0), ("kcenter", 40, "to train", 4), ("random", 20, "to evaluate", 0),
        ("random", 40, "under way", 4)]
    seconds, _ = time_left(planned, parallel_runs=1)
    paces = [p.seconds_per_step for p in planned if p.seconds_per_step]
    assert len(paces) == 2 and seconds == pytest.approx(8 * sum(paces) / 2)  # 8 steps left at the median pace
    # evaluation: three runs left, each at the time the one evaluation done here took
    took = json.loads((copy / "runs" / "kcenter-k20-s0" / "eval.json").read_text())["seconds"]
    assert evaluation_left(planned) == (pytest.approx(3 * took), 3)
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(asdict(config)))
    monkeypatch.delenv("COLUMNS", raising=False)
    res = run_cli("sweep", "--config", tmp_path / "sweep.yaml", "--plan")  # into a log: no cell cut or folded
    assert res.returncode == 0 and "4 run(s): 1 done, 1 to evaluate, 1 under way, 1 to train; 8 steps left" in res.stdout
    header = next(line for line in res.stdout.splitlines() if "method" in line)
    assert [h.strip() for h in header.strip("┃ ").split("┃")] == ["method", "k", "seeds", "steps", "passes per image",
                                                                 "done", "to evaluate", "under way", "to train"]
    # the file edited (k = 20 now trains 6 steps): its finished runs are other runs, refused before anything is made
    config.steps_by_k = {20: 6}
    assert [p.status for p in plan_runs(config.check())][::2] == ["other settings"] * 2
    with pytest.raises(InputError, match=r"kcenter-k20-s0: holds a finished run of other settings \(differs in "
                                         r"steps\); move it away or choose another out"):
        run_sweep(config)
    assert not (copy / "runs" / "kcenter-k40-s0").exists() and not (copy / "runs" / "random-k20-s0" / "eval.json").exists()


def test_a_manifest_written_before_the_device_setting_is_reused_as_a_cpu_selection():
    from types import SimpleNamespace

    from distill.sweep import _same_selection
    from subsets.make_subset import SelectConfig

    old = {"method": "kcenter", "k_max": 50, "seed": 0, "dedup": None, "clusters": None, "niter": 20, "report_k": None}
    manifest = SimpleNamespace(meta={"params": old, "corpus_size": 200, "dedup": None}, order=np.arange(50))
    assert _same_selection(manifest, SelectConfig(k_max=50))
    assert not _same_selection(manifest, SelectConfig(k_max=50, device="cuda"))
    manifest.meta["params"] = old | {"device": "cuda"}
    assert not _same_selection(manifest, SelectConfig(k_max=50))


def test_a_sweeps_resample_steps_reach_kmeans_resampled_alone_so_the_other_subsets_stay_reusable(image_folder):
    from dataclasses import asdict
    from types import SimpleNamespace

    from distill.sweep import _same_selection, selection_configs
    from subsets.make_subset import SelectConfig

    config = SweepConfig(source=str(image_folder), methods=["kmeans", "kmeans-resampled", "random"], ks=[20],
                         seeds=[0, 1], resample_steps=3, eval=EVAL).check()
    wanted = selection_configs(config)
    assert sorted(wanted) == sorted(f"{m}-s{s}" for m in config.methods for s in (0, 1))
    assert {w.resample_steps for name, w in wanted.items() if name.startswith("kmeans-resampled")} == {3}
    assert {w.resample_steps for name, w in wanted.items() if not name.startswith("kmeans-resampled")} == {10}
    # a kmeans subset made before the setting existed (no resample_steps among its parameters) is still the same
    old = {k: v for k, v in asdict(wanted["kmeans-s0"]).items() if k != "resample_steps"}
    manifest = SimpleNamespace(meta={"params": old, "corpus_size": 120, "dedup": None}, order=np.arange(20))
    assert _same_selection(manifest, wanted["kmeans-s0"])
    assert not _same_selection(SimpleNamespace(meta={**manifest.meta, "params": asdict(SelectConfig(
        method="kmeans-resampled", k_max=20, seed=0))}, order=manifest.order), wanted["kmeans-resampled-s0"])


def test_a_sweep_imports_an_ordering_made_elsewhere_per_seed_and_refuses_a_bad_one(tmp_path, image_folder):
    from accelerate import Accelerator
    from rich.console import Console

    from distill.sweep import planned_runs, select_subsets
    from subsets.errors import InputError
    from subsets.sources import open_source

    keys = [key for key, _ in open_source(image_folder).index()]
    (tmp_path / "orders{a,b}").mkdir()  # braces of its own in the path
    for seed, picks in ((0, keys[::-1][:30]), (1, keys[5:35])):
        (tmp_path / "orders{a,b}" / f"mine-s{seed}.txt").write_text("".join(k + "\n" for k in picks))
    pattern = str(tmp_path / "orders{a,b}" / "mine-s{seed}.txt")
    settings = dict(out=str(tmp_path / "sw"), source=str(image_folder), encoder_resolution=32, ks=[20],
                    seeds=[0, 1], imported={"mine": pattern}, eval=EVAL)
    config = SweepConfig(methods=["random", "mine"], **settings).check()
    assert {(m, s) for _, _, m, k, s in planned_runs(config)} == {(m, s) for m in ("random", "mine") for s in (0, 1)}
    console, acc = Console(record=True, width=160), Accelerator(cpu=True)
    manifests = select_subsets(config, tmp_path / "sw", acc, console)
    assert manifests["mine-s0"].keys == keys[::-1][:30] and manifests["mine-s1"].keys == keys[5:35]
    assert manifests["mine-s1"].method == "mine" and manifests["mine-s1"].meta["seed"] == 1
    assert len(manifests["random-s0"].order) == 20
    select_subsets(config, tmp_path / "sw", acc, console)
    assert "mine (seed 0): reusing" in console.export_text()
    (tmp_path / "orders{a,b}" / "mine-s0.txt").write_text("".join(k + "\n" for k in keys[:30]))  # another ordering
    with pytest.raises(InputError, match="another key file"):
        select_subsets(config, tmp_path / "sw", acc, console)
    # refused before any work: a missing file, too few keys for the largest k, a name of ours, an unknown method
    (tmp_path / "orders{a,b}" / "x0.txt").write_text("".join(k + "\n" for k in keys[:30]))  # x1.txt is missing
    bad = {"for seed 1: .* is not a file": dict(settings, imported={"mine": str(tmp_path / "orders{a,b}" / "x{seed}.txt")}),
           "lists 30 keys, fewer than the sweep's largest k": dict(settings, ks=[40]),
           "give it a name of its own": dict(settings, imported={"kcenter": pattern})}
    for message, values in bad.items():
        with pytest.raises(InputError, match=message):
            SweepConfig(methods=["random", "mine" if "kcenter" not in values["imported"] else "kcenter"],
                        **values).check()
    with pytest.raises(InputError, match="or name an ordering under imported"):
        SweepConfig(methods=["random", "theirs"], **settings).check()


# the sweep ends cleanly, or is gone without a word; or a batch system's notice reaches every process of the job
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL", "SIGTERM to all"])
def test_workers_training_side_by_side_checkpoint_and_end_when_their_sweep_is_killed(sweep, tmp_path, image_folder,
                                                                                     how):
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time
    from dataclasses import asdict

    import yaml

    from distill.run_dir import steps_checkpointed

    out = tmp_path / "sw"
    shutil.copytree(sweep[0], out, ignore=shutil.ignore_patterns("runs"))  # embedded, selected and cached already
    config = asdict(_sweep(out, image_folder)) | {"parallel_runs": 2, "recipes": [{"name": "long",
                                                                                  "train": {"steps": 10**6}}]}
    config["train"]["checkpoint_every"] = 10**6  # a checkpoint on the way would be the stop's own
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))
    job = subprocess.Popen([sys.executable, "-m", "distill", "sweep", "--config", str(tmp_path / "sweep.yaml")],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(locks := list((out / "runs" / "long").glob(".*.lock"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        workers = {json.loads(lock.read_text())["pid"] for lock in locks}
        assert len(workers) == 2 and job.pid not in workers  # each run's lock is held by its worker
        while len(list((out / "runs" / "long").glob("*/metrics.jsonl"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # both training: a worker still setting up has no step to keep
        job.send_signal(getattr(signal, how.split()[0]))  # not Ctrl-C, which reaches the workers too
        for pid in workers if how == "SIGTERM to all" else ():
            os.kill(pid, signal.SIGTERM)
        job.wait(timeout=60)
        deadline = time.monotonic() + 30
        while (left := [pid for pid in workers if _running(pid)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"workers {left} go on training after their sweep was killed"
        # each stopped at its step's end with a checkpoint there, and released its run
        runs = sorted((out / "runs" / "long").iterdir())
        assert len(runs) == 2 and all(steps_checkpointed(run) > 0 for run in runs)
        assert not list((out / "runs" / "long").glob(".*.lock"))
        if how != "SIGKILL":  # the sweep itself unwound: its exit code says why, and it let go of its folder
            assert job.returncode == 128 + signal.SIGTERM and not (tmp_path / ".sw.lock").exists()
    finally:
        job.kill()
        for pid in workers if "workers" in locals() else ():
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has ended, awaiting its reaper
        return f.read().split(") ")[1][0] != "Z"


def test_before_any_run_finished_the_plan_times_the_rest_by_the_pace_the_runs_under_way_logged(tmp_path):
    from distill.sweep_plan import PlannedRun, _logged_pace, time_left

    run = tmp_path / "random-k20-s0"
    run.mkdir()
    logs = [{"step": 0, "images_per_s": 1.0}] + [{"step": s, "images_per_s": r} for s, r in
                                                  [(50, 150.0), (100, 160.0), (150, 170.0)]]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in logs) + '{"step": 200, "ima')
    pace = _logged_pace(run, batch_size=16)
    assert pace == pytest.approx(16 / 160)  # the median interval; not the start-up's, not the half-written line
    under_way = PlannedRun(None, "random", 20, 0, 1000, 16, 20, "under way", 1000, None, pace)
    to_train = PlannedRun(None, "random", 20, 1, 1000, 16, 20, "to train", 1000, None)
    seconds, said = time_left([under_way, to_train], parallel_runs=2)
    assert seconds == pytest.approx(2000 * 0.1 / 2) and "under way" in said
    done = PlannedRun(None, "random", 20, 2, 1000, 16, 20, "done", 0, 0.5)
    assert time_left([under_way, to_train, done], parallel_runs=2)[0] == pytest.approx(2000 * 0.5 / 2)
    assert time_left([to_train], parallel_runs=1) is None


def test_a_runs_last_logs_are_read_from_the_end_of_its_log_past_a_half_written_line(tmp_path):
    from distill.run_dir import last_logs

    assert last_logs(tmp_path) == []  # before its first log
    lines = [json.dumps({"step": s, "loss": 1.0 / (s + 1), "note": "x" * 100}) for s in range(0, 5000, 10)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 5000, "lo')
    assert (tmp_path / "metrics.jsonl").stat().st_size > 65536  # read from its end only
    assert [r["step"] for r in last_logs(tmp_path)] == [4990]
    assert [r["step"] for r in last_logs(tmp_path, 3)] == [4970, 4980, 4990]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines[:3]) + "\n")
    assert [r["step"] for r in last_logs(tmp_path, 5)] == [0, 10, 20]  # a short log whole, its first line too


def test_a_sweep_file_naming_its_folder_by_another_spelling_finds_its_runs_done(sweep, image_folder, tmp_path,
                                                                                monkeypatch):
    import os

    from distill.sweep_plan import plan_runs

    out, paths = sweep
    monkeypatch.chdir(tmp_path)
    config = _sweep(os.path.relpath(out, tmp_path), image_folder)  # ../../sweep0/sw for /tmp/.../sw
    assert [p.status for p in plan_runs(config)] == ["done"] * 4
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.parts[len(out.parts)] in
              ("embeddings", "subsets", "targets", "runs")}
    run_sweep(config)  # nothing to redo: no selection, cache, run or evaluation written again
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_a_sweep_folder_copied_elsewhere_finds_its_runs_done(sweep, image_folder, tmp_path):
    import shutil

    from distill.sweep_plan import plan_runs

    out, _ = sweep
    copy = tmp_path / "copied" / "sw"
    shutil.copytree(out, copy)
    config = _sweep(copy, image_folder)
    assert [p.status for p in plan_runs(config)] == ["done"] * 4
    stamps = {p: p.stat().st_mtime_ns for p in copy.rglob("*") if p.is_file() and p.parts[len(copy.parts)] in
              ("embeddings", "subsets", "targets", "runs")}
    run_sweep(config)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_comparing_some_classes_counts_only_their_test_images_floor_and_teacher_included(sweep, tmp_path):
    from subsets.sources import open_source, seeded_rows

    runs = sweep[1]["runs"]
    index = open_source(EVAL["test_source"]).index()
    labels = np.array([index[i][1] for i in seeded_rows(len(index), EVAL["test_samples"], 0)])
    head, tail = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]
    results = {}
    for name, classes in (("all", None), ("head", head), ("tail", ["dog", "Frog", "horse", "ship", "truck"])):
        args = ["--classes", ",".join(map(str, classes))] if classes else []  # by number, or by the source's names
        res = run_cli("compare", *runs, "--out", tmp_path / name, *args)
        assert res.returncode == 0, res.stderr
        results[name] = json.loads((tmp_path / name / "results.json").read_text())
    n_head, n_tail = int(np.isin(labels, head).sum()), int(np.isin(labels, tail).sum())
    assert n_head and n_tail and n_head + n_tail == len(labels)
    assert f"classes dog, frog, horse, ship, truck only ({n_tail} of {len(labels)})" in \
        (tmp_path / "tail" / "results.md").read_text()
    for run in runs:
        ev = json.loads((run / "eval.json").read_text())
        for who, scores in (("student", ev["student"]), ("untrained", ev["untrained"]),
                            ("teacher", ev["teachers"]["mobilenetv2_imagenet"])):
            correct = np.array([c == "1" for c in scores["correct"]["knn_top1"]])
            assert correct.mean() == pytest.approx(scores["knn_top1"])  # the per-image results are the score's own
            row = next(r for r in results["tail"]["runs"] if r["run"] == run.name)
            expected = correct[np.isin(labels, tail)].mean()
            got = {"student": row["knn_top1"], "untrained": row["untrained_knn_top1"],
                   "teacher": results["tail"]["references"]["teacher: mobilenetv2_imagenet"]["knn_top1"]}[who]
            assert got == pytest.approx(expected), who
        # the two groups make up the whole: their accuracies weighted by their images give the all-class one
        r = {name: next(x for x in results[name]["runs"] if x["run"] == run.name) for name in results}
        for m in ("knn_top1", "probe_top1", "untrained_knn_top1"):
            assert r["head"][m] * n_head + r["tail"][m] * n_tail == pytest.approx(r["all"][m] * len(labels))


def test_comparing_classes_the_test_set_lacks_or_evals_without_per_image_floors_is_one_line(sweep, tmp_path):
    import shutil

    runs = sweep[1]["runs"]
    res = run_cli("compare", *runs, "--out", tmp_path / "cmp", "--classes", "3,12")
    assert res.returncode == 2 and error_line(res) == (
        "error: compare: no test image of class 12 in builtin:cifar10-demo-test (its classes are 0, 1, 2, 3, 4, 5, 6, "
        "7, 8, 9)")
    res = run_cli("compare", *runs, "--out", tmp_path / "cmp", "--classes", "3,unicorn")
    assert res.returncode == 2 and error_line(res) == (
        "error: compare: no class named 'unicorn' in builtin:cifar10-demo-test (its classes are airplane, automobile, "
        "bird, cat, deer, dog, frog, horse, ship, truck)")
    assert not (tmp_path / "cmp").exists()
    old = tmp_path / runs[0].name
    shutil.copytree(runs[0], old)
    ev = json.loads((old / "eval.json").read_text())
    del ev["untrained"]["correct"]  # as an older version wrote it
    (old / "eval.json").write_text(json.dumps(ev))
    res = run_cli("compare", old, *runs[1:], "--out", tmp_path / "cmp", "--classes", "3")
    assert res.returncode == 2 and "no per-image results of the untrained student" in error_line(res)
    assert run_cli("compare", old, *runs[1:], "--out", tmp_path / "cmp").returncode == 0  # all classes need none


def test_the_compared_runs_say_when_they_were_trained_on_machines_that_round_otherwise():
    from subsets.provenance import environment, trained_by

    here = environment()
    assert here["cpu_kernels"]  # recorded beside every run: the model name alone hides AVX2 against AVX-512

    def run(name, **machine):  # a run.json record
        return {"invocations": [{"from_step": 0, "environment": {
            "code": {"version": "0.1.0", "commit": "a" * 40, "dirty": False}, "gpus": [], **machine}}]}

    same = [run("a", cpu="AMD EPYC", cpu_kernels="AVX2"), run("b", cpu="AMD EPYC", cpu_kernels="AVX2"),
            run("old", cpu="AMD EPYC")]  # made before the kernels were recorded: alike by what it names
    assert trained_by(same) == "Trained by code: aaaaaaaaaa (3 runs)."
    resumed = run("resumed", cpu="AMD EPYC", cpu_kernels="AVX2")
    resumed["invocations"].append({"from_step": 50, "environment": resumed["invocations"][0]["environment"]
                                   | {"code": {"version": "0.1.0", "commit": "b" * 40, "dirty": False}}})
    assert trained_by([*same, resumed]) == ("Trained by code: aaaaaaaaaa (4 runs); bbbbbbbbbb (1 run). Of 4 runs, 1 "
                                            "was resumed by other code and counts under each.")
    line = trained_by([*same, run("c", cpu="AMD EPYC", cpu_kernels="AVX512")])
    assert line.startswith("Trained by code: aaaaaaaaaa (4 runs). On more than one kind of machine (AMD EPYC, AVX2 "
                           "kernels: 2 runs; AMD EPYC: 1 run; AMD EPYC, AVX512 kernels: 1 run)")


def test_commands_that_only_read_settings_or_names_do_not_load_torch():
    """`distill sweep --example`, `distill train --example` and `distill teachers` answer in well under a second
    (7.7 s for the first before 2026-12-03): none of them may import torch, which alone takes 2-3 s a process."""
    import subprocess
    import sys

    code = ("import sys; from distill.cli import main\n"
            "for argv in (['sweep', '--example'], ['train', '--example'], ['teachers']):\n"
            "    assert main(argv) == 0, argv\n"
            "    assert 'torch' not in sys.modules, f'{argv} imported torch'\n")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert ran.returncode == 0, ran.stderr
    assert "methods:" in ran.stdout and "teachers by name" in ran.stdout


def test_a_teacher_evaluated_alone_scores_as_the_ceiling_row_of_runs_on_the_same_set(sweep, tmp_path, image_folder,
                                                                                      monkeypatch):
    from distill.eval_config import EvalConfig as Config
    from distill.teacher_eval import evaluate_teachers

    run = sweep[1]["runs"][0]
    ev = json.loads((run / "eval.json").read_text())
    alone = evaluate_teachers(["mobilenetv2_imagenet"], Config(**EVAL), resolution=64, out=tmp_path / "teachers.json")
    assert alone["eval_set"] == ev["eval_set"]
    assert alone["teachers"]["mobilenetv2_imagenet"]["correct"] == ev["teachers"]["mobilenetv2_imagenet"]["correct"]
    assert alone["teachers"]["mobilenetv2_imagenet"]["cost"] == ev["cost"]["teachers"]["mobilenetv2_imagenet"]
    assert json.loads((tmp_path / "teachers.json").read_text())["teachers"].keys() == {"mobilenetv2_imagenet"}
    # from the command line, beside a random network: the real teacher leads, its lead's interval excludes zero
    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1, num_classes=0)
    timm.models.save_for_hf(vit, str(tmp_path / "random-vit"), model_args={"img_size": 32, "patch_size": 8, "depth": 1})
    sources = ["--test-source", EVAL["test_source"], "--train-source", EVAL["train_source"],
               "--test-samples", str(EVAL["test_samples"]), "--train-samples", str(EVAL["train_samples"])]
    res = run_cli("eval", "--teacher", "mobilenetv2_imagenet", "--teacher", tmp_path / "random-vit", *sources,
                  "--out", tmp_path / "two.json")
    assert res.returncode == 0, res.stderr
    two = json.loads((tmp_path / "two.json").read_text())
    knn = two["teachers"]["mobilenetv2_imagenet"]["knn_top1"]
    assert knn > two["teachers"][str(tmp_path / "random-vit")]["knn_top1"]
    assert "k-NN against the best, mobilenetv2_imagenet" in res.stdout and "│ worse" in res.stdout
    # bad input: no train source for a test set of unknown origin
    res = run_cli("eval", "--teacher", "mobilenetv2_imagenet", "--test-source", image_folder)
    assert res.returncode == 2 and "give --test-source (labelled held-out images) and --train-source" in error_line(res)
    # a name that cannot load is refused before any teacher's features are made, not after the first one's work
    import distill.evaluate

    def no_work(*args, **kwargs):
        raise AssertionError("features made before every teacher was checked")

    monkeypatch.setattr(distill.evaluate, "extract", no_work)
    for bad, message in (("dinov9_vits14", "dinov9_vits14: unknown teacher"),
                         ("timm:not_a_model", "timm:not_a_model: unknown timm model name")):
        with pytest.raises(InputError, match=message):
            evaluate_teachers(["mobilenetv2_imagenet", bad], Config(**EVAL))


def test_a_comparison_says_where_every_seed_trained_on_one_subset():
    """Seeds that share one subset vary the student only: the interval then leaves out which subset a method draws,
    which is what a selection method is compared on; the comparison says so, per cell."""
    from distill.compare_stats import shared_subset_note

    def rec(method, seed, subset_hash, k=100):
        return Path("r"), {}, {"config": {"seed": seed, "recipe": None}, "objective": "distill",
                               "subset": {"method": method, "k": k, "hash": subset_hash, "full": False}}

    own = [rec("random", s, f"random-s{s}") for s in range(3)]
    assert shared_subset_note(own) is None  # as a sweep draws them
    one = [rec("kcenter", s, "kcenter-s0") for s in range(3)]
    note = shared_subset_note(own + one + [rec("kcenter", 0, "kcenter-s0", k=300)])  # one seed at 300: no interval
    assert note.startswith("One subset for every seed: kcenter k = 100.")
