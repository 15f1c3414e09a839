"""DINOv2 and CLIP teachers: tiny random models saved by transformers, loaded as a user loads real ones."""

import shutil

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Dinov2Config, Dinov2Model

from subsets.errors import InputError
from teachers import load_teacher

from .helpers import error_line, run_cli_in_new_process

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


@pytest.fixture(scope="module")
def tiny_dinov2(tmp_path_factory):
    torch.manual_seed(0)
    model = Dinov2Model(Dinov2Config(**TINY, image_size=28, patch_size=14)).eval()
    folder = tmp_path_factory.mktemp("dinov2") / "tiny-dinov2"
    model.save_pretrained(folder)
    return model, folder


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    torch.manual_seed(0)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY, image_size=32, patch_size=8, projection_dim=16)).eval()
    folder = tmp_path_factory.mktemp("clip") / "tiny-clip"
    model.save_pretrained(folder)
    return model, folder


def test_dinov2_from_a_local_folder_matches_the_library(tiny_dinov2):
    model, folder = tiny_dinov2
    teacher = load_teacher(str(folder), resolution=28)
    assert (teacher.info.patch_size, teacher.info.grid, teacher.info.token_dim) == (14, 2, 32)
    x = torch.randn(2, 3, 28, 28)
    out = teacher(x)
    with torch.no_grad():
        ref = model(pixel_values=x)
    torch.testing.assert_close(out["cls"], ref.pooler_output)
    torch.testing.assert_close(out["patch"], ref.last_hidden_state[:, 1:])
    assert out["patch"].shape == (2, 4, 32) and "embed" not in out
    # with layers: the patch tokens after block 1 of 2 (the layer level's targets), the rest unchanged
    layered = load_teacher(str(folder), resolution=28, layers=[1])
    assert layered.info.layers == {"layer1_patch": {"dim": 32, "tokens": 4}}
    out = layered(x)
    with torch.no_grad():
        hidden = model(pixel_values=x, output_hidden_states=True).hidden_states
    torch.testing.assert_close(out["layer1_patch"], hidden[1][:, 1:])
    torch.testing.assert_close(out["patch"], ref.last_hidden_state[:, 1:])
    with pytest.raises(InputError, match="layer 2 is not an intermediate layer"):
        load_teacher(str(folder), layers=[2])


def test_clip_from_a_local_folder_matches_the_library(tiny_clip):
    model, folder = tiny_clip
    teacher = load_teacher(str(folder))
    assert (teacher.info.resolution, teacher.info.grid, teacher.info.embed_dim) == (32, 4, 16)
    x = torch.randn(2, 3, 32, 32)
    out = teacher(x)
    with torch.no_grad():
        ref = model(pixel_values=x)
        pooled = model.vision_model(pixel_values=x).pooler_output
    torch.testing.assert_close(out["embed"], ref.image_embeds)
    torch.testing.assert_close(out["cls"], pooled)
    # patch tokens in the same space as `cls`: after CLIP's final norm, as DINOv2's are
    normed = model.vision_model.post_layernorm(ref.last_hidden_state)
    torch.testing.assert_close(out["cls"], normed[:, 0])
    torch.testing.assert_close(out["patch"], normed[:, 1:])
    assert not torch.allclose(out["patch"], ref.last_hidden_state[:, 1:])
    out = load_teacher(str(folder), layers=[1])(x)
    with torch.no_grad():
        hidden = model.vision_model(pixel_values=x, output_hidden_states=True).hidden_states
    torch.testing.assert_close(out["layer1_patch"], hidden[1][:, 1:])
    torch.testing.assert_close(out["embed"], ref.image_embeds)


def _as_hub_cache(folder, cache, repo_id):
    """Lay a saved model out as the Hugging Face cache holds a download of `repo_id`."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)


def test_registry_names_load_from_the_hf_cache_offline(tmp_path, tiny_dinov2, tiny_clip, image_folder):
    cache = tmp_path / "hub"
    _as_hub_cache(tiny_dinov2[1], cache, "facebook/dinov2-small")
    _as_hub_cache(tiny_clip[1], cache, "openai/clip-vit-base-patch16")
    embed = ["subset", "embed", "--source", image_folder, "--out"]
    *found, missing = run_cli_in_new_process(  # the Hub cache is where HF_HUB_CACHE said when huggingface_hub loaded
        *[embed + [tmp_path / name, "--encoder", name, "--resolution", r]
          for name, r in (("dinov2_vits14", 28), ("clip_vitb16", 32))],
        embed + [tmp_path / "large", "--encoder", "dinov2_vitl14"],
        env_extra={"HF_HUB_CACHE": str(cache)}, record=tmp_path / "record.json")
    for res in found:
        assert res.returncode == 0, res.stderr
    line = error_line(missing)
    assert "dinov2_vitl14: no weights for facebook/dinov2-large" in line and str(cache) in line
    assert "HF_HUB_OFFLINE=1" in line and not (tmp_path / "large").exists()


def test_a_folder_that_is_no_teacher_is_refused(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(InputError, match="not a DINOv2, CLIP or timm model"):
        load_teacher(str(tmp_path / "x"))
