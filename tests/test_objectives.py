"""Self-supervised objectives on the same subsets: MIM-JEPA and local/global, in the trainer, the sweep and the
comparison beside distillation."""

import csv
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from distill.config import TrainConfig
from distill.mim_jepa import MimJepa, block_masks
from distill.sweep import SweepConfig, run_sweep
from distill.train import train
from students import StudentSpec
from subsets.errors import InputError

from .helpers import ACCELERATE_2PROC, error_line, run_cli
from .helpers import run_metrics as _metrics

SPEC = StudentSpec("vit_tiny_patch16_224", 32, 8, (("depth", 1),), "scott")


def _config(tmp_path, subsets_dir, objective="mim-jepa", name="run", **kw) -> TrainConfig:
    base = dict(out=str(tmp_path / name), objective=objective, subset=str(subsets_dir / "kcenter"),
                student_kwargs={"depth": 1}, patch_size=8, stem="scott", batch_size=16, steps=10, workers=0,
                log_every=1, checkpoint_every=5, lr=1e-3)
    return TrainConfig(**(base | kw))


def test_block_masks_mask_the_asked_share_with_blocks_kept_and_depend_on_the_sample_alone():
    ids = np.arange(8)
    masks = block_masks(seed=0, step=3, sample_ids=ids, grid=8, ratio=0.6)
    assert masks.shape == (8, 64) and (masks.sum(1) == round(0.6 * 64)).all()
    assert len({tuple(m.tolist()) for m in masks}) == 8  # one mask per sample
    # the same sample in another slice of the batch (another process) gets the same mask; another step another one
    assert torch.equal(block_masks(0, 3, ids[5:], 8, 0.6), masks[5:])
    assert not torch.equal(block_masks(0, 4, ids, 8, 0.6), masks)
    # the kept part is made of blocks: kept cells have more kept neighbours than scattered cells would
    kept = ~masks.reshape(8, 8, 8)
    neighbours = (kept[:, 1:, :] & kept[:, :-1, :]).sum() + (kept[:, :, 1:] & kept[:, :, :-1]).sum()
    scattered = 2 * 7 * 8 * 8 * (1 - 0.6) ** 2  # expected adjacent kept pairs if the kept cells were uniform
    assert neighbours > 1.5 * scattered, (int(neighbours), scattered)


def test_the_mim_jepa_target_moves_by_exactly_the_momentum_rule_and_gets_no_gradient():
    torch.manual_seed(0)
    model = MimJepa(SPEC, predictor_depth=1, momentum=0.9)
    images = torch.randn(4, 3, 32, 32)
    mask = block_masks(0, 0, np.arange(4), 4, 0.6)
    model(images, mask)["loss"].backward()
    assert all(p.grad is None and not p.requires_grad for p in model.student.parameters())
    assert all(p.grad is not None for p in model.context.parameters())  # context encoder and predictor learn
    before = {n: p.clone() for n, p in model.student.named_parameters()}
    with torch.no_grad():
        for p in model.context.parameters():
            p.add_(torch.randn_like(p))  # stands for an optimizer step
    model.update_target(step=0, steps=11)  # momentum 0.9 at the first step
    for n, p in model.student.named_parameters():
        expected = 0.9 * before[n] + 0.1 * dict(model.context.named_parameters())[n]
        torch.testing.assert_close(p, expected, rtol=0, atol=1e-6)
    assert model.momentum_at(5, 11) == pytest.approx(0.95) and model.momentum_at(10, 11) == 1.0
    frozen = {n: p.clone() for n, p in model.student.named_parameters()}
    model.update_target(step=10, steps=11)  # momentum 1: the last step leaves the target as it is
    assert all(torch.equal(p, frozen[n]) for n, p in model.student.named_parameters())


def test_the_mim_jepa_loss_is_computed_on_masked_positions_only():
    torch.manual_seed(0)
    model = MimJepa(SPEC, predictor_depth=1).eval()
    images = torch.randn(4, 3, 32, 32)
    mask = block_masks(0, 0, np.arange(4), 4, 0.6)
    base = model(images, mask)["loss"]

    def with_noise(where):
        def hook(module, args, out):
            patch = out[:, 1:]
            return torch.cat([out[:, :1], torch.where(where[..., None], patch + 10, patch)], 1)
        handle = model.predictor.register_forward_hook(hook)
        try:
            return model(images, mask)["loss"]
        finally:
            handle.remove()

    assert torch.equal(with_noise(~mask), base)  # predictions at visible positions are not scored
    assert with_noise(mask) > base + 1


