"""Students: attention backends agree, shapes follow image and patch size, masks change only masked inputs."""

import pytest
import torch

from distill.losses import align_grid, check_grids, make_masks
from students import create_student, set_attention
from students.attention import xformers_available
from subsets.errors import InputError


def _outputs_and_grads(model, x, mask=None):
    model.zero_grad()
    out = model(x, mask)
    (out["cls"].square().sum() + out["patch"].square().mean()).backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_naive_and_sdpa_attention_give_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    model = create_student(depth=2).double()
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    backends = ["naive", "sdpa"] + (["xformers"] if xformers_available() and torch.cuda.is_available() else [])
    results = {}
    for b in backends:
        assert set_attention(model, b) == b
        results[b] = _outputs_and_grads(model, x)
    ref_out, ref_grads = results["naive"]
    for b in backends[1:]:
        out, grads = results[b]
        torch.testing.assert_close(out["patch"], ref_out["patch"], rtol=1e-9, atol=1e-9)
        assert grads.keys() == ref_grads.keys() and len(grads) > 10
        for name in grads:
            torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-9, atol=1e-9)
    # the switch really changes the kernel: a wrong scale in "naive" would have failed above
    assert all(m.backend == backends[-1] for m in model.modules() if hasattr(m, "backend"))


def test_auto_is_sdpa_on_cpu_and_forcing_xformers_without_cuda_is_refused():
    model = create_student(depth=1)
    assert set_attention(model, "auto", "cpu") == "sdpa"
    with pytest.raises(InputError, match="xformers"):
        set_attention(model, "xformers", "cpu")
    with pytest.raises(InputError, match="choose one of"):
        set_attention(model, "flash", "cpu")


@pytest.mark.parametrize("img, patch", [(32, 4), (48, 8), (56, 14)])
def test_student_returns_class_and_patch_tokens_for_any_image_and_patch_size(img, patch):
    model = create_student(img_size=img, patch_size=patch, depth=1)
    out = model(torch.randn(2, 3, img, img))
    assert out["cls"].shape == (2, 192) and out["patch"].shape == (2, (img // patch) ** 2, 192)
    with pytest.raises(InputError, match="not a multiple of its patch size"):
        create_student(img_size=img + 1, patch_size=patch)


def test_masking_replaces_exactly_the_masked_patch_embeddings():
    torch.manual_seed(0)
    model = create_student(depth=0).eval()  # no blocks: each output token depends only on its own input
    x = torch.randn(2, 3, 32, 32)
    mask = make_masks(seed=0, step=0, sample_ids=torch.arange(2).numpy(), patches=64, ratio=0.5, share=0.5)
    assert mask.sum(1).tolist() == [0, 32]  # sample 1 of 2 is masked, half of its patches
    plain, masked = model(x)["patch"], model(x, mask)["patch"]
    changed = (plain - masked).abs().amax(-1) > 1e-6
    assert torch.equal(changed, mask)
    again = make_masks(seed=0, step=0, sample_ids=torch.arange(2).numpy(), patches=64, ratio=0.5, share=0.5)
    assert torch.equal(mask, again) and not torch.equal(mask, make_masks(0, 1, torch.arange(2).numpy(), 64, 0.5, 0.5))


def test_teacher_grids_are_aligned_to_the_student_grid_or_refused():
    fmap = torch.arange(16.0).reshape(1, 16, 1).expand(1, 16, 3)  # a 4x4 map
    up = align_grid(fmap, 8)
    assert up.shape == (1, 64, 3)
    torch.testing.assert_close(up.mean(), fmap.mean())  # bilinear keeps the mean of a linear ramp
    assert align_grid(align_grid(fmap, 8), 4).shape == (1, 16, 3)
    with pytest.raises(InputError, match="square grid"):
        check_grids("t", 10, 8, ["patch"])
    with pytest.raises(InputError, match="1x1"):
        check_grids("t", 1, 8, ["feature"])
    check_grids("t", 1, 8, ["token"])  # a token-only run needs no map
