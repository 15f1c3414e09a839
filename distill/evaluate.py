"""Evaluation on a labelled train/test pair: k-NN and a linear probe on frozen features, agreement with the
teachers on held-out images, and the same evaluation of each teacher (the reference row)."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file
from torchvision.transforms import v2

from subsets.errors import InputError
from subsets.fileio import write_json_atomic
from subsets.lock import held_by
from subsets.progress import progress_bar
from subsets.provenance import environment
from subsets.sources import UnreadableImage, collect_records, decode_image, open_source, seeded_rows
from teachers.base import to_normalized_tensor

from .compute_account import run_compute
from .config import TrainConfig
from .data import TeacherTargets
from .eval_config import EvalConfig, class_map
from .model_cost import model_cost
from .teacher_labels import run_teacher_labels

EVAL_FORMAT = "subset-distill/eval"


@dataclass(frozen=True, eq=False)  # hashed by identity: one object per loaded set (see _labelled)
class LabelledImages:
    images: tuple[Image.Image, ...]
    labels: torch.Tensor
    classes: int
    corpus_hash: str


def classes_of_test_images(eval_set: dict) -> tuple[np.ndarray, list[str] | None]:
    """The class of every test image of an evaluation, in the order of its per-image results, and the class names;
    read from the source's index alone (no image decoded), once per process. Refuses a test source that has changed
    since."""
    return _test_classes(eval_set["test_source"], eval_set["test_corpus"], eval_set["test_samples"], eval_set["seed"])


@functools.lru_cache(maxsize=4)
def _test_classes(spec: str, corpus_hash: str, samples: int | None, seed: int) -> tuple[np.ndarray, list[str] | None]:
    src = open_source(spec)
    if src.corpus_hash() != corpus_hash:
        raise InputError(f"{spec}: lists other images or labels than when the runs were evaluated; re-evaluate them")
    index = src.index()
    rows = seeded_rows(len(index), samples, seed)
    return np.array([index[i][1] for i in rows]), src.classes


@functools.lru_cache(maxsize=4)
def _labelled(spec: str, samples: int | None, seed: int) -> LabelledImages:
    """A seeded sample of a labelled source, decoded once per process (runs of a sweep share it)."""
    src = open_source(spec)
    index = src.index()
    if any(label is None for _, label in index):
        raise InputError(f"{spec}: images without labels; evaluation needs class subfolders or a `cls` field")
    rows = seeded_rows(len(index), samples, seed)
    keys = [index[i][0] for i in rows]
    records = collect_records(src, keys)
    try:
        images = tuple(decode_image(records[k]) for k in keys)
    except UnreadableImage as e:
        raise InputError(f"{e}: evaluation sets must be readable throughout") from None
    labels = torch.tensor([index[i][1] for i in rows])
    return LabelledImages(images, labels, int(max(label for _, label in index)) + 1, src.corpus_hash())


@functools.lru_cache(maxsize=8)
def _pixels(data: LabelledImages, resolution: int, mean: tuple, std: tuple) -> torch.Tensor:
    """The whole images at a model's resolution, normalised: made once per process, shared by every run of a sweep."""
    transform = _to_tensor(resolution, mean, std)
    return torch.stack([transform(im) for im in data.images])


@torch.no_grad()
def extract(fn, data: LabelledImages, resolution: int, mean, std, batch_size: int, device, what: str,
            keep_pixels: bool = True) -> torch.Tensor:
    """fn(batch) -> [B, D] over every image, as float32 on the CPU."""
    pixels = (_pixels if keep_pixels else _pixels.__wrapped__)(data, resolution, tuple(mean), tuple(std))
    out = []
    with progress_bar("img") as bar:
        task = bar.add_task(what, total=len(pixels))
        for b0 in range(0, len(pixels), batch_size):
            out.append(fn(pixels[b0:b0 + batch_size].to(device)).float().cpu())
            bar.advance(task, len(out[-1]))
    return torch.cat(out)


