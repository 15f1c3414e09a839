"""Encoders for the subset stage: the shipped MobileNetV2 and timm models from a local folder."""

import shutil

import pytest
import timm
import torch
import torchvision
from safetensors.torch import load_file

from subsets.errors import InputError
from teachers import load_teacher
from teachers.torchvision_cnn import WEIGHTS, MobileNetV2Teacher

from .helpers import error_line, run_cli


def test_mobilenet_outputs_equal_torchvision_features():
    teacher = load_teacher("mobilenetv2_imagenet", resolution=64)
    ref = torchvision.models.mobilenet_v2()
    ref.load_state_dict(load_file(str(WEIGHTS)))
    ref.eval()
    x = torch.randn(3, 3, 64, 64)
    out = teacher(x)
    with torch.no_grad():
        fmap = ref.features(x)
    assert out["patch"].shape == (3, 4, 1280) and teacher.info.grid == 2
    torch.testing.assert_close(out["cls"], fmap.mean((2, 3)), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out["patch"], fmap.flatten(2).transpose(1, 2), atol=1e-4, rtol=1e-4)
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.train().training


def test_mobilenet_weights_with_wrong_hash_are_refused(tmp_path):
    bad = tmp_path / "w.safetensors"
    shutil.copy(WEIGHTS, bad)
    with open(bad, "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(InputError, match="w.safetensors: sha256 is .* expected"):
        MobileNetV2Teacher(bad)
    with pytest.raises(InputError, match="not found"):
        MobileNetV2Teacher(tmp_path / "missing.safetensors")


def test_timm_teacher_loads_a_local_folder_saved_by_timm(tmp_path):
    from timm.models import save_for_hf

    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32, patch_size=8)
    save_for_hf(model, tmp_path / "tiny", model_config={"pretrained_cfg": {"input_size": [3, 32, 32]}})
    teacher = load_teacher(f"timm:{tmp_path / 'tiny'}")
    assert teacher.info.resolution == 32 and teacher.info.patch_size == 8 and teacher.info.token_dim == 192
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        tokens = model.forward_features(x)
    out = teacher(x)
    torch.testing.assert_close(out["cls"], model.forward_head(tokens, pre_logits=True))
    torch.testing.assert_close(out["patch"], tokens[:, 1:])


def test_unknown_or_unavailable_encoders_say_so(tmp_path):
    with pytest.raises(InputError, match="unknown teacher"):
        load_teacher("dinov3_huge")
    res = run_cli("subset", "embed", "--source", "builtin:cifar10-demo-test", "--encoder",
                  "timm:vit_small_patch14_dinov2.lvd142m", "--out", tmp_path / "o")
    assert res.returncode == 2 and "could not load its weights" in error_line(res)
    assert not (tmp_path / "o").exists()
