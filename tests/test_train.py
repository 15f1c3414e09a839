"""The trainer: the loss falls, cached equals online, resume equals a straight run, 2 processes, 2 teachers, bad input."""

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from distill.config import TrainConfig
from distill.train import build_model, prepare_inputs, train
from subsets.errors import InputError
from subsets.manifest import read_manifest
from subsets.sources import open_source
from teachers import load_teacher
from teachers.cache import CacheConfig, cache_targets
from teachers.views import ViewPolicy

from .helpers import ACCELERATE_2PROC, ROOT, error_line, run_cli
from .helpers import run_metrics as _metrics

VIEWS = ViewPolicy(views=2, seed=5)


@pytest.fixture(scope="module")
def caches(tmp_path_factory, subsets_dir, image_folder):
    """Target caches of the 40-image kcenter subset: MobileNetV2 at 64 px (2x2 map), 96 px (3x3) and 32 px (1x1)."""
    root = tmp_path_factory.mktemp("targets")
    subset = read_manifest(subsets_dir / "kcenter")
    for res in (64, 96, 32):
        cache_targets(open_source(image_folder), subset, load_teacher("mobilenetv2_imagenet", resolution=res),
                      root / f"t{res}", config=CacheConfig(views=VIEWS, batch_size=16, shard_size=16))
    return root


def _config(tmp_path, caches, name="run", **kw) -> TrainConfig:
    base = dict(out=str(tmp_path / name), targets=[str(caches / "t64")], student_kwargs={"depth": 2}, batch_size=16,
                steps=10, workers=0, log_every=1, checkpoint_every=5, lr=1e-3)
    return TrainConfig(**(base | kw))


def test_total_loss_falls_clearly_within_50_steps(tmp_path, caches):
    config = _config(tmp_path, caches, steps=50, batch_size=32, checkpoint_every=50)
    run = train(config)
    assert TrainConfig.load(run / "run.json") == config  # the run's one record says how it was made
    losses = [m["loss"] for m in _metrics(run)]
    assert len(losses) == 50
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.75 * first, (first, last)  # measured: 4.57 -> 2.86
    record = json.loads((run / "run.json").read_text())
    assert record["complete"] and record["steps"] == 50 and record["subset"]["k"] == 40
    assert record["epochs"] == pytest.approx(50 * 32 / 80)  # 40 images x 2 views per epoch


def test_cached_and_online_targets_agree_when_the_teacher_runs_in_bf16(tmp_path, subsets_dir, image_folder, monkeypatch):
    """On a GPU every teacher runs under bf16 autocast; the cache and online training both leave that to the teacher's
    own forward (an autocast around the online pass alone made cached and online MobileNetV2 step-0 losses 0.3% apart
    on an H200). The CPU's bf16 autocast stands in for the GPU's."""
    from teachers.base import Teacher

    monkeypatch.setattr(Teacher, "autocast", lambda self, x: torch.autocast("cpu", dtype=torch.bfloat16))
    cache_targets(open_source(image_folder), read_manifest(subsets_dir / "kcenter"),
                  load_teacher("mobilenetv2_imagenet", resolution=64), tmp_path / "t64",
                  config=CacheConfig(views=VIEWS, batch_size=16, shard_size=16))
    cached = train(_config(tmp_path, tmp_path, "cached", steps=1, targets=[str(tmp_path / "t64")]))
    online = train(_config(tmp_path, tmp_path, "online", steps=1, targets=[], teacher="mobilenetv2_imagenet",
                           teacher_resolution=64, subset=str(subsets_dir / "kcenter"), views=2, view_seed=5))
    a, b = _metrics(cached)[0], _metrics(online)[0]
    assert {"mobilenetv2_imagenet/token", "loss"} <= a.keys()
    for name in ("mobilenetv2_imagenet/token", "mobilenetv2_imagenet/patch", "loss"):
        assert a[name] == pytest.approx(b[name], rel=1e-5), name


def test_cached_and_online_modes_give_the_same_loss_at_step_0(tmp_path, caches, subsets_dir):
    cached = train(_config(tmp_path, caches, "cached", steps=1))
    online = train(_config(tmp_path, caches, "online", steps=1, targets=[], teacher="mobilenetv2_imagenet",
                           teacher_resolution=64, subset=str(subsets_dir / "kcenter"), views=2, view_seed=5))
    a, b = _metrics(cached)[0], _metrics(online)[0]
    assert a.keys() == b.keys() and {"mobilenetv2_imagenet/token", "mobilenetv2_imagenet/patch"} <= a.keys()
    for name in a:
        if name.startswith("mobilenetv2") or name == "loss":
            assert a[name] == pytest.approx(b[name], rel=1e-5), name
    # a step's compute, counted while training: forward and backward (about 3x a forward pass, the heads' too),
    # and in online mode the teacher's pass over the step's 16 images on top
    from distill.model_cost import model_cost

    steps = [json.loads((run / "run.json").read_text())["macs_per_step"] for run in (cached, online)]
    student = model_cost(build_model(_config(tmp_path, caches), prepare_inputs(_config(tmp_path, caches)).teachers)
                         .student.timm_model, 32)["macs"]
    assert 3.0 < steps[0] / (16 * student) < 4.5  # measured: 3.62
    assert steps[1] - steps[0] == 16 * model_cost(load_teacher("mobilenetv2_imagenet", resolution=64), 64)["macs"]