def knn_accuracy(train: torch.Tensor, train_y: torch.Tensor, test: torch.Tensor, test_y: torch.Tensor,
                 classes: int, k: int = 20, temperature: float = 0.07) -> float:
    return _share(knn_correct(train, train_y, test, test_y, classes, k, temperature))


def _share(correct: torch.Tensor) -> float:
    return correct.sum().item() / len(correct)


def knn_correct(train: torch.Tensor, train_y: torch.Tensor, test: torch.Tensor, test_y: torch.Tensor,
                classes: int, k: int = 20, temperature: float = 0.07) -> torch.Tensor:
    """Weighted k-NN on cosine similarity (DINO): each of the k nearest votes exp(cos / T) for its class.
    Returns whether each test image is classified correctly."""
    train, test = F.normalize(train, dim=1), F.normalize(test, dim=1)
    k = min(k, len(train))
    correct = []
    for b0 in range(0, len(test), 1024):
        sim, idx = (test[b0:b0 + 1024] @ train.T).topk(k, dim=1)
        votes = torch.zeros(len(sim), classes).scatter_add_(1, train_y[idx], (sim / temperature).exp())
        correct.append(votes.argmax(1) == test_y[b0:b0 + 1024])
    return torch.cat(correct)


def probe_accuracy(train: torch.Tensor, train_y: torch.Tensor, test: torch.Tensor, test_y: torch.Tensor,
                   classes: int, weight_decay: float = 1e-3, iters: int = 100) -> float:
    return _share(probe_correct(train, train_y, test, test_y, classes, weight_decay, iters))


def probe_correct(train: torch.Tensor, train_y: torch.Tensor, test: torch.Tensor, test_y: torch.Tensor,
                  classes: int, weight_decay: float = 1e-3, iters: int = 100) -> torch.Tensor:
    """Multinomial logistic regression on standardised frozen features, fitted by L-BFGS (deterministic).
    Returns whether each test image is classified correctly."""
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    x, xt = (train - mean) / std, (test - mean) / std
    w = torch.zeros(x.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=iters, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, train_y) + weight_decay * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return (xt @ w + b).argmax(1) == test_y


def _to_tensor(resolution: int, mean, std) -> v2.Compose:
    """The whole image at the model's resolution: view 0 of training (no crop: CIFAR-like images are square)."""
    return v2.Compose([v2.ToImage(), v2.Resize((resolution, resolution), interpolation=v2.InterpolationMode.BICUBIC,
                                               antialias=True), to_normalized_tensor(mean, std)])


def check_complete(run: Path) -> dict:
    """The run.json of a complete run; one line naming what is missing otherwise."""
    from .run_dir import run_record

    record = run_record(run)
    if not (record and record.get("complete")):
        holder = held_by(run)
        hint = f"it is training now, {holder}: wait for it to end" if holder else \
            "it has checkpoints: finish it with --resume" if (Path(run) / "checkpoints").exists() else \
            "it stopped before its first checkpoint: rerun it" if (Path(run) / "run.json").exists() else "no run.json"
        raise InputError(f"{run}: not a complete training run ({hint})")
    return record


def load_run(run: Path):
    """The trained student and heads of a complete run, and its run.json."""
    from .train import build_model

    run = Path(run)
    record = check_complete(run)
    config = TrainConfig.from_dict(record["config"], str(run / "run.json"))
    teachers = [TeacherTargets(t["key"], t, t["tokens"]) for t in record["teachers"]]
    model = build_model(config, teachers)
    try:
        model.load_state_dict(load_file(str(run / "student.safetensors")))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise InputError(f"{run / 'student.safetensors'}: damaged or not this run's student "
                         f"({str(e).splitlines()[0]}); train the run again") from None
    return model.eval(), record


