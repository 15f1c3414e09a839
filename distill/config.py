"""The training configuration: one typed dataclass, from flags or a YAML file, saved into the run directory."""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from subsets.errors import InputError

from .typed_settings import base_type, checked_settings, settle_fields

PRECISIONS = ("no", "bf16", "fp16")
# Here rather than in losses.py: the command line checks a config without importing torch and timm (3-5 s a process).
DISTANCES = ("mse", "cosine", "smooth_l1")
# What a run learns from: a teacher (distillation), or the images alone (self-supervised: distill/mim_jepa.py,
# distill/local_global.py).
OBJECTIVES = ("distill", "mim-jepa", "local-global")
SELF_SUPERVISED = ("mim-jepa", "local-global")
RUN_FORMAT = "subset-distill/run"  # run.json
# Settings that do not change what a run computes: a checkpoint made under other values still resumes.
OPERATIONAL = {"out", "workers", "checkpoint_every", "keep_checkpoints", "log_every", "log_with", "attention",
               "verify_targets"}


@dataclass
class TrainConfig:
    out: str = "runs/student"  # run directory: run.json, checkpoints/, metrics.jsonl, student/
    objective: str = "distill"  # distill (from a teacher) | mim-jepa | local-global (self-supervised: --subset, no teacher)
    # what to learn from: target caches (one per teacher), or one teacher run online over a subset
    targets: list[str] = field(default_factory=list)
    teacher: str | None = None  # online mode: a teacher name, in place of targets
    subset: str | None = None  # online mode: the subset directory (cached mode reads it from the cache)
    source: str | None = None  # the corpus (default: the one the subset was selected from)
    k: int | None = None  # train on the first k images of the subset (default: all the cache holds)
    views: int = 2  # online mode: views per image (cached mode: the cache's)
    view_seed: int = 0  # online mode: seed of the crops and flips
    teacher_resolution: int | None = None  # online mode: teacher input side (default: the teacher's)
    patch_grid: int | None = None  # online mode: pool teacher patch tokens to g x g, as the cache would
    teacher_layers: list[int] = field(default_factory=list)  # online mode: intermediate maps for w_layer (cached: the cache's)
    # the student
    student: str = "vit_tiny_patch16_224"
    img_size: int = 32
    patch_size: int = 4
    student_kwargs: dict = field(default_factory=dict)  # more timm.create_model arguments, e.g. {depth: 6}
    stem: str = "patch"  # ViT students: patch (timm's patch embedding) | scott (masked convolutional tokenizer)
    attention: str = "auto"  # auto (SDPA, measured fastest on a GPU) | xformers | sdpa | naive
    # losses
    w_token: float = 1.0
    w_feature: float = 1.0
    w_patch: float = 1.0
    w_embed: float = 0.0  # on a teacher's `embed` (CLIP's projected embedding), where its cache has one
    w_layer: float = 0.0  # the stem's tokens against the teacher's intermediate maps (cache --teacher-layers)
    distance: str = "mse"  # mse | cosine | smooth_l1
    normalize_targets: bool = False  # per-teacher, per-channel target normalisation (Theia)
    mask_ratio: float = 0.5  # share of patches replaced by the mask token in a masked sample
    mask_share: float = 0.5  # share of each batch that is masked (patch loss); the rest is unmasked (feature loss)
    mixup_alpha: float = 0.0  # mix sample pairs by weights ~ Beta(a, a) (0 = off); cached targets mixed alike (distill/mixing.py)
    # self-supervised objectives
    jepa_mask_ratio: float = 0.6  # mim-jepa: share of patches masked; the kept part is drawn as blocks
    jepa_momentum: float = 0.996  # mim-jepa: the target encoder's EMA momentum, raised linearly to 1 over the run
    predictor_depth: int = 2  # mim-jepa: transformer blocks of the predictor, at the student's width
    w_variance: float = 1.0  # local-global: VICReg variance term (keeps each feature dimension from collapsing)
    w_covariance: float = 0.04  # local-global: VICReg covariance term (VICReg's 1:25 against variance)
    # optimisation: a run is a number of steps, so runs at different k cost the same
    steps: int = 1000
    batch_size: int = 64  # the global batch: split over processes and accumulation steps, so results do not depend on them
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup: float = 0.05  # share of the steps with a linear warm-up, then cosine decay to min_lr
    weight_decay: float = 0.05
    grad_clip: float | None = 1.0
    ema: float = 0.0  # EMA decay of the student's weights (0 = off); the exported student is the EMA
    ema_warmup: bool = True  # timm's EMA warm-up: decay 1 - (1 + t)^(-2/3), capped at the decay
    precision: str | None = None  # no | bf16 | fp16 (accelerate mixed precision; unset: accelerate launch's / its config)
    seed: int = 0
    recipe: str | None = None  # a name for these settings, by which `distill compare` groups runs (sweeps set it)
    workers: int = 2  # DataLoader worker processes per training process
    verify_targets: bool = True  # hash the cache shards a run reads against index.json before training
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    log_every: int = 10
    log_with: list[str] = field(default_factory=list)  # also log to these accelerate trackers (tensorboard, wandb, ...)

    def validate(self, origin: str = "") -> TrainConfig:
        """Refuses settings that cannot train, or would train wrong unsaid; `origin` (a sweep file's) starts the line."""
        where = f"{origin}: " if origin else ""
        settle_fields(self, origin or "train settings")  # a notebook's Path or tuple, as a settings file would hold it
        if self.objective not in OBJECTIVES:
            raise InputError(f"{where}objective {self.objective!r}: choose one of {', '.join(OBJECTIVES)}")
        self._validate_inputs()
        checks = [
            (self.steps >= 1, f"steps {self.steps}: at least 1"),
            (self.batch_size >= 1 and self.grad_accum >= 1, "batch_size and grad_accum must be at least 1"),
            (self.k is None or self.k >= 1, f"k {self.k}: at least 1"),
            (0 <= self.warmup < 1, f"warmup {self.warmup}: a share of the steps in [0, 1)"),
            (0 <= self.ema < 1, f"ema {self.ema}: a decay in [0, 1)"),
            (self.precision is None or self.precision in PRECISIONS,
             f"precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}"),
            (self.keep_checkpoints >= 1, f"keep_checkpoints {self.keep_checkpoints}: at least 1 (the latest is what "
                                         "--resume continues from)"),
            (self.views >= 1, f"views {self.views}: at least 1"),
            (self.checkpoint_every >= 1 and self.log_every >= 1, "checkpoint_every and log_every: at least 1"),
            (self.lr > 0, f"lr {self.lr}: must be above 0"),
            (0 <= self.min_lr <= self.lr, f"min_lr {self.min_lr}: must lie in [0, lr = {self.lr}] (the cosine decays "
                                          "to it; above lr it would climb)"),
            (self.weight_decay >= 0, f"weight_decay {self.weight_decay}: must not be negative"),
            # clip_grad_norm_ scales by max_norm / norm: a negative max_norm turns every step uphill, unsaid
            (self.grad_clip is None or self.grad_clip > 0, f"grad_clip {self.grad_clip}: above 0, or none for no "
                                                           "clipping"),
            (self.workers >= 0, f"workers {self.workers}: 0 (load in the training process) or more"),
            (self.img_size >= 1 and self.patch_size >= 1, "img_size and patch_size: at least 1"),
            (self.teacher_resolution is None or self.teacher_resolution >= 1,
             f"teacher_resolution {self.teacher_resolution}: a positive side, or none for the teacher's own"),
            (self.patch_grid is None or self.patch_grid >= 1, f"patch_grid {self.patch_grid}: at least 1"),
        ] + (self._self_supervised_checks() if self.self_supervised else self._distill_checks())
        for ok, message in checks:
            if not ok:
                raise InputError(where + message)
        return self

    def _validate_inputs(self) -> None:
        """What the run learns from: target caches or an online teacher (distill), a subset alone (self-supervised)."""
        if self.self_supervised:
            if self.targets or self.teacher:
                raise InputError(f"objective {self.objective} learns without a teacher: give --subset, not --targets "
                                 "or --teacher")
            if not self.subset:
                raise InputError(f"objective {self.objective} needs --subset, the subset directory to train on")
            return
        if bool(self.targets) == bool(self.teacher):
            raise InputError("give either --targets (cached mode) or --teacher with --subset (online mode)")
        if self.teacher and not self.subset:
            raise InputError("online mode (--teacher) needs --subset, the subset directory to train on")

    def _distill_checks(self) -> list[tuple[bool, str]]:
        return [
            (0 <= self.mask_ratio < 1, f"mask_ratio {self.mask_ratio}: must lie in [0, 1)"),
            (0 <= self.mask_share <= 1, f"mask_share {self.mask_share}: must lie in [0, 1]"),
            (self.distance in DISTANCES, f"distance {self.distance!r}: choose one of {', '.join(DISTANCES)}"),
            (min(self.w_token, self.w_feature, self.w_patch, self.w_embed, self.w_layer) >= 0,
             "loss weights must not be negative"),
            (self.w_token + self.w_feature + self.w_patch + self.w_embed + self.w_layer > 0, "every loss weight is zero"),
            (not (self.targets and self.teacher_layers), "teacher_layers is for online mode: a cache holds the layers "
                                                          "it was made with (distill cache --teacher-layers)"),
            (self.mixup_alpha >= 0, f"mixup_alpha {self.mixup_alpha}: 0 (off) or a Beta parameter above 0"),
        ]

    def _self_supervised_checks(self) -> list[tuple[bool, str]]:
        return [
            (0 < self.jepa_mask_ratio < 1, f"jepa_mask_ratio {self.jepa_mask_ratio}: must lie in (0, 1)"),
            (0 <= self.jepa_momentum <= 1, f"jepa_momentum {self.jepa_momentum}: must lie in [0, 1]"),
            (self.predictor_depth >= 1, f"predictor_depth {self.predictor_depth}: at least 1"),
            (min(self.w_variance, self.w_covariance) >= 0, "w_variance and w_covariance must not be negative"),
            (self.mixup_alpha == 0, f"mixup_alpha: objective {self.objective} has no teacher to label a mixture; "
                                    "mixup is for distillation"),
        ]

    @property
    def self_supervised(self) -> bool:
        return self.objective in SELF_SUPERVISED

    @property
    def levels(self) -> list[str]:
        """The loss levels with a non-zero weight."""
        return [lv for lv in ("token", "feature", "patch", "embed") if getattr(self, f"w_{lv}") > 0]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        from subsets.fileio import write_text_atomic

        write_text_atomic(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, values: dict, origin: str = "config") -> TrainConfig:
        return cls(**checked_settings(cls, values, origin))

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        """A YAML file of settings, or a run's run.json (its settings: the run again, or a variant of it)."""
        values = read_yaml_mapping(Path(path), "config")
        if values.get("format") == RUN_FORMAT:
            values = values.get("config") or {}
        return cls.from_dict(values, str(path))


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading `1e-3` and `3E5` as floats, as YAML 1.2 and every user do (YAML 1.1, which PyYAML
    follows, wants a dot: `1.0e-3`, and reads `1e-3` as a string)."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def load_yaml(text: str):
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml_mapping(path: Path, what: str) -> dict:
    """A YAML file of `setting: value` lines; unreadable, invalid or non-mapping files give one line."""
    try:
        values = load_yaml(Path(path).read_text()) or {}
    except OSError as e:
        raise InputError(f"{path}: cannot read the {what} file ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise InputError(f"{path}: a {what} file must be a mapping of setting: value")
    return values


# ---- flags: one per field, generated, so the command line and the dataclass cannot drift apart ----

def _parse_kwargs(text: str) -> dict:
    out = {}
    for item in filter(None, text.split(",")):
        if "=" not in item:
            raise argparse.ArgumentTypeError(f"{item!r}: expected key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = load_yaml(value)
    return out


# Flags spelt as timm's train.py and the Hugging Face Trainer spell them, where a field's own name would differ;
# the field's old flag keeps working for now, with a deprecation line.
FLAG_NAMES = {"batch_size": "--global-batch-size", "warmup": "--warmup-ratio", "ema": "--model-ema-decay",
              "ema_warmup": "--model-ema-warmup"}
RENAMED = {"batch_size", "warmup", "ema"}
TIMM_EMA_DECAY = 0.9998  # timm train.py's --model-ema-decay default  # their own flags were spelt so before


class ExtendList(argparse.Action):
    """A list flag given again adds to the list (`--targets a --targets b` is `--targets a,b`), as a repeated
    --teacher does for `distill eval`: argparse would otherwise keep the last one and drop the others unsaid."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, (getattr(namespace, self.dest, None) or []) + values)


class _Deprecated(argparse.Action):
    def __init__(self, option_strings, dest, new: str = "", **kw):
        self.new = new
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        import sys

        print(f"note: {option_string} is deprecated and will be removed; it is {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """--field-name for every TrainConfig field (or its ecosystem spelling, FLAG_NAMES); unset flags stay absent,
    so a --config file fills them."""
    helps = _field_comments()
    for f in fields(TrainConfig):
        own = "--" + f.name.replace("_", "-")
        flag = FLAG_NAMES.get(f.name, own)
        hint = typing.get_type_hints(TrainConfig)[f.name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        kw = {"dest": f.name, "default": argparse.SUPPRESS, "help": f"{helps.get(f.name, '')} (default: {default})"}
        if hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif typing.get_origin(hint) is list:
            item = typing.get_args(hint)[0]
            parser.add_argument(flag, type=lambda s, item=item: [item(p) for p in s.split(",") if p], metavar="A[,B...]",
                                action=ExtendList, **kw)
        elif f.name == "student_kwargs":
            parser.add_argument(flag, type=_parse_kwargs, metavar="KEY=VALUE[,...]", **kw)
        else:
            parser.add_argument(flag, type=base_type(hint), **kw)
        if f.name in RENAMED:
            parser.add_argument(own, type=base_type(hint), dest=f.name, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                                action=_Deprecated, new=flag)
    parser.add_argument("--model-ema", action="store_true", default=argparse.SUPPRESS, dest="model_ema",
                        help=f"keep an EMA of the student at timm's default decay ({TIMM_EMA_DECAY}) unless "
                             "--model-ema-decay says otherwise")
    parser.add_argument("--per-device-batch-size", type=int, default=argparse.SUPPRESS, dest="per_device_batch_size",
                        help="the batch of one process and accumulation step; the global batch is this x processes x "
                             "grad_accum (give this or --global-batch-size)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A --config file (if given), then every flag that was set on the command line."""
    import os

    values = TrainConfig.load(args.config).to_dict() if getattr(args, "config", None) else {}
    values.update({f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)})
    if getattr(args, "model_ema", False) and not values.get("ema"):
        values["ema"] = TIMM_EMA_DECAY
    if hasattr(args, "per_device_batch_size"):
        if hasattr(args, "batch_size"):
            raise InputError("give --per-device-batch-size or --global-batch-size, not both")
        processes = int(os.environ.get("WORLD_SIZE", "1"))  # set by accelerate launch / torchrun
        values["batch_size"] = args.per_device_batch_size * processes * values.get("grad_accum", 1)
    return TrainConfig.from_dict(values).validate()


def _field_comments() -> dict[str, str]:
    """The comment after each field in this file: the --help text and the dataclass stay one source."""
    from .config_docs import field_comments

    return {name: beside for name, (_, beside) in field_comments(TrainConfig).items() if beside}


def example_train_file() -> str:
    """A run's settings file with every setting at its default and its comment, for `distill train --example`."""
    from .config_docs import commented_yaml

    return commented_yaml(TrainConfig().to_dict(), TrainConfig,
                          "Every setting of `distill train`, at its default. Use it as `distill train --config FILE`;\n"
                          "flags given beside it override it. Delete what you do not change.")