@pytest.mark.parametrize("objective", ["mim-jepa", "local-global"])
def test_a_self_supervised_run_learns_without_a_teacher_resumes_exactly_and_records_its_objective(
        tmp_path, subsets_dir, objective):
    kw = dict(steps=20, checkpoint_every=10)
    straight = train(_config(tmp_path, subsets_dir, objective, "straight", **kw))
    config = _config(tmp_path, subsets_dir, objective, "resumed", **kw)
    train(config, stop_after=10)
    resumed = train(config, resume=True)
    a, b = load_file(straight / "student.safetensors"), load_file(resumed / "student.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    assert [m["loss"] for m in _metrics(straight)] == pytest.approx([m["loss"] for m in _metrics(resumed)], rel=1e-5)
    record = json.loads((straight / "run.json").read_text())
    assert record["objective"] == objective and record["teachers"] == [] and record["mode"] == "online"
    assert TrainConfig.load(straight / "run.json").objective == objective


def test_the_exported_mim_jepa_student_is_the_target_encoder(tmp_path, subsets_dir):
    import timm

    import students  # noqa: F401 - registers vit_scott

    run = train(_config(tmp_path, subsets_dir, "mim-jepa", steps=5))
    state = load_file(run / "student.safetensors")
    exported = timm.create_model(f"local-dir:{run / 'student'}", pretrained=True)
    for name, value in exported.state_dict().items():
        torch.testing.assert_close(value, state[f"student.vit.{name}"], rtol=0, atol=0, check_dtype=False)
    assert any(not torch.equal(state[f"student.vit.{n}"], state[f"context.vit.{n}"]) for n, _ in exported.named_parameters())


def test_local_global_collapses_without_the_variance_term_and_not_with_it(tmp_path, subsets_dir):
    kw = dict(steps=60, checkpoint_every=60, log_every=10, lr=3e-3, weight_decay=0.05)
    kept = train(_config(tmp_path, subsets_dir, "local-global", "kept", **kw))
    collapsed = train(_config(tmp_path, subsets_dir, "local-global", "collapsed", w_variance=0.0, w_covariance=0.0, **kw))
    std_kept, std_collapsed = _metrics(kept)[-1]["feature_std"], _metrics(collapsed)[-1]["feature_std"]
    first = _metrics(collapsed)[0]["feature_std"]
    # measured: 0.112 at the first step; after 60 steps 0.0007 without the terms, 0.233 with them
    assert std_collapsed < 0.1 * first and std_collapsed < 0.1 * std_kept, (first, std_collapsed, std_kept)


@pytest.mark.parametrize("objective", ["mim-jepa", "local-global"])
def test_two_cpu_processes_equal_one_for_a_self_supervised_objective(tmp_path, subsets_dir, objective):
    # the patch stem: the SCOTT stem's batch norm takes its statistics per process, as DDP without SyncBatchNorm does
    args = ["train", "--objective", objective, "--subset", subsets_dir / "kcenter", "--student-kwargs", "depth=1",
            "--patch-size", "8", "--global-batch-size", "16", "--steps", "4", "--workers", "0", "--checkpoint-every", "4"]
    two = run_cli(*args, "--out", tmp_path / "two", launcher=ACCELERATE_2PROC)
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_cli(*args, "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = load_file(tmp_path / "two" / "student.safetensors"), load_file(tmp_path / "one" / "student.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-3, atol=1e-4)
    assert _metrics(tmp_path / "two")[-1]["loss"] == pytest.approx(_metrics(tmp_path / "one")[-1]["loss"], rel=1e-3)


@pytest.mark.parametrize("extra, message", [
    ({"targets": ["some/cache"]}, "learns without a teacher: give --subset"),
    ({"subset": None}, "needs --subset"),
    ({"jepa_mask_ratio": 1.0}, "jepa_mask_ratio 1.0"),
    ({"objective": "byol"}, "objective 'byol': choose one of distill, mim-jepa, local-global"),
])
def test_bad_self_supervised_settings_give_one_line(tmp_path, subsets_dir, extra, message):
    with pytest.raises(InputError, match=message):
        _config(tmp_path, subsets_dir, **({"objective": "mim-jepa"} | extra)).validate()


def test_a_self_supervised_run_given_a_cache_is_one_line_and_leaves_nothing(tmp_path, subsets_dir):
    cli = run_cli("train", "--objective", "mim-jepa", "--subset", subsets_dir / "kcenter", "--out", tmp_path / "x",
                  "--targets", "some/cache")
    assert cli.returncode != 0 and "learns without a teacher" in error_line(cli)
    assert not (tmp_path / "x").exists()


def test_a_sweep_compares_distillation_and_both_objectives_in_one_table_and_plot(tmp_path, image_folder):
    config = SweepConfig(out=str(tmp_path / "sw"), source=str(image_folder), encoder_resolution=32, methods=["random"],
                         ks=[20, 40], teacher_resolution=64,
                         train={"steps": 4, "batch_size": 8, "student_kwargs": {"depth": 1}, "workers": 0},
                         recipes=[{"name": "distill", "train": {}},
                                  {"name": "jepa", "train": {"objective": "mim-jepa"}},
                                  {"name": "lg", "train": {"objective": "local-global"}}],
                         eval={"train_source": "builtin:cifar10-demo", "train_samples": 200,
                               "test_source": "builtin:cifar10-demo-test", "test_samples": 100}).check()
    paths = run_sweep(config)
    rows = list(csv.DictReader(open(paths["comparison_csv"])))
    assert sorted((r["recipe"], r["objective"], r["k"]) for r in rows) == [
        (recipe, objective, k) for recipe, objective in [("distill", "distill"), ("jepa", "mim-jepa"),
                                                         ("lg", "local-global")] for k in ("20", "40")]
    for run in paths["runs"]:
        ev = json.loads((run / "eval.json").read_text())
        assert ev["objective"] == json.loads((run / "run.json").read_text())["config"]["objective"]
    table = paths["comparison_markdown"].read_text()
    assert "| recipe | objective | method | k |" in table and "| jepa | mim-jepa | random | 20 |" in table
    assert paths["comparison_recipes_plot"].read_bytes()[:4] == b"\x89PNG"