def run_corpus(run: Path) -> str | None:
    """The corpus a run was distilled from (its `source`, else its subset's), when this machine can see it."""
    from subsets.manifest import read_manifest

    from .run_dir import run_record

    record = run_record(run)
    if record is None:
        return None
    if record["config"].get("source"):
        return record["config"]["source"]
    try:
        return read_manifest(Path(record["subset"]["path"])).meta["embeddings"]["source"]
    except (InputError, OSError, KeyError):
        return None


@functools.lru_cache(maxsize=4)
def _teacher(name: str, resolution: int, sha256: str):
    from teachers import load_teacher

    teacher = load_teacher(name, resolution=resolution)
    if teacher.info.sha256 != sha256:
        raise InputError(f"{name}: loads weights {teacher.info.sha256[:12]}, the run was distilled from {sha256[:12]}")
    return teacher


@functools.lru_cache(maxsize=4)
def _teacher_cost(name: str, resolution: int, sha256: str) -> dict:
    return model_cost(_teacher(name, resolution, sha256), resolution)


def teacher_cost(info: dict) -> dict:
    """The teacher's parameters and MACs per image, as it ran for the targets."""
    return _teacher_cost(info["name"], info["resolution"], info["sha256"])


_teacher_features_cache: dict = {}


def teacher_features(info: dict, which: str, config: EvalConfig, device) -> torch.Tensor:
    """A teacher's `cls` on the train or test images (computed once per process)."""
    key = (info["name"], info["resolution"], info["sha256"], which, config)
    if key not in _teacher_features_cache:
        teacher = _teacher(info["name"], info["resolution"], info["sha256"]).to(device)
        fn = lambda x: teacher(x)["cls"]  # noqa: E731
        _teacher_features_cache[key] = extract(fn, _data(config, which), info["resolution"], info["mean"], info["std"],
                                               config.batch_size, device, f"{info['name']} on {which}",
                                               keep_pixels=False)  # its features are kept instead
    return _teacher_features_cache[key]


def _data(config: EvalConfig, which: str) -> LabelledImages:
    if which == "train":
        return _labelled(config.train_source, config.train_samples, config.seed)
    return _test_set(config.test_source, config.test_samples, config.seed, config.train_source)


@functools.lru_cache(maxsize=4)
def _test_set(spec: str, samples: int | None, seed: int, train_spec: str) -> LabelledImages:
    """The test images with their labels in the train source's numbering (`class_map`)."""
    test = _labelled(spec, samples, seed)
    to_train = class_map(spec, train_spec)
    if to_train is None:
        return test
    return LabelledImages(test.images, torch.tensor(to_train)[test.labels], test.classes, test.corpus_hash)


