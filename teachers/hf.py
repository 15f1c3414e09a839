"""Loading Hugging Face models from a local folder, the HF cache, or (online) the Hub, with clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

from subsets.errors import InputError


def hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def cached_models(cache_dir: str | None = None) -> dict[str, dict]:
    """The models in the Hugging Face cache that hold weights, by Hub id: {"bytes": size on disk, "model_type": what
    their config.json says (None without one)}. An empty or missing cache gives {}."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return {}
    out = {}
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        for rev in repo.revisions:
            names = {f.file_name for f in rev.files}
            if any(n.endswith((".safetensors", ".bin")) for n in names):
                try:
                    kind = folder_model_type(rev.snapshot_path) if "config.json" in names else None
                except InputError:
                    kind = None  # a damaged config.json: loading it says so
                out[repo.repo_id] = {"bytes": repo.size_on_disk, "model_type": kind}
                break
    return out


def folder_model_type(folder: Path) -> str | None:
    """`model_type` of a transformers folder, "timm" for a folder saved by timm, None otherwise."""
    config = Path(folder) / "config.json"
    if not config.is_file():
        return None
    try:
        cfg = json.loads(config.read_text())
    except json.JSONDecodeError:
        raise InputError(f"{config}: not valid JSON") from None
    if "architecture" in cfg:
        return "timm"
    return cfg.get("model_type")


def load_pretrained(model_cls, name: str, source: str, model_types: tuple[str, ...] | None = None):
    """`model_cls.from_pretrained(source)`, refused in one line where the weights are missing (saying where we looked),
    are not of `model_types`, or leave any of the model's parameters unloaded (random, so silently not the teacher)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report lists a CLIP or SigLIP text tower we do not load, every time
    try:
        model, info = model_cls.from_pretrained(source, output_loading_info=True)
    except (OSError, ValueError) as e:
        if "gated" in str(e).lower():  # DINOv3's weights: a licence to accept on the Hub, then a token
            raise InputError(f"{name}: {source} is gated on the Hub: accept its licence on its Hub page, log in "
                             "(`hf auth login` or HF_TOKEN) and run again") from None
        raise weights_missing(name, source, type(e).__name__) from None
    except RuntimeError as e:  # transformers' size mismatches and failed conversions
        raise InputError(f"{name}: the weights in {source} do not fit its config.json ({str(e).splitlines()[0]})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if model_types is not None and model.config.model_type not in model_types:
        raise InputError(f"{name}: {source} holds a {model.config.model_type!r} model, not one of {', '.join(model_types)}")
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise InputError(f"{name}: {source} lacks {len(missing)} of the model's weights ({missing[0]}, ...), which would "
                         "be random: not the teacher it names")
    return model.eval()


def weights_missing(name: str, source: str, why: str) -> InputError:
    """The one line for a teacher whose weights are not where it was looked for, and how to get them there."""
    where = source if Path(source).is_dir() else f"the Hugging Face cache ({hub_cache_dir()})"
    how = "HF_HUB_OFFLINE=1 is set, so the Hub was not asked; " if offline() else ""
    return InputError(f"{name}: no weights for {source} in {where} ({why}); {how}download them with "
                      f"`huggingface-cli download {source}` on a connected machine, or pass a local folder")


def preprocessor_mean_std(source: str, mean: tuple, std: tuple) -> tuple[tuple, tuple]:
    """The input normalisation a model's `preprocessor_config.json` states (DINOv3's satellite models use their own),
    where it has one; else `mean` and `std`, the family's."""
    from transformers.utils import cached_file

    try:
        path = cached_file(source, "preprocessor_config.json", _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False)
    except OSError:
        return mean, std
    if not path:
        return mean, std
    try:
        cfg = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        raise InputError(f"{path}: not valid JSON") from None
    found = cfg.get("image_mean"), cfg.get("image_std")
    if all(isinstance(v, list) and len(v) == 3 and all(isinstance(c, (int, float)) for c in v) for v in found):
        return tuple(map(float, found[0])), tuple(map(float, found[1]))
    return mean, std


def vit_info(name: str, source: str, model, resolution: int, mean_std: tuple[tuple, tuple], layers: tuple[int, ...],
             embed_dim: int | None = None):
    """The TeacherInfo of a transformers ViT image tower at `resolution`, with the intermediate maps `layers` asks."""
    from .base import TeacherInfo, state_dict_sha256

    cfg = model.config
    return TeacherInfo(
        name=name, source=source, sha256=state_dict_sha256(model), resolution=resolution, patch_size=cfg.patch_size,
        token_dim=cfg.hidden_size, embed_dim=embed_dim, mean=mean_std[0], std=mean_std[1],
        layers=block_layers(name, layers, cfg.num_hidden_layers, cfg.hidden_size, (resolution // cfg.patch_size) ** 2))


def block_layers(name: str, layers: tuple[int, ...], blocks: int, dim: int, tokens: int) -> dict:
    """`TeacherInfo.layers` of a ViT teacher's intermediate maps: the patch tokens after block L, L in 1..blocks-1
    (the last block's are `patch` already); another L is refused with one line."""
    from .base import check_layers, layer_name  # here: listing cached models (teacher_catalog) needs no torch

    check_layers(name, layers, blocks - 1, ": the blocks before its last")
    return {layer_name(layer): {"dim": dim, "tokens": tokens} for layer in sorted(set(layers))}


def block_maps(hidden_states: tuple, layers: tuple[int, ...], prefix: int = 1) -> dict:
    """The patch tokens after each block L (transformers' `hidden_states[L]`; [0] is the embeddings), as float;
    `prefix`: the tokens before the patches (a class token, registers; none in SigLIP)."""
    from .base import layer_name

    return {layer_name(layer): hidden_states[layer][:, prefix:].float() for layer in layers}
