"""DINOv2, DINOv3, CLIP and SigLIP teachers: tiny random models saved by transformers, loaded as a user loads real
ones."""

import json
import shutil

import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from timm.models import save_for_hf
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    Dinov2Config,
    Dinov2Model,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersModel,
    DINOv3ViTConfig,
    DINOv3ViTModel,
    SiglipConfig,
    SiglipModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from distill.config import TrainConfig
from distill.train import train
from subsets.errors import InputError
from subsets.manifest import read_manifest
from subsets.sources import open_source
from teachers import load_teacher
from teachers.cache import CacheConfig, TargetCache, cache_targets
from teachers.catalog import HUB_IDS
from teachers.views import ViewPolicy, apply_view

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


def _saved(model, folder):
    model.eval().save_pretrained(folder)
    return model, folder


@pytest.fixture(scope="module")
def tiny_dinov3(tmp_path_factory):
    """A DINOv3 ViT: RoPE positions, 4 register tokens between the class token and the patches."""
    torch.manual_seed(0)
    config = DINOv3ViTConfig(**TINY, image_size=32, patch_size=16, num_register_tokens=4)
    return _saved(DINOv3ViTModel(config), tmp_path_factory.mktemp("dinov3") / "tiny-dinov3")


@pytest.fixture(scope="module")
def tiny_siglip(tmp_path_factory):
    """A whole SigLIP model (text tower too), as google/siglip-* is saved: the teacher loads its image tower."""
    torch.manual_seed(0)
    config = SiglipConfig(vision_config=TINY | dict(image_size=32, patch_size=8),
                          text_config=TINY | dict(vocab_size=64, bos_token_id=1, eos_token_id=2, pad_token_id=0))
    return _saved(SiglipModel(config), tmp_path_factory.mktemp("siglip") / "tiny-siglip")


@pytest.mark.parametrize("family", ["dinov2_with_registers", "dinov3"])
def test_dino_teachers_with_registers_give_the_patch_tokens_after_them(tmp_path, family, tiny_dinov3):
    if family == "dinov3":
        model, folder = tiny_dinov3
        res, patch = 32, 16
    else:
        torch.manual_seed(0)
        config = Dinov2WithRegistersConfig(**TINY, image_size=28, patch_size=14, num_register_tokens=4)
        model, folder = _saved(Dinov2WithRegistersModel(config), tmp_path / "tiny-dinov2-reg")
        res, patch = 28, 14
    teacher = load_teacher(str(folder), resolution=res, layers=[1])
    assert (teacher.info.patch_size, teacher.info.grid, teacher.info.token_dim) == (patch, 2, 32)
    x = torch.randn(2, 3, res, res)
    out = teacher(x)
    with torch.no_grad():
        ref = model(pixel_values=x, output_hidden_states=True)
    # class token, 4 registers, then the 2 x 2 patches: the registers are in no target
    torch.testing.assert_close(out["cls"], ref.pooler_output)
    torch.testing.assert_close(out["patch"], ref.last_hidden_state[:, 5:])
    torch.testing.assert_close(out["layer1_patch"], ref.hidden_states[1][:, 5:])
    assert out["patch"].shape == out["layer1_patch"].shape == (2, 4, 32) and "embed" not in out