def student_features(student, record: dict, config: EvalConfig, device, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A student's class token on the train and test images, at the resolution and normalisation it was trained with."""
    s = record["student"]
    fn = lambda x: student(x)["cls"]  # noqa: E731
    return tuple(extract(fn, _data(config, which), s["img_size"], s["mean"], s["std"], config.batch_size, device,
                         f"{what} on {which}") for which in ("train", "test"))


def scores(train_f, test_f, config: EvalConfig, per_image: bool = False) -> dict:
    """k-NN and probe accuracy; with per_image, also which test images each got right (as a string of 0/1 in
    test-set order), so a comparison can pair two runs image by image and resample the test set."""
    tr, te = _data(config, "train"), _data(config, "test")
    correct = {"knn_top1": knn_correct(train_f, tr.labels, test_f, te.labels, tr.classes, config.knn_k,
                                       config.temperature),
               "probe_top1": probe_correct(train_f, tr.labels, test_f, te.labels, tr.classes, config.probe_weight_decay,
                                           config.probe_iters)}
    out = {metric: _share(c) for metric, c in correct.items()}
    if per_image:
        out["correct"] = {metric: "".join("1" if v else "0" for v in c.tolist()) for metric, c in correct.items()}
    return out


@torch.no_grad()
def agreement(model, record: dict, student_cls: torch.Tensor, config: EvalConfig, device) -> dict[str, float | None]:
    """Mean cosine between the student's projected class token and each teacher's `cls` on the held-out images
    (both normalised by the teacher's target statistics when the run normalised its targets)."""
    out = {}
    for info, label in zip(record["teachers"], run_teacher_labels(record)):
        heads = model.heads[info["key"]]
        level = next((lv for lv in ("token", "feature") if lv in heads.heads), None)
        out[label] = None
        if level is None:  # no head maps the class token to this teacher: nothing to compare
            continue
        try:
            target = teacher_features(info, "test", config, device)
        except InputError as e:
            print(f"agreement with {info['name']} skipped: {e}")
            continue
        # Compared where the loss compared them: a run with normalised targets predicts normalised ones
        # (and under cosine distance their scale is free, so mapping back to the raw space would mislead).
        pred = heads(level, student_cls.to(device))
        out[label] = F.cosine_similarity(pred, heads.target("cls", target.to(device)), dim=1).mean().item()
    return out


def evaluate_run(run: Path, config: EvalConfig = EvalConfig(), device=None) -> dict:
    """Evaluate a complete run; writes and returns RUN/eval.json."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    config = config.check()
    model, record = load_run(run)
    eval_set = config.eval_set()  # both sets read first: a bad source is refused before any features are made
    model.to(device)
    train_f, test_f = student_features(model.student, record, config, device, "student")
    labels = run_teacher_labels(record)
    teachers = {label: evaluate_teacher(info, config, device) for info, label in zip(record["teachers"], labels)} \
        if config.teachers else {}
    # a teacher that could not be loaded here has no row (evaluate_teacher said why) and no cost
    view_costs = [teacher_cost(info) if teachers.get(label) else None for info, label in zip(record["teachers"], labels)]
    result = {
        "format": EVAL_FORMAT, "run": str(Path(run).resolve()), "eval_set": eval_set,
        "student": scores(train_f, test_f, config, per_image=True)
        | {"agreement": agreement(model, record, test_f, config, device)},
        "untrained": evaluate_untrained(record, config, device),
        "teachers": teachers,
        "method": record["subset"]["method"], "k": record["subset"]["k"], "seed": record["config"]["seed"],
        "objective": record.get("objective", "distill"),
        "cost": {"student": model_cost(model.student.timm_model, record["student"]["img_size"]),
                 "teachers": {label: c for label, c in zip(labels, view_costs) if label in teachers},
                 "compute": run_compute(record, view_costs)},
    }
    result["seconds"] = round(time.perf_counter() - start, 2)
    result["environment"] = environment()
    write_json_atomic(Path(run) / "eval.json", result)
    return result


_untrained_cache: dict = {}


@torch.no_grad()
def evaluate_untrained(record: dict, config: EvalConfig, device) -> dict:
    """The floor: the run's student as initialised (same shape, same seed), before any training; runs of a sweep
    that share shape and seed share it."""
    run_config = TrainConfig.from_dict(record["config"], "run.json")
    shape = ("student", "img_size", "patch_size", "student_kwargs", "stem", "seed")
    key = (repr([getattr(run_config, f) for f in shape]), config)
    if key not in _untrained_cache:
        _untrained_cache[key] = _untrained_scores(run_config, record, config, device)
    return _untrained_cache[key]


def _untrained_scores(run_config: TrainConfig, record: dict, config: EvalConfig, device) -> dict:
    from .train import build_model

    twin = build_model(run_config, [TeacherTargets(t["key"], t, t["tokens"]) for t in record["teachers"]]).eval().to(device)
    # per image too, so a comparison restricted to some classes has the floor on the same images
    return scores(*student_features(twin.student, record, config, device, "untrained"), config, per_image=True)


def evaluate_teacher(info: dict, config: EvalConfig, device) -> dict | None:
    try:
        train_f = teacher_features(info, "train", config, device)
        test_f = teacher_features(info, "test", config, device)
    except InputError as e:
        print(f"reference row for {info['name']} skipped: {e}")
        return None
    return {"name": info["name"], "resolution": info["resolution"]} | scores(train_f, test_f, config, per_image=True)
