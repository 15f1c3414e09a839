"""Export a trained student as a Hub-ready timm folder: config.json, model.safetensors, README.md (model card)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import yaml

from subsets.errors import InputError
from subsets.fileio import read_json

from .compute_account import compute_words
from .evaluate import load_run
from .model_cost import cost_cells

EXPORT_FILES = ("config.json", "model.safetensors", "README.md")  # what write_timm_folder writes (tested)


def export_run(run: Path, out: Path, overwrite: bool = False, license: str = "other") -> Path:
    """Write the student of a complete run as a folder `timm.create_model("local-dir:OUT", pretrained=True)` loads."""
    run, out = Path(run), Path(out)
    model, record = load_run(run)
    r, o = run.resolve(), out.resolve()
    if o == r or r in o.parents or o in r.parents:  # --overwrite would delete the run itself
        raise InputError(f"{out}: is, holds or lies inside the run {run}; export to a folder outside it")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file, not a folder; choose another --out")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"{out}: exists and is not empty; choose another --out or pass --overwrite")
        # --overwrite replaces the folder whole, so only an earlier export may be replaced, never a folder of
        # other things (`--out ~/models --overwrite` would have deleted every model there)
        if foreign := sorted(p.name for p in out.iterdir() if p.name not in EXPORT_FILES):
            raise InputError(f"{out}: --overwrite replaces an earlier export only, and this folder holds other files "
                             f"too ({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}); choose another --out")
    evaluation = read_json(run / "eval.json", "evaluation") if (run / "eval.json").exists() else None
    return write_timm_folder(model, record, out, evaluation, license)


def write_timm_folder(model, record: dict, out: Path, evaluation: dict | None = None, license: str = "other") -> Path:
    """The student of a DistillModel as a timm folder (config.json, model.safetensors, README.md), written whole
    or not at all: the export's layout, and the run folder's `student/`."""
    from timm.models import save_for_hf

    out = Path(out)
    s = record["student"]
    vit = model.student.timm_model
    vit.pretrained_cfg = {**vit.pretrained_cfg, "input_size": (3, s["img_size"], s["img_size"]), "mean": tuple(s["mean"]),
                          "std": tuple(s["std"]), "interpolation": "bicubic", "crop_pct": 1.0, "crop_mode": "squash",
                          "num_classes": 0, "tag": None, "hf_hub_id": None}
    vit.pretrained_cfg.pop("license", None)  # the architecture's default cfg; it says nothing of these weights
    model_args = s["kwargs"] if hasattr(model.student, "cnn") else {"img_size": s["img_size"], "patch_size": s["patch_size"],
                                                                      **s["kwargs"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_for_hf(vit, str(tmp), model_args=model_args, safe_serialization=True)
        (tmp / "README.md").write_text(model_card(record, evaluation, s["name"], vit.num_features, license,
                                                  hasattr(model.student, "cnn")))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def shape_words(record: dict, width: int, cnn: bool = False) -> str:
    """The student's real shape: the timm name says the default (e.g. patch 16 at 224 px), not what was trained."""
    s = record["student"]
    kwargs = s.get("kwargs", {})
    if cnn:
        return f"CNN, {width}-d features, {s['img_size']} px"
    parts = [f"{kwargs['depth']} blocks" if "depth" in kwargs else None, f"width {width}",
             f"patch {s['patch_size']}", f"{s['img_size']} px", f"{s.get('stem', 'patch')} stem"]
    return "ViT, " + ", ".join(p for p in parts if p)


def portable_config(config: dict) -> dict:
    """The training config without the training machine's paths (they mean nothing elsewhere)."""
    out = {k: v for k, v in config.items() if k not in ("out",)}
    for key in ("targets", "subset", "source"):
        value = out.get(key)
        if isinstance(value, list):
            out[key] = [Path(v).name for v in value]
        elif isinstance(value, str) and ("/" in value or "\\" in value) and ":" not in value.split("/")[0]:
            out[key] = Path(value).name
    return out


SELF_SUPERVISED_WORDS = {
    "mim-jepa": "the exported weights are the EMA target encoder of a masked-image JEPA",
    "local-global": "each patch token pulled toward the class token, with VICReg variance and covariance terms",
}


