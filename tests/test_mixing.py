"""Mixup for small subsets: the same pairs and weights however the global batch is split, cached targets mixed by the
image's weights, an online teacher shown the mixed image, and training with it independent of the split."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from distill.config import TrainConfig
from distill.mixing import mix_batch, mix_weights
from distill.train import train
from subsets.errors import InputError

from .helpers import run_metrics
from .test_train import _config, caches  # noqa: F401 - the module's cache fixture


def test_weights_depend_on_the_seed_step_and_position_alone_not_on_how_the_batch_is_split():
    whole = mix_weights(3, 7, np.arange(16), 16, 1.0)
    halves = torch.cat([mix_weights(3, 7, np.arange(0, 8), 16, 1.0), mix_weights(3, 7, np.arange(8, 16), 16, 1.0)])
    torch.testing.assert_close(whole, halves, rtol=0, atol=0)
    assert ((whole > 0) & (whole < 1)).all()
    assert not torch.equal(whole, mix_weights(3, 8, np.arange(16), 16, 1.0))  # another step, other weights
    assert not torch.equal(whole, mix_weights(4, 7, np.arange(16), 16, 1.0))  # another seed, other weights


def test_cached_targets_are_mixed_by_their_images_weights_with_the_pair_partner():
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.randn(4, 3, 8, 8, generator=g), "position": torch.arange(4),
             "targets": {"t": {"cls": torch.randn(4, 5, generator=g), "patch": torch.randn(4, 16, 5, generator=g)}}}
    lam = torch.tensor([1.0, 0.25, 0.5, 0.0])
    mixed = mix_batch(batch, lam)
    for i, j in ((0, 1), (1, 0), (2, 3), (3, 2)):  # positions 2i and 2i+1 pair up
        for new, old in ((mixed["image"], batch["image"]), (mixed["targets"]["t"]["cls"], batch["targets"]["t"]["cls"]),
                         (mixed["targets"]["t"]["patch"], batch["targets"]["t"]["patch"])):
            torch.testing.assert_close(new[i], lam[i] * old[i] + (1 - lam[i]) * old[j])
    torch.testing.assert_close(mixed["position"], batch["position"])  # bookkeeping is not mixed


def test_an_online_teacher_is_shown_the_mixed_image():
    g = torch.Generator().manual_seed(1)
    batch = {"image": torch.randn(2, 3, 8, 8, generator=g), "teacher_image": torch.randn(2, 3, 32, 32, generator=g)}
    lam = torch.tensor([0.75, 0.4])
    mixed = mix_batch(batch, lam)
    torch.testing.assert_close(mixed["teacher_image"][0], 0.75 * batch["teacher_image"][0] + 0.25 * batch["teacher_image"][1])
    torch.testing.assert_close(mixed["image"][1], 0.4 * batch["image"][1] + 0.6 * batch["image"][0])
    assert "targets" not in mixed


def test_a_mixup_run_with_two_accumulation_steps_equals_one_and_differs_from_no_mixup(tmp_path, caches):  # noqa: F811
    one = train(_config(tmp_path, caches, "one", steps=4, mixup_alpha=1.0))
    two = train(_config(tmp_path, caches, "two", steps=4, mixup_alpha=1.0, grad_accum=2))
    plain = train(_config(tmp_path, caches, "plain", steps=4))
    a, b, c = (load_file(r / "student.safetensors") for r in (one, two, plain))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=5e-5)
    assert run_metrics(one)[0]["loss"] == pytest.approx(run_metrics(two)[0]["loss"], rel=1e-5)
    assert run_metrics(one)[0]["loss"] != pytest.approx(run_metrics(plain)[0]["loss"], rel=1e-3)
    assert any(not torch.allclose(a[n], c[n]) for n in a)


def test_mixup_settings_that_cannot_work_give_one_line(tmp_path, caches):  # noqa: F811
    with pytest.raises(InputError, match="leaves an odd number"):
        train(_config(tmp_path, caches, "odd", batch_size=6, grad_accum=2, mixup_alpha=1.0))
    with pytest.raises(InputError, match="mixup_alpha -1"):
        TrainConfig(targets=["x"], mixup_alpha=-1).validate()
    with pytest.raises(InputError, match="no teacher to label a mixture"):
        TrainConfig(objective="mim-jepa", subset="s", mixup_alpha=1.0).validate()
    assert not (tmp_path / "odd").exists()