def test_siglip_from_a_whole_saved_model_gives_its_pooled_embedding_and_every_token(tmp_path, tiny_siglip):
    model, folder = tiny_siglip
    tower = model.vision_model
    teacher = load_teacher(str(folder), layers=[1])
    assert (teacher.info.resolution, teacher.info.grid, teacher.info.mean) == (32, 4, (0.5, 0.5, 0.5))
    x = torch.randn(2, 3, 32, 32)
    out = teacher(x)
    with torch.no_grad():
        ref = tower(pixel_values=x, output_hidden_states=True)
        image_embeds = model.get_image_features(pixel_values=x)
    # no class token: `cls` is SigLIP's image embedding (the attention-pooled tokens), every token a patch
    torch.testing.assert_close(out["cls"], ref.pooler_output)
    torch.testing.assert_close(out["cls"], getattr(image_embeds, "pooler_output", image_embeds))
    torch.testing.assert_close(out["patch"], ref.last_hidden_state)
    torch.testing.assert_close(out["layer1_patch"], ref.hidden_states[1])
    # another input side: the learnt positions are resized, the grid follows
    wider = load_teacher(str(folder), resolution=48)
    assert wider.info.grid == 6 and wider(torch.randn(1, 3, 48, 48))["patch"].shape == (1, 36, 32)
    # the image tower saved alone loads as the same teacher
    alone, alone_folder = _saved(SiglipVisionModel(SiglipVisionConfig(**TINY, image_size=32, patch_size=8)),
                                 tmp_path / "tower")
    with torch.no_grad():
        torch.testing.assert_close(load_teacher(str(alone_folder))(x)["cls"], alone(pixel_values=x).pooler_output)


def test_a_models_preprocessor_config_sets_the_input_normalisation(tmp_path, tiny_dinov3):
    folder = tmp_path / "sat"
    shutil.copytree(tiny_dinov3[1], folder)
    sat_mean, sat_std = [0.430, 0.411, 0.296], [0.213, 0.156, 0.143]  # DINOv3's satellite models
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": sat_mean, "image_std": sat_std}))
    teacher = load_teacher(str(folder), resolution=32)
    assert teacher.info.mean == tuple(sat_mean) and teacher.info.std == tuple(sat_std)
    image = Image.new("RGB", (32, 32), (255, 0, 128))
    expected = (torch.tensor([1.0, 0.0, 128 / 255]) - torch.tensor(sat_mean)) / torch.tensor(sat_std)
    torch.testing.assert_close(teacher.preprocess(image)[:, 0, 0], expected)
    assert load_teacher(str(tiny_dinov3[1]), resolution=32).info.mean == (0.485, 0.456, 0.406)  # none: ImageNet's


def test_a_folder_missing_some_weights_or_of_another_kind_is_refused_in_one_line(tmp_path, tiny_dinov3):
    folder = tmp_path / "partial"
    shutil.copytree(tiny_dinov3[1], folder)
    weights = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in weights.items() if k != "norm.weight"}, folder / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(InputError, match=r"lacks 1 of the model's weights \(norm.weight, \.\.\.\), which would be random"):
        load_teacher(str(folder))
    naflex = tmp_path / "naflex"
    naflex.mkdir()
    (naflex / "config.json").write_text('{"model_type": "siglip2"}')
    with pytest.raises(InputError, match="SigLIP 2 NaFlex model"):
        load_teacher(str(naflex))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="a folder without config.json"):
        load_teacher(str(tmp_path / "empty"))


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