def model_card(record: dict, evaluation: dict | None, name: str, width: int, license: str = "other",
               cnn: bool = False) -> str:
    teachers = ", ".join(f"`{t['name']}` ({t['resolution']} px)" for t in record["teachers"])
    sub = record["subset"]
    shape = shape_words(record, width, cnn)
    kind = "student-cnn" if cnn else f"stem-{record['student'].get('stem', 'patch')}"
    front = {"library_name": "timm", "license": license,
             "tags": ["image-feature-extraction", "knowledge-distillation", "subset-distill",
                      f"img_size-{record['student']['img_size']}", kind],
             "pipeline_tag": "image-feature-extraction"}
    objective = record.get("objective", "distill")
    if objective != "distill":
        front["tags"][1] = "self-supervised"
    how = f"distilled from {teachers}" if objective == "distill" else \
        f"trained self-supervised ({objective}: {SELF_SUPERVISED_WORDS[objective]}; no teacher)"
    what = f"{record['mode']} targets" if objective == "distill" else "views made on the fly"
    lines = [
        "---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
        f"# {name} ({shape}) {'distilled' if objective == 'distill' else f'trained by {objective}'} on a "
        f"{sub['k']:,}-image {sub['method']} subset", "",
        f"A `{name}` student ({shape}; the timm name gives the architecture family, the shape is this one) {how} "
        f"on the first {sub['k']:,} images of a **{sub['method']}** subset (manifest hash "
        f"`{sub['hash'][:16]}`), made with subset-distill in {record['steps']:,} steps of "
        f"{record['batch_size']} ({record['epochs']:.1f} epochs of the subset's views, {what}"
        f"{', EMA weights' if record['student']['ema'] else ''}).", "",
        "The model returns the final class token (`num_classes=0`): an image feature for k-NN, probes or retrieval.", "",
    ]
    if evaluation:
        es = evaluation["eval_set"]
        lines += ["## Evaluation", "",
                  f"Frozen features; k-NN (k = {es['knn_k']}, T = {es['temperature']}) and a linear probe trained on "
                  f"`{es['train_source']}` ({es['train_samples'] or 'all'} images), tested on `{es['test_source']}`.", "",
                  "| model | k-NN top-1 | linear probe top-1 | cosine to teacher | parameters | MACs / image |",
                  "|---|---|---|---|---|---|"]
        st, costs = evaluation["student"], evaluation.get("cost") or {}
        agree = ", ".join(f"{v:.3f}" for v in st["agreement"].values() if v is not None) or "-"
        lines.append(f"| this student | {st['knn_top1']:.3f} | {st['probe_top1']:.3f} | {agree} | "
                     f"{' | '.join(cost_cells(costs.get('student')))} |")
        for tname, t in evaluation.get("teachers", {}).items():
            if t:
                lines.append(f"| teacher `{tname}` | {t['knn_top1']:.3f} | {t['probe_top1']:.3f} | 1 | "
                             f"{' | '.join(cost_cells(costs.get('teachers', {}).get(tname)))} |")
        lines.append("")
        if words := compute_words(costs.get("compute"), "Compute this student took"):
            lines += [f"{words} (multiply-accumulates; a FLOP count is about twice).", ""]
    s = record["student"]
    lines += [
        "## How to load", "",
        *(["This student has the SCOTT convolutional stem: its timm architecture `vit_scott` is registered by "
           "subset-distill (`pip install subset-distill`, then `import students` before creating the model).", ""]
          if s.get("stem") == "scott" else []),
        "```python", "import timm, torch",
        *(["import students  # registers vit_scott in timm"] if s.get("stem") == "scott" else []),
        'model = timm.create_model("hf-hub:REPO_ID", pretrained=True)  # or "local-dir:/path/to/this/folder"',
        "model.eval()",
        "cfg = timm.data.resolve_data_config(model=model)  # input size, mean and std used in training",
        "transform = timm.data.create_transform(**cfg)",
        f"features = model(transform(image).unsqueeze(0))  # [1, {width}]",
        "```", "",
        f"Inputs: {s['img_size']} x {s['img_size']} RGB, resized whole (bicubic), normalised with mean {s['mean']} and "
        f"std {s['std']}.", "",
        "## Training configuration", "", "Paths are given by their last part (the training machine's folders).", "",
        "```yaml", yaml.safe_dump(portable_config(record["config"]), sort_keys=False).strip(), "```", "",
        "## License", "",
        f"`{license}`: a distilled student inherits the terms of its teachers' weights and of the images it was "
        "distilled on; check both before use.", "",
    ]
    return "\n".join(lines)


def push(folder: Path, repo_id: str, private: bool = False) -> str:
    """Upload an exported folder to the Hub; one clear line when there is no token or no network."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if not (Path(folder) / "config.json").exists():
        raise InputError(f"{folder}: not an exported model folder (no config.json)")
    if get_token() is None:
        raise InputError(f"--push {repo_id}: no Hugging Face token (set HF_TOKEN or run `hf auth login`); "
                         f"the folder {folder} is ready to upload")
    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="Upload subset-distill student")
    except OfflineModeIsEnabled:
        raise InputError(f"--push {repo_id}: HF_HUB_OFFLINE is set; unset it on a connected machine "
                         f"(the folder {folder} is ready)") from None
    except (HfHubHTTPError, OSError) as e:
        raise InputError(f"--push {repo_id}: upload failed ({type(e).__name__}: {str(e).splitlines()[0]}); "
                         f"no network or no write access? The folder {folder} is ready") from None
    return str(info)