def test_a_run_stopped_at_20_and_resumed_to_40_equals_a_straight_40_step_run(tmp_path, caches):
    kw = dict(steps=40, checkpoint_every=10, ema=0.9, normalize_targets=True)
    straight = train(_config(tmp_path, caches, "straight", **kw))
    config = _config(tmp_path, caches, "resumed", **kw)
    train(config, stop_after=20)
    assert json.loads((tmp_path / "resumed" / "run.json").read_text())["complete"] is False
    assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir()) == ["step-000010", "step-000020"]
    resumed = train(TrainConfig(**(config.to_dict() | {"workers": 2})), resume=True)  # loader workers change nothing
    a, b = load_file(straight / "student.safetensors"), load_file(resumed / "student.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    assert [m["loss"] for m in _metrics(straight)] == pytest.approx([m["loss"] for m in _metrics(resumed)], rel=1e-5)


def test_two_cpu_processes_train_and_write_one_checkpoint_equal_to_one_process(tmp_path, caches):
    args = ["train", "--targets", caches / "t64", "--student-kwargs", "depth=2", "--global-batch-size", "16", "--steps", "4",
            "--workers", "0", "--checkpoint-every", "4", "--log-every", "1"]
    res = run_cli(*args, "--out", tmp_path / "two", launcher=ACCELERATE_2PROC)
    assert res.returncode == 0, res.stderr[-3000:]
    one = run_cli(*args, "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr[-3000:]
    ckpt = tmp_path / "two" / "checkpoints" / "step-000004"
    assert [p.name for p in (tmp_path / "two" / "checkpoints").iterdir()] == ["step-000004"]
    assert {"model.safetensors", "optimizer.bin", "random_states_0.pkl", "random_states_1.pkl", "state.json"} <= \
        {p.name for p in ckpt.iterdir()}
    two_record, one_record = (json.loads((tmp_path / name / "run.json").read_text()) for name in ("two", "one"))
    assert two_record["processes"] == 2
    assert two_record["macs_per_step"] == one_record["macs_per_step"] > 0  # a step's compute: both processes' halves
    # both processes saw their half of every global batch: the result equals one process seeing all of it
    a, b = load_file(tmp_path / "two" / "student.safetensors"), load_file(tmp_path / "one" / "student.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-3, atol=1e-4)
    saved = load_file(ckpt / "model.safetensors")
    torch.testing.assert_close(saved["student.vit.pos_embed"], a["student.vit.pos_embed"])


def test_a_two_teacher_run_trains_both_head_sets(tmp_path, caches):
    config = _config(tmp_path, caches, targets=[str(caches / "t64"), str(caches / "t96")], steps=5)
    run = train(config)
    trained = load_file(run / "student.safetensors")
    heads = {k.split(".")[1] for k in trained if k.startswith("heads.")}
    assert heads == {"mobilenetv2_imagenet", "mobilenetv2_imagenet_2"}
    init = build_model(config, prepare_inputs(config).teachers).state_dict()
    for key in heads:
        for level in ("token", "feature", "patch"):
            for part in ("0.weight", "1.weight", "1.bias"):
                name = f"heads.{key}.heads.{level}.{part}"
                assert not torch.allclose(trained[name], init[name]), name
    first = _metrics(run)[0]
    assert {f"{k}/{lv}" for k in heads for lv in ("token", "feature", "patch")} <= first.keys()
    teachers = json.loads((run / "run.json").read_text())["teachers"]
    assert [t["grid"] for t in teachers] == [2, 3]


def test_config_round_trips_through_yaml_and_flags_override_the_file(tmp_path):
    from distill.cli import build_parser
    from distill.config import config_from_args

    config = TrainConfig(targets=["a", "b"], student_kwargs={"depth": 3}, lr=3e-4, ema=0.99, grad_clip=None, k=100,
                         normalize_targets=True, distance="cosine")
    config.save(tmp_path / "c.yaml")
    assert TrainConfig.load(tmp_path / "c.yaml") == config
    args = build_parser().parse_args(["train", "--config", str(tmp_path / "c.yaml"), "--lr", "0.01",
                                      "--no-normalize-targets", "--student-kwargs", "depth=4,num_heads=2"])
    merged = config_from_args(args)
    assert merged == TrainConfig(**(config.to_dict() | {"lr": 0.01, "normalize_targets": False,
                                                         "student_kwargs": {"depth": 4, "num_heads": 2}}))
    with pytest.raises(InputError, match="train settings: steps = '10' is not an integer"):  # made in a notebook
        TrainConfig(targets=["x"], steps="10").validate()
    from_notebook = TrainConfig(out=tmp_path / "run", targets=(tmp_path / "cache",)).validate()
    assert (from_notebook.out, from_notebook.targets) == (str(tmp_path / "run"), [str(tmp_path / "cache")])
    twice = build_parser().parse_args(["train", "--config", str(tmp_path / "c.yaml"), "--targets", "x,y", "--targets", "z"])
    assert config_from_args(twice).targets == ["x", "y", "z"]  # a repeated list flag adds; the file's list is replaced
    cache = build_parser().parse_args(["cache", "--source", "s", "--subset", "x", "--out", "o", "--teacher-layers", "14",
                                       "--teacher-layers", "17"])
    assert cache.teacher_layers == [14, 17]  # the other commands' comma lists alike
    (tmp_path / "bad.yaml").write_text("lr: fast\n")
    with pytest.raises(Exception, match="lr = 'fast' is not a number"):
        TrainConfig.load(tmp_path / "bad.yaml")
    (tmp_path / "bad.yaml").write_text("learning_rate: 0.1\n")
    with pytest.raises(Exception, match="unknown setting.*learning_rate"):
        TrainConfig.load(tmp_path / "bad.yaml")


def test_the_example_settings_file_loads_to_the_defaults_and_documents_every_commented_setting(tmp_path):
    from distill.config import example_train_file
    from distill.config_docs import field_comments

    text = example_train_file()
    (tmp_path / "run.yaml").write_text(text)
    assert TrainConfig.load(tmp_path / "run.yaml") == TrainConfig()
    lines = text.splitlines()
    for name, (above, beside) in field_comments(TrainConfig).items():
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{name}:"))
        if beside:
            assert f"# {beside}" in lines[at] or lines[at - 1] == f"# {beside}", name
        if above:
            assert lines[at - len(above):at] == [f"# {c}" for c in above], name
    assert "# the student" in lines and "lr: 0.001" in lines  # a section heading of the source, a default


def _train_cli(caches, out, *extra, cache="t64"):
    return run_cli("train", "--targets", caches / cache, "--out", out, "--student-kwargs", "depth=1", "--global-batch-size", "8",
                   "--workers", "0", *extra)


@pytest.mark.parametrize("extra, cache, message", [
    (["--k", "100"], "t64", "holds only the first 40 images"),
    ([], "t32", "patch map is 1x1"),
    (["--global-batch-size", "10", "--grad-accum", "4"], "t64", "does not split into 1 process"),
    (["--resume"], "t64", "no checkpoint in"),
    (["--attention", "xformers"], "t64", "attention backend xformers"),
    (["--student-kwargs", "depth=two"], "t64", "student_kwargs depth = 'two' is not accepted"),
    (["--student-kwargs", "depht=1"], "t64", "student_kwargs depht = 1 is not accepted"),
    (["--w-layer", "1"], "t64", "the targets of mobilenetv2_imagenet hold no intermediate layers"),
    (["--teacher-layers", "17"], "t64", "teacher_layers is for online mode"),
])
def test_bad_training_input_gives_one_line_and_leaves_no_run_directory(tmp_path, caches, extra, cache, message):
    res = _train_cli(caches, tmp_path / "run", "--steps", "2", *extra, cache=cache)
    assert res.returncode == 2 and message in error_line(res)
    assert not (tmp_path / "run").exists()


def test_a_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path, caches):
    res = _train_cli(caches, tmp_path / "run", "--steps", "30", "--lr", "1e5", "--warmup-ratio", "0", "--grad-clip", "1e9",
                     "--checkpoint-every", "1")
    line = error_line(res)
    assert res.returncode == 2 and re.search(r"(loss|weights) became NaN/inf (at|by) step", line)
    assert "last good checkpoint is kept" in line
    kept = line.split("kept: ")[1].split(". ")[0]
    state = load_file(f"{kept}/model.safetensors")
    assert all(torch.isfinite(t).all() for t in state.values())
    assert json.loads((tmp_path / "run" / "run.json").read_text())["complete"] is False


def test_resume_refuses_a_foreign_checkpoint_and_a_second_run_in_the_same_folder(tmp_path, caches):
    assert _train_cli(caches, tmp_path / "a", "--steps", "4", "--stop-after", "2").returncode == 0
    res = _train_cli(caches, tmp_path / "a", "--steps", "4", "--lr", "0.5", "--resume")
    assert res.returncode == 2 and "a checkpoint of another run (differs in lr)" in error_line(res)
    res = _train_cli(caches, tmp_path / "a", "--steps", "4")
    assert res.returncode == 2 and "holds a run already; pass --resume" in error_line(res)
    res = _train_cli(caches, tmp_path / "b", "--steps", "4", "--resume", tmp_path / "a")
    assert res.returncode == 2 and "not a checkpoint of this trainer" in error_line(res)
    done = _train_cli(caches, tmp_path / "a", "--steps", "4", "--resume")
    assert done.returncode == 0 and "run complete" in done.stdout
    again = _train_cli(caches, tmp_path / "a", "--steps", "4")
    assert again.returncode == 0 and "already complete" in again.stdout


def test_metrics_also_go_to_an_accelerate_tracker(tmp_path, caches):
    from accelerate import Accelerator
    from accelerate.tracking import GeneralTracker

    class Recorder(GeneralTracker):
        name, requires_logging_directory = "recorder", False

        def __init__(self):
            super().__init__()
            self.config, self.logged = None, []

        @property
        def tracker(self):
            return self

        def store_init_configuration(self, values):
            self.config = values

        def log(self, values, step=None, **kwargs):
            self.logged.append((step, values))

    recorder = Recorder()
    acc = Accelerator(cpu=True, log_with=[recorder])
    run = train(_config(tmp_path, caches, steps=3), accelerator=acc)
    acc.end_training()
    assert recorder.config["batch_size"] == 16
    assert [(s, v["loss"]) for s, v in recorder.logged] == [(m["step"], m["loss"]) for m in _metrics(run)]


def test_target_statistics_come_from_the_corpus_alike_for_every_subset_and_for_online_mode(
        tmp_path, caches, subsets_dir, image_folder):
    from teachers import stats as stats_module
    from teachers.cache import TargetCache
    from teachers.stats import target_stats

    teacher = load_teacher("mobilenetv2_imagenet", resolution=64)
    stats_module._computed.clear()  # computed afresh below, not reused from the fixture's caches
    other = cache_targets(open_source(image_folder), read_manifest(subsets_dir / "random"), teacher, tmp_path / "random",
                          config=CacheConfig(views=VIEWS, batch_size=16, shard_size=16))
    kcenter, random = TargetCache(caches / "t64").stats(), TargetCache(other).stats()
    stats_module._computed.clear()
    fresh = target_stats(teacher, open_source(image_folder))
    assert set(kcenter) == {"cls_mean", "cls_std", "patch_mean", "patch_std"}
    for name in kcenter:  # the same target space whatever the subset: stats of the corpus, not of the subset
        assert torch.equal(kcenter[name], random[name]) and torch.equal(kcenter[name], fresh[name]), name
    assert not torch.allclose(kcenter["cls_std"], kcenter["patch_std"])  # two spaces, two sets of statistics
    online = _config(tmp_path, caches, "online", targets=[], teacher="mobilenetv2_imagenet", teacher_resolution=64,
                     subset=str(subsets_dir / "kcenter"), normalize_targets=True)
    stats_module._computed.clear()
    stats = prepare_inputs(online).target_stats(None, "cpu")["mobilenetv2_imagenet"]
    for name in kcenter:
        torch.testing.assert_close(stats[name], kcenter[name], rtol=1e-4, atol=1e-5)
    # what a run normalises by is those statistics
    run = train(_config(tmp_path, caches, "normalised", steps=1, normalize_targets=True))
    saved = load_file(run / "student.safetensors")
    assert torch.equal(saved["heads.mobilenetv2_imagenet.norms.cls.std"], kcenter["cls_std"])
    assert torch.equal(saved["heads.mobilenetv2_imagenet.norms.patch.mean"], kcenter["patch_mean"])


def test_a_channel_constant_over_the_sample_is_not_blown_up():
    from teachers.stats import VARIANCE_FLOOR, channel_stats

    x = torch.randn(500, 4)
    x[:, 2] = 3.0
    mean, std = channel_stats(x)
    assert mean[2] == 3.0
    assert std[2] == pytest.approx((VARIANCE_FLOOR * x.var(0)[[0, 1, 3]].sum().item() / 4) ** 0.5, rel=1e-3)
    assert std[0] == pytest.approx(x[:, 0].std().item(), rel=1e-3)


def test_an_ema_student_follows_the_trained_weights_from_the_first_steps(tmp_path, caches):
    config = _config(tmp_path, caches, steps=30, checkpoint_every=30, ema=0.9998, lr=3e-3)
    run = train(config)
    ema = load_file(run / "student.safetensors")
    trained = load_file(run / "checkpoints" / "step-000030" / "model.safetensors")
    init = build_model(config, prepare_inputs(config).teachers).state_dict()
    names = [n for n in ema if n.startswith("student.") and ema[n].is_floating_point() and n != "student.mask_token"]
    moved = sum((trained[n] - init[n]).norm() ** 2 for n in names) ** 0.5
    ema_to_trained = sum((ema[n] - trained[n]).norm() ** 2 for n in names) ** 0.5
    ema_to_init = sum((ema[n] - init[n]).norm() ** 2 for n in names) ** 0.5
    assert ema_to_trained < 0.3 * moved < ema_to_init, (ema_to_trained, moved, ema_to_init)


def test_two_accumulation_steps_equal_one_at_the_same_global_batch(tmp_path, caches):
    one = train(_config(tmp_path, caches, "one", steps=4))
    two = train(_config(tmp_path, caches, "two", steps=4, grad_accum=2))
    a, b = load_file(one / "student.safetensors"), load_file(two / "student.safetensors")
    # Adam divides by sqrt(v): where a gradient is near zero, summation-order rounding can move a weight by a share
    # of one lr step (1e-3; measured up to 9e-5 on an AVX-512 CPU, in 1 weight of 0.9M); a wrong accumulation
    # (a step per micro-batch, a micro-batch dropped) moves most weights by whole steps
    diffs = torch.cat([(a[n].double() - b[n].double()).abs().flatten() for n in a if a[n].is_floating_point()])
    assert diffs.max() < 0.25 * 1e-3, diffs.max()
    assert (diffs > 5e-5).double().mean() < 1e-4, (diffs > 5e-5).sum()
    # the logged loss is the step's (the mean over its micro-batches), not its last micro-batch's
    assert [m["loss"] for m in _metrics(one)] == pytest.approx([m["loss"] for m in _metrics(two)], rel=1e-5)


def test_a_given_accelerator_runs_the_configs_accumulation_and_a_clashing_precision_is_refused(tmp_path, caches):
    from accelerate import Accelerator

    from subsets.errors import InputError

    acc = Accelerator(cpu=True)
    run = train(_config(tmp_path, caches, "acc", steps=2, grad_accum=2), accelerator=acc)
    assert acc.gradient_accumulation_steps == 2 and json.loads((run / "run.json").read_text())["precision"] == "no"
    with pytest.raises(InputError, match="precision bf16: the accelerator given runs no"):
        train(_config(tmp_path, caches, "bf16", steps=2, precision="bf16"), accelerator=acc)
    with pytest.raises(InputError, match="keep_checkpoints 0: at least 1"):
        train(_config(tmp_path, caches, "keep0", steps=2, keep_checkpoints=0))


def test_a_bad_config_is_refused_in_one_line_before_torch_is_imported(tmp_path):
    import subprocess
    import sys

    # importing torch and timm takes a 2-core CPU 3-7 s, a second process under accelerate as long again
    code = ("import sys; from distill.cli import main; "
            "rc = main(['train', '--out', sys.argv[1], '--targets', sys.argv[1], '--distance', 'l3']); "
            "print(rc, sorted(m for m in ('torch', 'timm') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "2 []", done
    assert done.stderr == "error: distance 'l3': choose one of mse, cosine, smooth_l1\n"


def test_version_names_the_commit_and_the_libraries_that_a_run_records(capsys):
    import subprocess
    from importlib import metadata

    from distill.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert out.startswith(f"distill {metadata.version('subset-distill')} (commit {commit[:10]}")
    assert f"torch {metadata.version('torch')}" in out and f"timm {metadata.version('timm')}" in out


def test_yaml_numbers_in_exponent_form_are_read_as_floats(tmp_path, caches):
    # PyYAML reads `1e-3` as the string "1e-3" (YAML 1.1 wants `1.0e-3`); users write it as a float.
    (tmp_path / "run.yaml").write_text("lr: 1e-3\nmin_lr: 5E-6\nweight_decay: 0.05\n")
    config = TrainConfig.load(tmp_path / "run.yaml")
    assert (config.lr, config.min_lr) == (0.001, 5e-6)
    from distill.sweep import SweepConfig

    (tmp_path / "sweep.yaml").write_text("methods: [random]\nks: [10]\ntrain: {lr: 3e-4, steps: 2}\n")
    assert SweepConfig.load(tmp_path / "sweep.yaml").train["lr"] == 3e-4


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, caches):
    """A run stopped after 4 of its 6 steps, with checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("stopped") / "a"
    assert _train_cli(caches, out, "--steps", "6", "--checkpoint-every", "2", "--keep-checkpoints", "2",
                      "--stop-after", "4").returncode == 0
    return out


@pytest.mark.parametrize("damage", ["optimizer", "model", "missing"])
def test_a_damaged_checkpoint_is_refused_on_resume_naming_the_file_and_an_earlier_checkpoint(tmp_path, caches, damage,
                                                                                             stopped_run):
    import shutil

    shutil.copytree(stopped_run, tmp_path / "a")
    latest = tmp_path / "a" / "checkpoints" / "step-000004"
    target = latest / {"optimizer": "optimizer.bin", "model": "model.safetensors", "missing": "optimizer.bin"}[damage]
    if damage == "missing":
        target.unlink()
    else:  # the same size, other bytes: only a hash tells
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    res = _train_cli(caches, tmp_path / "a", "--steps", "6", "--checkpoint-every", "2", "--resume")
    line = error_line(res)
    assert res.returncode == 2 and f"{target.name} is {'missing' if damage == 'missing' else 'damaged'}" in line
    assert "--resume " + str(tmp_path / "a" / "checkpoints" / "step-000002") in line
    if damage == "missing":  # the earlier checkpoint the line names resumes (whatever the damage to the later one)
        ok = _train_cli(caches, tmp_path / "a", "--steps", "6", "--checkpoint-every", "2", "--resume",
                        tmp_path / "a" / "checkpoints" / "step-000002")
        assert ok.returncode == 0 and "run complete" in ok.stdout


def test_an_edited_shard_of_the_same_size_is_refused_before_training_unless_asked(tmp_path, caches):
    import shutil

    from teachers import cache as cache_module

    cache = tmp_path / "t64"
    shutil.copytree(caches / "t64", cache)
    shard = cache / "shard-00000.safetensors"
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0x01  # one bit of the last target: same size, valid header
    shard.write_bytes(bytes(data))
    cache_module._verified.clear()
    res = run_cli("train", "--targets", cache, "--out", tmp_path / "run", "--steps", "2", "--global-batch-size", "8",
                  "--student-kwargs", "depth=1", "--workers", "0")
    assert res.returncode == 2 and "shard-00000.safetensors: content differs from the sha256" in error_line(res)
    assert not (tmp_path / "run").exists()
    ok = run_cli("train", "--targets", cache, "--out", tmp_path / "run", "--steps", "2", "--global-batch-size", "8",
                 "--student-kwargs", "depth=1", "--workers", "0", "--no-verify-targets")
    assert ok.returncode == 0


def test_a_second_job_into_the_same_out_is_refused_and_a_killed_jobs_lock_is_taken_over(tmp_path, caches):
    import signal
    import subprocess
    import sys
    import time

    from subsets.lock import lock_path

    run = tmp_path / "run"
    args = [sys.executable, "-m", "distill", "train", "--targets", str(caches / "t64"), "--out", str(run),
            "--student-kwargs", "depth=1", "--global-batch-size", "8", "--workers", "0", "--steps", "100000",
            "--checkpoint-every", "5"]
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (run / "checkpoints" / "step-000005" / "state.json").exists():
            assert time.time() < deadline and first.poll() is None, "the first run did not start"
            time.sleep(0.2)
        second = _train_cli(caches, run, "--steps", "100000", "--checkpoint-every", "5", "--resume")
        line = error_line(second)
        assert second.returncode == 2 and f"{run}: in use by another job (pid {first.pid}" in line
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert lock_path(run).exists()  # kill -9 leaves it: stale now
    resumed = _train_cli(caches, run, "--steps", "100000", "--checkpoint-every", "5", "--resume", "--stop-after", "5")
    assert resumed.returncode == 0 and "took over a stale lock" in resumed.stdout
    assert not lock_path(run).exists()  # released at the end


@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_sent_sigterm_checkpoints_the_step_it_reached_equal_to_an_uninterrupted_run_there(tmp_path, caches,
                                                                                                  workers):
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    args = [sys.executable, "-m", "distill", "train", "--targets", str(caches / "t64"), "--out", str(run),
            "--student-kwargs", "depth=1", "--global-batch-size", "8", "--workers", str(workers), "--steps", "100000",
            "--checkpoint-every", "100000", "--log-every", "1"]
    # its own session, signalled as a batch system signals a job: every process, the loader's workers too
    job = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while not (run / "metrics.jsonl").exists() or len((run / "metrics.jsonl").read_text().splitlines()) < 5:
            assert time.time() < deadline and job.poll() is None, "the run did not start"
            time.sleep(0.2)
        os.killpg(job.pid, signal.SIGTERM)
        out, err = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 128 + signal.SIGTERM, err
    line = err.strip().splitlines()[-1]
    assert "Traceback" not in err and f"{run}: stopped by SIGTERM at step " in line and "goes on from there" in line
    step = int(line.split("at step ")[1].split()[0])
    assert [p.name for p in (run / "checkpoints").iterdir()] == [f"step-{step:06d}"]  # not one of checkpoint_every's
    straight = TrainConfig.load(run / "run.json")
    straight.out = str(tmp_path / "straight")
    train(straight, stop_after=step)
    a = load_file(run / "checkpoints" / f"step-{step:06d}" / "model.safetensors")
    b = load_file(tmp_path / "straight" / "checkpoints" / f"step-{step:06d}" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    resumed = _train_cli(caches, run, "--steps", "100000", "--checkpoint-every", "100000", "--log-every", "1",
                         "--resume", "--stop-after", "2")
    assert resumed.returncode == 0 and [m["step"] for m in _metrics(run)][-2:] == [step, step + 1]


@pytest.mark.parametrize("full_at", [1, 2])  # the first checkpoint, or one after a good one
def test_a_full_disk_while_checkpointing_is_one_line_leaves_no_tmp_and_the_run_continues(tmp_path, caches, monkeypatch,
                                                                                        full_at):
    from accelerate import Accelerator
    from safetensors import SafetensorError

    real, calls = Accelerator.save_state, []

    def save_state(self, output_dir=None, **kw):
        calls.append(output_dir)
        real(self, output_dir, **kw)
        if len(calls) == full_at:  # as safetensors reports a full disk, after part of the state is written
            raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                                  '"No space left on device" })')

    monkeypatch.setattr(Accelerator, "save_state", save_state)
    config = _config(tmp_path, caches, steps=15, checkpoint_every=5)
    with pytest.raises(InputError, match="step-0000(05|10): disk full while writing this checkpoint") as err:
        train(config)
    run = tmp_path / "run"
    assert not list((run / "checkpoints").glob("*.tmp"))
    monkeypatch.setattr(Accelerator, "save_state", real)
    if full_at == 1:  # nothing to resume from: a plain rerun takes the folder over
        assert "rerun the same command" in str(err.value)
        train(config)
    else:
        assert "the last good one (step-000005) is kept" in str(err.value)
        train(config, resume=True)
    assert (run / "run.json").exists() and json.loads((run / "run.json").read_text())["steps"] == 15


def test_a_run_that_failed_before_its_first_checkpoint_is_taken_over_by_a_rerun(tmp_path, caches):
    bad = _train_cli(caches, tmp_path / "run", "--steps", "30", "--lr", "1e5", "--warmup-ratio", "0", "--grad-clip", "1e9",
                     "--checkpoint-every", "1000")
    assert bad.returncode == 2 and "NaN" in error_line(bad)
    for extra in ([], ["--resume"]):  # a plain rerun and --resume both continue: from step 0
        ok = _train_cli(caches, tmp_path / "run", "--steps", "4", "--checkpoint-every", "1000", *extra)
        assert ok.returncode == 0 and "run complete" in ok.stdout, ok.stderr
        record = json.loads((tmp_path / "run" / "run.json").read_text())  # as if the next attempt had failed early
        (tmp_path / "run" / "run.json").write_text(json.dumps(record | {"complete": False}))
        for ckpt in (tmp_path / "run" / "checkpoints").glob("*"):
            import shutil

            shutil.rmtree(ckpt)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_non_finite_targets_are_blamed_on_the_cache_not_reported_as_a_nan_loss(tmp_path, caches, workers):
    import multiprocessing
    import shutil

    from safetensors import safe_open
    from safetensors.torch import save_file

    before = {p.pid for p in multiprocessing.active_children()}
    cache = tmp_path / "t64"
    shutil.copytree(caches / "t64", cache)
    for shard in cache.glob("shard-*.safetensors"):
        with safe_open(str(shard), "pt") as f:
            tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
        tensors["cls"][:, :, 0] = float("nan")
        save_file(tensors, str(shard), metadata=meta)
    res = run_cli("train", "--targets", cache, "--out", tmp_path / "run", "--steps", "2", "--global-batch-size", "8",
                  "--student-kwargs", "depth=1", "--workers", workers, "--no-verify-targets")
    line = error_line(res)
    assert res.returncode == 2 and re.search(r"shard-\d+\.safetensors: cls of position \d+ is not finite", line), line
    # its loader's workers ended with it, not left to the interpreter's exit
    assert not [p for p in multiprocessing.active_children() if p.pid not in before], "loader workers left behind"


def test_flags_spelt_as_timm_and_the_trainer_spell_them_and_the_old_spellings_still_work(tmp_path):
    from distill.cli import build_parser
    from distill.config import config_from_args

    parser = build_parser()
    base = ["train", "--targets", str(tmp_path), "--out", str(tmp_path / "r")]
    new = config_from_args(parser.parse_args(base + ["--global-batch-size", "32", "--warmup-ratio", "0.2",
                                                     "--model-ema-decay", "0.99"]))
    assert (new.batch_size, new.warmup, new.ema) == (32, 0.2, 0.99)
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        old = config_from_args(parser.parse_args(base + ["--batch-size", "32", "--warmup", "0.2", "--ema", "0.99"]))
    assert old == new
    assert "--batch-size is deprecated and will be removed; it is --global-batch-size" in err.getvalue()
    ema = config_from_args(parser.parse_args(base + ["--model-ema", "--no-model-ema-warmup"]))
    assert (ema.ema, ema.ema_warmup) == (0.9998, False)  # timm's default decay
    assert config_from_args(parser.parse_args(base + ["--model-ema", "--model-ema-decay", "0.9"])).ema == 0.9
    per_device = config_from_args(parser.parse_args(base + ["--per-device-batch-size", "8", "--grad-accum", "2"]))
    assert per_device.batch_size == 16  # 8 x 1 process x 2 accumulation steps
    with pytest.raises(InputError, match="not both"):
        config_from_args(parser.parse_args(base + ["--per-device-batch-size", "8", "--global-batch-size", "8"]))


def test_weight_decay_falls_on_weights_only_not_on_tokens_norms_or_biases():
    from distill.data import TeacherTargets

    config = TrainConfig(student="vit_tiny_patch16_224", img_size=32, patch_size=8, stem="scott",
                         student_kwargs={"depth": 1}, w_patch=1.0)
    model = build_model(config, [TeacherTargets("t", {"name": "t", "token_dim": 8}, 16)])
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {g["weight_decay"]: {names[id(p)] for p in g["params"]} for g in model.param_groups(0.05)}
    assert {"student.vit.cls_token", "student.vit.pos_embed", "student.mask_token",
            "student.vit.blocks.0.norm1.weight", "student.vit.blocks.0.attn.qkv.bias"} <= decay[0.0]
    assert {"student.vit.blocks.0.attn.qkv.weight", "student.vit.patch_embed.stages.0.conv.weight",
            "heads.t.heads.token.1.weight"} <= decay[0.05]
    assert decay[0.0].isdisjoint(decay[0.05]) and len(decay[0.0] | decay[0.05]) == len(names)
    # the decayed group first, as checkpoints of the trainer before timm's groups hold them: those still resume
    assert [g["weight_decay"] for g in model.param_groups(0.05)] == [0.05, 0.0]


def test_the_lr_warms_up_to_lr_decays_to_min_lr_and_depends_on_the_step_alone():
    from distill.train import make_scheduler

    config = TrainConfig(steps=100, warmup=0.1, lr=1e-3, min_lr=1e-5)

    def lrs(start: int) -> list[float]:
        opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=config.lr)
        schedule, out = make_scheduler(opt, config), []
        for step in range(start, config.steps):
            schedule.step_update(step)
            out.append(opt.param_groups[0]["lr"])
        return out

    straight = lrs(0)
    assert straight[0] == pytest.approx(1e-4) and straight[10] == pytest.approx(1e-3) == max(straight)
    assert all(a < b for a, b in zip(straight[:10], straight[1:11]))  # rising through the warm-up
    assert all(a >= b for a, b in zip(straight[10:], straight[11:])) and straight[-1] == pytest.approx(1e-5, rel=0.05)
    assert lrs(40) == straight[40:]  # a resumed run's schedule


def test_run_json_is_the_runs_one_record_from_start_to_end_and_older_runs_still_resume(tmp_path, caches):
    config = _config(tmp_path, caches, steps=4, checkpoint_every=2)
    train(config, stop_after=2)
    run = tmp_path / "run"
    start = json.loads((run / "run.json").read_text())
    assert start["complete"] is False and TrainConfig.load(run / "run.json") == config
    assert not (run / "config.yaml").exists()
    state = json.loads((run / "checkpoints" / "step-000002" / "state.json").read_text())
    assert "identity" not in state and len(state["identity_sha256"]) == 64  # the identity lives in run.json alone
    # a run begun by the trainer before this one: config.yaml as its start record, the identity in state.json
    (run / "run.json").unlink()
    config.save(run / "config.yaml")
    del state["identity_sha256"]
    (run / "checkpoints" / "step-000002" / "state.json").write_text(json.dumps(state | {"identity": start["identity"]}))
    train(config, resume=True)
    done = json.loads((run / "run.json").read_text())
    assert done["complete"] and done["resumed_at"] == 2 and done["identity"] == start["identity"]
    assert not (run / "config.yaml").exists()


def test_a_mixup_run_with_two_accumulation_steps_equals_one_and_differs_from_no_mixup(tmp_path, caches):
    one = train(_config(tmp_path, caches, "one", steps=4, mixup_alpha=1.0))
    two = train(_config(tmp_path, caches, "two", steps=4, mixup_alpha=1.0, grad_accum=2))
    plain = train(_config(tmp_path, caches, "plain", steps=4))
    a, b, c = (load_file(r / "student.safetensors") for r in (one, two, plain))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=5e-5)
    assert _metrics(one)[0]["loss"] == pytest.approx(_metrics(two)[0]["loss"], rel=1e-5)
    assert _metrics(one)[0]["loss"] != pytest.approx(_metrics(plain)[0]["loss"], rel=1e-3)
    assert any(not torch.allclose(a[n], c[n]) for n in a)


def test_mixup_settings_that_cannot_work_give_one_line(tmp_path, caches):
    with pytest.raises(InputError, match="leaves an odd number"):
        train(_config(tmp_path, caches, "odd", batch_size=6, grad_accum=2, mixup_alpha=1.0))
    with pytest.raises(InputError, match="mixup_alpha -1"):
        TrainConfig(targets=["x"], mixup_alpha=-1).validate()
    with pytest.raises(InputError, match="no teacher to label a mixture"):
        TrainConfig(objective="mim-jepa", subset="s", mixup_alpha=1.0).validate()
    assert not (tmp_path / "odd").exists()


def test_the_layer_level_teaches_the_stem_the_teachers_intermediate_map_and_the_run_loads_back(
        tmp_path, caches, subsets_dir, image_folder):
    """w_layer: the stem's tokens against the cached `layer14_patch` (96 channels at stride 16: 4x4 at 64 px, brought
    to the student's 8x8 grid); its term is logged and falls, and the run is rebuilt from run.json for evaluation."""
    from distill.evaluate import load_run

    layered = caches / "t64-layer14"
    if not layered.exists():
        cache_targets(open_source(image_folder), read_manifest(subsets_dir / "kcenter"),
                      load_teacher("mobilenetv2_imagenet", resolution=64, layers=[14]), layered,
                      config=CacheConfig(views=VIEWS, batch_size=16, shard_size=16))
    kw = dict(targets=[str(layered)], steps=40, checkpoint_every=40, normalize_targets=True, lr=3e-3, grad_clip=None)
    run = train(_config(tmp_path, caches, w_layer=1.0, **kw))
    terms = [m["mobilenetv2_imagenet/layer"] for m in _metrics(run)]
    # normalised targets have zero mean per channel, so a prediction blind to the image stays near a cosine
    # distance of 1 (measured: 1.00 at step 0, 0.61 over the last 5 steps)
    assert terms[0] > 0.95 and sum(terms[-5:]) / 5 < 0.75, terms
    model, _ = load_run(run)
    assert set(model.heads["mobilenetv2_imagenet"].heads) == {"token", "feature", "patch", "layer14_patch"}
    # and it reaches the stem, not only its own head: without it (no clipping to couple the two) the stem differs
    # after the same 2 steps
    short = kw | {"steps": 2, "checkpoint_every": 2}
    with_it = load_file(train(_config(tmp_path, caches, "with", w_layer=1.0, **short)) / "student.safetensors")
    without = load_file(train(_config(tmp_path, caches, "without", **short)) / "student.safetensors")
    stem = [n for n in without if n.startswith("student.vit.patch_embed.")]
    assert stem and not all(torch.equal(without[n], with_it[n]) for n in stem)
    # beside a teacher without maps, the one with them teaches the layer level, the other the rest
    both = train(_config(tmp_path, caches, "both", targets=[str(layered), str(caches / "t96")], steps=2, w_layer=1.0))
    assert "mobilenetv2_imagenet/layer" in _metrics(both)[0] and "mobilenetv2_imagenet_2/layer" not in _metrics(both)[0]
    with pytest.raises(InputError, match="the layer level matches a ViT student's stem tokens"):
        build_model(_config(tmp_path, caches, student="resnet18", student_kwargs={}, w_patch=0.0, w_layer=1.0),
                    prepare_inputs(_config(tmp_path, caches, targets=[str(layered)])).teachers)


def test_a_run_named_by_another_spelling_of_its_places_is_the_same_run(tmp_path, caches, monkeypatch, capsys):
    import os

    monkeypatch.chdir(tmp_path)
    relative = os.path.relpath(caches / "t64", tmp_path)  # ../../targets0/t64 and /tmp/.../t64: one cache
    config = _config(tmp_path, caches, steps=10, checkpoint_every=5, targets=[relative])
    train(config, stop_after=5)
    absolute = TrainConfig(**(config.to_dict() | {"targets": [str(caches / "t64")]}))
    run = train(absolute, resume=True)  # not refused as a checkpoint of another run
    assert [m["step"] for m in _metrics(run)] == list(range(10))
    capsys.readouterr()
    train(config)  # complete under either spelling: nothing to do, not "holds a run already"
    assert "already complete" in capsys.readouterr().out
    # another place is another run still
    with pytest.raises(InputError, match=r"a checkpoint of another run \(differs in targets\)"):
        train(TrainConfig(**(config.to_dict() | {"targets": [str(caches / "t96")]})), resume=True)


def test_a_stop_travels_back_from_a_sweeps_worker_whole():
    import pickle

    from distill.stop_signal import Stopped

    stop = pickle.loads(pickle.dumps(Stopped("runs/x: stopped by SIGTERM at step 7", "SIGTERM")))
    assert (str(stop), stop.reason, stop.exit_code) == ("runs/x: stopped by SIGTERM at step 7", "SIGTERM", 143)


def test_a_signal_after_the_sweeps_own_stop_word_is_still_the_first_and_ends_the_run_at_its_step_end():
    """A batch system signals a sweep and its workers together; the sweep's word to its workers (SIGUSR1, handled
    before SIGTERM when both are pending) must not make the worker's own SIGTERM a second signal, which would end it
    at once without its checkpoint."""
    import subprocess
    import sys

    worker = """if True:
        import signal
        from distill.side_by_side import SWEEP_GONE
        from distill.stop_signal import ask_to_stop, stop_asked, stop_at_step_end

        class One:
            num_processes = 1

        with stop_at_step_end():
            ask_to_stop(SWEEP_GONE)
            signal.raise_signal(signal.SIGTERM)  # taken for the second, it ends this process here
            print("asked:", stop_asked(One()))
        """
    done = subprocess.run([sys.executable, "-c", worker], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "asked: the end of its sweep\n" and "SIGTERM: finishing this step" in done.stderr


def test_a_run_and_its_caches_copied_elsewhere_resume_there_as_the_same_run(tmp_path, caches, capsys):
    import shutil

    config = _config(tmp_path, caches, "a/run", steps=10, checkpoint_every=5)
    train(config, stop_after=5)
    shutil.copytree(caches / "t64", tmp_path / "b" / "t64")
    shutil.copytree(tmp_path / "a" / "run", tmp_path / "b" / "run")
    copied = TrainConfig(**(config.to_dict() | {"out": str(tmp_path / "b" / "run"),
                                                "targets": [str(tmp_path / "b" / "t64")]}))
    train(copied, resume=True, stop_after=3)  # the copy's checkpoint is this run's: its cache holds the same targets
    # and the run stays the one it began as: its first checkpoint still resumes after the copy's own (step 8)
    run = train(copied, resume=str(tmp_path / "b" / "run" / "checkpoints" / "step-000005"))
    assert [m["step"] for m in _metrics(run)] == list(range(10))
    capsys.readouterr()
    train(copied)
    assert "already complete" in capsys.readouterr().out
    # a cache of other targets is another run, whether named elsewhere or written over the run's own cache
    with pytest.raises(InputError, match=r"a checkpoint of another run \(differs in targets\)"):
        train(TrainConfig(**(copied.to_dict() | {"targets": [str(caches / "t96")]})), resume=True)
    shutil.rmtree(tmp_path / "b" / "t64")
    shutil.copytree(caches / "t96", tmp_path / "b" / "t64")
    with pytest.raises(InputError, match="holds a run already"):
        train(copied)


def test_a_run_recorded_before_contents_were_is_known_by_its_places_as_before(tmp_path, caches, capsys):
    import shutil

    run = train(_config(tmp_path, caches, "a/run", steps=5, checkpoint_every=5))
    record = json.loads((run / "run.json").read_text())
    del record["identity"]["contents"]  # as a trainer of 2026-12-01 wrote it
    (run / "run.json").write_text(json.dumps(record))
    capsys.readouterr()
    train(_config(tmp_path, caches, "a/run", steps=5, checkpoint_every=5))
    assert "already complete" in capsys.readouterr().out
    shutil.copytree(caches / "t64", tmp_path / "b" / "t64")  # the same targets elsewhere: it cannot know that
    with pytest.raises(InputError, match="holds a run already"):
        train(_config(tmp_path, caches, "a/run", steps=5, checkpoint_every=5, targets=[str(tmp_path / "b" / "t64")]))


def test_run_json_says_which_code_libraries_and_machine_trained_each_stretch_of_a_run(tmp_path, caches):
    import os
    import subprocess

    from .helpers import ROOT

    config = _config(tmp_path, caches, steps=10, checkpoint_every=5)
    train(config, stop_after=5)
    train(config, resume=True, stop_after=3)  # steps 5-7, checkpointed at 8
    run = train(config, resume=str(tmp_path / "run" / "checkpoints" / "step-000005"))  # those steps left nothing
    invocations = json.loads((run / "run.json").read_text())["invocations"]
    assert [i["from_step"] for i in invocations] == [0, 5]
    env = invocations[-1]["environment"]
    assert env["libraries"]["torch"] == torch.__version__ and env["threads"] == torch.get_num_threads()
    assert len(env["gpus"]) == torch.cuda.device_count() and env["cpus"] == os.cpu_count() and env["python"].count(".") == 2
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if git.returncode == 0:  # a checkout (CI's fresh clone is one): the commit the figures came from
        assert env["code"]["commit"] == git.stdout.strip() and isinstance(env["code"]["dirty"], bool)


@pytest.mark.parametrize("setting, message", [
    ({"lr": -1.0}, "lr -1.0: must be above 0"),
    ({"min_lr": 0.1}, "min_lr 0.1: must lie in [0, lr = 0.001]"),
    ({"weight_decay": -0.05}, "weight_decay -0.05: must not be negative"),
    ({"grad_clip": -1.0}, "grad_clip -1.0: above 0"),  # clip_grad_norm_ would flip every gradient's sign
    ({"workers": -1}, "workers -1: 0"),
])
def test_optimiser_settings_that_would_train_wrong_are_refused(setting, message):
    with pytest.raises(InputError, match=re.escape(message)):
        TrainConfig(targets=["x"], **setting).validate()