def test_registry_names_load_from_the_hf_cache_offline(tmp_path, tiny_dinov2, tiny_clip, tiny_dinov3, tiny_siglip,
                                                        image_folder):
    cache = tmp_path / "hub"
    named = {"dinov2_vits14": (tiny_dinov2, 28), "clip_vitb16": (tiny_clip, 32), "dinov3_vits16": (tiny_dinov3, 32),
             "siglip2_vitb16": (tiny_siglip, 32)}
    for name, (tiny, _) in named.items():
        _as_hub_cache(tiny[1], cache, HUB_IDS[name])
    # a timm model under a Hub id of its own, as `timm.models.push_to_hf_hub` leaves one: loaded by that id
    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=16, depth=1, num_classes=0)
    save_for_hf(vit, str(tmp_path / "tiny-timm"), model_args={"img_size": 32, "patch_size": 16, "depth": 1})
    _as_hub_cache(tmp_path / "tiny-timm", cache, "someone/tiny-timm-vit")
    embed = ["subset", "embed", "--source", image_folder, "--out"]
    listed, *found, evaluated = run_cli_in_new_process(  # the Hub cache is where HF_HUB_CACHE said at its import
        ["teachers"],
        *[embed + [tmp_path / name, "--encoder", name, "--resolution", r] for name, (_, r) in named.items()],
        embed + [tmp_path / "timm", "--encoder", "someone/tiny-timm-vit"],
        embed + [tmp_path / "large", "--encoder", "dinov2_vitl14"],
        # teachers evaluated in turn: the missing second one is refused before the first one's work
        ["eval", "--teacher", "dinov2_vits14", "--teacher", "dinov2_vitl14", "--test-source",
         "builtin:cifar10-demo-test", "--out", tmp_path / "teachers.json"],
        env_extra={"HF_HUB_CACHE": str(cache)}, record=tmp_path / "record.json")
    *found, missing = found
    for res in found:
        assert res.returncode == 0, res.stderr
    for res in (missing, evaluated):
        line = error_line(res)
        assert "dinov2_vitl14: no weights for facebook/dinov2-large" in line and str(cache) in line
        assert "HF_HUB_OFFLINE=1" in line
    assert not (tmp_path / "large").exists() and not (tmp_path / "teachers.json").exists()
    assert "dinov2_vits14 on" not in evaluated.stdout + evaluated.stderr  # no features made: refused first
    # `distill teachers` says which names have their weights here, and what else in the cache loads as a teacher
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.split("│")[1:-1]]
                                              for line in listed.stdout.splitlines() if "│" in line) if cells[0]}
    assert listed.returncode == 0 and rows["mobilenetv2_imagenet"][-1] == "yes"
    assert all(rows[name][-1].startswith("yes") for name in named) and rows["dinov2_vitl14"][-1] == "no"
    assert rows["someone/tiny-timm-vit"][0] == "timm" and f"5 of {1 + len(HUB_IDS)} named teachers are here" in listed.stdout


def test_a_folder_that_is_no_teacher_is_refused(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(InputError, match="model_type .bert., not a teacher this tool loads"):
        load_teacher(str(tmp_path / "x"))


def test_a_dinov3_cache_holds_the_teachers_patch_tokens_and_a_student_trains_on_them(tmp_path, tiny_dinov3,
                                                                                     subsets_dir, image_folder):
    teacher = load_teacher(str(tiny_dinov3[1]), resolution=32)
    subset = read_manifest(subsets_dir / "random")
    out = cache_targets(open_source(image_folder), subset, teacher, tmp_path / "targets", k=8,
                        config=CacheConfig(views=ViewPolicy(views=2, seed=3), batch_size=8))
    cache, images = TargetCache(out), {k: im for k, im, _ in open_source(image_folder).iter_images()}
    t = cache.targets(5)
    crops = torch.stack([teacher.normalize(apply_view(images[subset.keys[5]], v, 32)) for v in t["view"].numpy()])
    fresh = teacher(crops)
    assert t["patch"].shape == (2, 4, 32)  # the 2 x 2 patches, not the registers
    torch.testing.assert_close(t["patch"].float(), fresh["patch"], atol=2e-2, rtol=2e-3)
    torch.testing.assert_close(t["cls"].float(), fresh["cls"], atol=2e-3, rtol=2e-3)
    run = train(TrainConfig(out=str(tmp_path / "run"), targets=[str(out)], img_size=32, patch_size=16,
                            student_kwargs={"depth": 1}, batch_size=8, steps=3, workers=0, log_every=1))
    assert json.loads((run / "run.json").read_text())["teachers"][0]["name"] == str(tiny_dinov3[1])


def test_a_gated_model_says_to_accept_its_licence_and_log_in():
    from teachers.hf import load_pretrained

    class Gated:  # what transformers raises for DINOv3 without an accepted licence and a token
        @staticmethod
        def from_pretrained(source, **kw):
            raise OSError(f"{source} is a gated repository. Make sure to request access at https://huggingface.co/"
                          f"{source} and pass a token having permission to this repo")

    with pytest.raises(InputError, match=r"dinov3_vitb16: facebook/dinov3-vitb16-pretrain-lvd1689m is gated on the "
                                         r"Hub: accept its licence .* log in \(`hf auth login` or HF_TOKEN\)"):
        load_pretrained(Gated, "dinov3_vitb16", HUB_IDS["dinov3_vitb16"])
