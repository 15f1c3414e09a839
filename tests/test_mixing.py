"""Mixup for small subsets: the same pairs and weights however the global batch is split, cached targets mixed by the
image's weights, an online teacher shown the mixed image (training with mixup: tests/test_train.py)."""

import numpy as np
import torch

from distill.mixing import mix_batch, mix_weights


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
