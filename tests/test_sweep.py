"""Sweeps end to end, comparison, export to timm, and their bad input."""

import csv
import json

import pytest
import timm
import torch

from distill.compare import compare_runs
from distill.config import TrainConfig
from distill.evaluate import EvalConfig, evaluate_run, load_run
from distill.export import export_run
from distill.sweep import SweepConfig, run_sweep
from subsets.errors import InputError

from .helpers import error_line, run_cli

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
    with open(paths["comparison_csv"]) as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["method"], int(r["k"])) for r in rows) == [("kcenter", 20), ("kcenter", 40), ("random", 20),
                                                                ("random", 40)]
    assert all(r["steps"] == "4" for r in rows)
    assert paths["comparison_plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = paths["comparison_markdown"].read_text()
    assert "teacher: mobilenetv2_imagenet" in table and "| untrained student |" in table  # ceiling and floor rows
    assert all(0 < float(r["untrained_knn_top1"]) < 1 for r in rows)
    # one cache per method, made at the largest k and read by both k
    assert sorted(p.name for p in (out / "targets").iterdir()) == ["kcenter", "random"]
    assert json.loads((out / "targets" / "kcenter" / "index.json").read_text())["k"] == 40


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
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    student, record = load_run(run)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), student.student.features(x))
    cfg = timm.data.resolve_data_config(model=model)
    assert cfg["input_size"] == (3, 32, 32) and tuple(cfg["mean"]) == tuple(record["student"]["mean"])
    card = (folder / "README.md").read_text()
    assert "library_name: timm" in card and f"{record['subset']['method']} subset" in card and "k-NN top-1" in card


def test_comparing_runs_evaluated_on_different_sets_is_refused(sweep, tmp_path):
    import shutil

    runs = sweep[1]["runs"][:2]
    other = tmp_path / runs[1].name
    shutil.copytree(runs[1], other)
    evaluate_run(other, EvalConfig(**(EVAL | {"test_samples": 50, "teachers": False})))
    with pytest.raises(InputError, match="evaluated on another set.*test_samples"):
        compare_runs([runs[0], other], tmp_path / "cmp")


def test_exporting_or_evaluating_an_unfinished_run_says_so(tmp_path, sweep):
    from distill.train import train

    out, paths = sweep
    config = TrainConfig(out=str(tmp_path / "unfinished"), targets=[str(out / "targets" / "random")], k=20, steps=4,
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


@pytest.mark.parametrize("student", [{"stem": "scott", "patch_size": 8}, {"student": "resnet10t", "w_patch": 0.0}])
def test_scott_and_cnn_students_export_to_folders_timm_loads(sweep, tmp_path, student):
    import students  # noqa: F401  (registers vit_scott, as the model card says)
    from distill.train import train

    out, _ = sweep
    config = TrainConfig(**({"targets": [str(out / "targets" / "random")], "k": 20, "steps": 2, "batch_size": 8,
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
