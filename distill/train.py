"""The trainer: a plain loop over steps. `distill train` and `accelerate launch -m distill.train` run this code.

A run is a number of optimisation steps at a global batch size, so runs at different k cost the
same; the order of samples depends only on the seed and the global batch, so a resumed run and a
run on another number of processes see the same samples at the same step.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors.torch import load_file, save

from students import Student, StudentSpec, set_attention
from subsets.console import output_console
from subsets.errors import InputError
from subsets.fileio import write_bytes_atomic, write_json_atomic
from subsets.lock import folder_lock
from subsets.provenance import environment
from teachers.cache import TargetCache, teacher_targets
from teachers.stats import target_stats
from teachers.views import ViewPolicy

from .config import OPERATIONAL, RUN_FORMAT, TrainConfig
from .data import (
    STUDENT_MEAN,
    STUDENT_STD,
    CachedTargets,
    OnlineViews,
    StepBatches,
    TeacherTargets,
    head_key,
    resolve_source,
    resolve_subset,
)
from .local_global import LocalGlobal
from .losses import make_masks
from .mim_jepa import MimJepa, block_masks
from .mixing import mix_batch, mix_weights
from .model import DistillModel, make_optimizer
from .run_dir import (
    checkpoint_to_resume,
    contents_of,
    prepare_run_dir,
    run_record,
    same_identity,
    save_checkpoint,
    write_start_record,
)
from .stop_signal import Stopped, outlast_stop_signals, stop_asked, stop_at_step_end


class Diverged(InputError):
    """The loss became NaN or infinite; training stopped without touching the last good checkpoint."""


@dataclass
class Inputs:
    dataset: torch.utils.data.Dataset
    teachers: list[TeacherTargets]
    subset: dict  # path, hash, method, k
    teacher: torch.nn.Module | None  # the online teacher; None in cached mode
    source: object  # the corpus (an ImageSource)
    view_policy: dict  # the views the student learned on: its caches', or those made online alike

    def target_stats(self, patch_grid: int | None, device) -> dict[str, dict[str, torch.Tensor]]:
        """Each teacher's target statistics on the corpus: stored with its cache, or computed alike online."""
        if self.teacher is None:
            return {t.key: c.stats() for t, c in zip(self.teachers, self.dataset.caches)}
        return {self.teachers[0].key: target_stats(self.teacher, self.source, patch_grid, device=device)}


def prepare_inputs(config: TrainConfig) -> Inputs:
    """The dataset and its teachers, from target caches or from a teacher to run online."""
    if config.self_supervised:  # the subset's images alone, in the views a cache would hold
        subset = resolve_subset(config.subset, [])
        source = resolve_source(config.source, subset)
        k = config.k or len(subset.order)
        policy = ViewPolicy(views=config.views, seed=config.view_seed)
        dataset = OnlineViews(source, subset, k, policy, config.img_size)
        teachers, teacher, view_policy = [], None, policy.to_dict()
    elif config.targets:
        caches = [TargetCache(Path(p)) for p in config.targets]
        subset = resolve_subset(config.subset, caches)
        source = resolve_source(config.source, subset)
        dataset = CachedTargets(caches, source, subset, config.img_size, config.k)
        teachers, teacher, view_policy = dataset.teachers, None, caches[0].index["view_policy"]
        k = config.k or min(len(c) for c in caches)
        if config.verify_targets:  # an edited shard of the right size would otherwise train silently
            for c in caches:
                c.verify(k)
    else:
        from teachers import load_teacher

        subset = resolve_subset(config.subset, [])
        source = resolve_source(config.source, subset)
        teacher = load_teacher(config.teacher, resolution=config.teacher_resolution, layers=config.teacher_layers)
        k = config.k or len(subset.order)
        info = teacher.info
        if config.patch_grid is not None and not 1 <= config.patch_grid <= info.grid:
            raise InputError(f"patch_grid {config.patch_grid}: must lie in 1..{info.grid} for {info.name}")
        policy = ViewPolicy(views=config.views, seed=config.view_seed)
        dataset = OnlineViews(source, subset, k, policy, config.img_size, info.resolution, info.mean, info.std)
        view_policy = policy.to_dict()
        teachers = [TeacherTargets(head_key(info.name, set()), info.to_dict(), (config.patch_grid or info.grid) ** 2)]
    if len(dataset) == 0:
        raise InputError(f"{subset.path}: no readable image among the first {k}")
    return Inputs(dataset, teachers, subset_record(subset, k), teacher, source, view_policy)


def build_model(config: TrainConfig, teachers: list[TeacherTargets]) -> torch.nn.Module:
    """The objective's module (its `student` is what is evaluated and exported), initialised from the seed alone."""
    spec = StudentSpec(config.student, config.img_size, config.patch_size, tuple(sorted(config.student_kwargs.items())),
                       config.stem)
    torch.manual_seed(config.seed)
    if config.objective == "mim-jepa":
        return MimJepa(spec, config.predictor_depth, config.jepa_momentum)
    if config.objective == "local-global":
        return LocalGlobal(spec, config.w_variance, config.w_covariance)
    weights = {lv: getattr(config, f"w_{lv}") for lv in ("token", "feature", "patch", "embed", "layer")}
    return DistillModel(spec, teachers, weights, config.distance, config.normalize_targets)


def make_scheduler(optimizer, config: TrainConfig):
    """timm's cosine schedule, stepped per update: a linear warm-up over the first `warmup` share of the steps
    (from lr / warm-up steps), then cosine decay to min_lr over the rest. The lr is a function of the step alone,
    so a resumed run sets it from the step and the schedule needs no state of its own."""
    from timm.scheduler import CosineLRScheduler

    warm = round(config.warmup * config.steps)
    return CosineLRScheduler(optimizer, t_initial=max(1, config.steps - warm), lr_min=config.min_lr, warmup_t=warm,
                             warmup_lr_init=config.lr / max(1, warm), warmup_prefix=True, t_in_epochs=False)


def identity(config: TrainConfig, inputs: Inputs) -> dict:
    """What a checkpoint must agree with to be resumed by this run."""
    settings = {k: v for k, v in config.to_dict().items() if k not in OPERATIONAL}
    return json.loads(json.dumps({"settings": settings, "subset": inputs.subset, "contents": contents_of(settings),
                                  "teachers": [{"name": t.info["name"], "sha256": t.info["sha256"]} for t in inputs.teachers]}))


def subset_record(subset, k: int) -> dict:
    """What run.json says about the images a run learnt from; `full` when they are the whole (deduplicated) corpus."""
    dedup = subset.meta.get("dedup") or {}
    pool = subset.meta["corpus_size"] - dedup.get("removed", 0)
    return {"path": str(subset.path), "hash": subset.hash, "method": subset.method, "k": k,
            "seed": subset.meta.get("seed"), "corpus_size": subset.meta["corpus_size"], "full": k == pool}


# ---- the loop ----

def make_accelerator(config: TrainConfig):
    """An Accelerator for this config: precision from --precision, else from `accelerate launch` / accelerate's config."""
    from accelerate import Accelerator

    acc = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=config.precision,
                      gradient_accumulation_steps=config.grad_accum, log_with=config.log_with or None,
                      project_dir=config.out)
    if len(acc.log_with) < len(config.log_with):
        raise InputError(f"log_with {', '.join(config.log_with)}: not all of these trackers are installed "
                         f"(usable: {', '.join(map(str, acc.log_with)) or 'none'})")
    return acc


def adopt_accelerator(acc, config: TrainConfig) -> None:
    """Make a given Accelerator (a sweep's, a notebook's) run this config: its accumulation steps are set to the
    config's; a precision the config asks for must be the accelerator's, which cannot change once made."""
    acc.gradient_accumulation_steps = config.grad_accum
    if config.precision is not None and config.precision != acc.mixed_precision:
        raise InputError(f"precision {config.precision}: the accelerator given runs {acc.mixed_precision}; "
                         "make it with this precision, or leave precision unset to use the accelerator's")


def _to(batch, device):
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch.to(device, non_blocking=True) if isinstance(batch, torch.Tensor) else batch


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeRemainingColumn(), console=output_console(stderr=True), disable=not enabled)


def train(config: TrainConfig, accelerator=None, resume: str | bool | None = None,
          stop_after: int | None = None, show_progress: bool = True) -> Path:
    """Train a student as `config` says; returns the run directory. `stop_after` ends this invocation early
    (after a checkpoint), e.g. for time-limited jobs; `resume` continues from the latest or a named checkpoint;
    `show_progress` False hides the progress bar (runs trained side by side)."""
    config.validate()
    acc = accelerator or make_accelerator(config)
    adopt_accelerator(acc, config)
    run = Path(config.out)
    if config.batch_size % (acc.num_processes * config.grad_accum):
        raise InputError(f"batch size {config.batch_size} does not split into {acc.num_processes} process(es) x "
                         f"{config.grad_accum} accumulation step(s)")
    if config.mixup_alpha and config.batch_size // (acc.num_processes * config.grad_accum) % 2:
        raise InputError(f"mixup pairs the samples of each micro-batch: batch size {config.batch_size} over "
                         f"{acc.num_processes} process(es) x {config.grad_accum} accumulation step(s) leaves an odd "
                         "number")
    with folder_lock(run, acc):  # a second job into the same --out is refused while this one runs
        return _train(config, acc, run, resume, stop_after, show_progress)


@dataclass
class Session:
    """One invocation of a run: what `setup` builds and the loop advances."""

    config: TrainConfig
    acc: object  # the Accelerator
    run: Path
    inputs: Inputs
    ident: dict
    invocations: list[dict]  # run.json's: each stretch of steps still in the weights, with its environment
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object  # timm's CosineLRScheduler, stepped per update
    ema: object | None  # timm's ModelEmaV3
    teacher: torch.nn.Module | None  # online mode only
    sampler: StepBatches
    batches: object  # iterator over the sampler's micro-batches
    backend: str  # the attention kernel in use
    step: int  # the next step to take
    first_step: int  # where this invocation started
    last_ckpt: Path | None
    step_macs: int | None = None  # of one step, all processes together: counted on this invocation's first step


def _train(config: TrainConfig, acc, run: Path, resume, stop_after: int | None, show_progress: bool = True) -> Path:
    s = setup(config, acc, run, resume)
    if s is None:
        return run
    end = config.steps if stop_after is None else min(config.steps, s.step + stop_after)
    start_time = time.perf_counter()
    try:
        stopped = _take_steps(s, end, acc.is_main_process and show_progress)
    finally:
        _end_loader_workers(s.batches)
    acc.wait_for_everyone()
    acc.free_memory()  # the accelerator may train another run next (a sweep)
    if stopped:
        raise Stopped(f"{run}: stopped by {stopped} at step {s.step} of {config.steps}, its checkpoint written "
                      f"({s.last_ckpt}); the same command (with --resume for distill train) goes on from there",
                      stopped)
    if s.step == config.steps:
        _finish(s, time.perf_counter() - start_time)
    elif acc.is_main_process:
        print(f"stopped at step {s.step} of {config.steps}; continue with --resume (checkpoint {s.last_ckpt})")
    return run


def _end_loader_workers(batches) -> None:
    """End the loader's workers now, not at the interpreter's exit: an error raised from a batch keeps the loader's
    iterator alive in its traceback, and a worker left to the exit meets multiprocessing's terminate in its grace
    period (`outlast_stop_signals`). torch's own shutdown, which the iterator's __del__ calls."""
    shutdown = getattr(batches, "_shutdown_workers", None)  # absent without workers
    if shutdown is not None:
        shutdown()


def _take_steps(s: Session, end: int, show_progress: bool) -> str | None:
    """Train from s.step up to `end`, logging and checkpointing on the way; why it stopped short (a signal's
    name: it checkpointed where it stopped), or None once at `end`."""
    config, acc = s.config, s.acc
    s.model.train()
    last, stopped = (time.perf_counter(), s.step), None
    with _progress(show_progress) as bar, stop_at_step_end():
        task = bar.add_task("train", total=config.steps, completed=s.step, info="")
        while s.step < end and not stopped:
            s.scheduler.step_update(s.step)
            if s.step_macs is None:  # every step does the same work: the first one is counted for run.json
                s.step_macs, terms = counted_step(s)
            else:
                terms = train_step(s)
            if s.ema is not None:
                s.ema.update(acc.unwrap_model(s.model), step=s.step)
            if s.step % config.log_every == 0 or s.step == config.steps - 1:
                now = time.perf_counter()
                rate = (s.step + 1 - last[1]) * config.batch_size / max(1e-9, now - last[0])
                last = (now, s.step + 1)
                record = _log(s, terms, rate)
                bar.update(task, info=f"loss {record['loss']:.4f} · {rate:,.1f} img/s")
            s.step += 1
            bar.update(task, completed=s.step)
            stopped = stop_asked(acc) if s.step < end else None
            if s.step % config.checkpoint_every == 0 or s.step == end or stopped:
                _check_finite_weights(acc, s.model, s.step, s.last_ckpt)
                s.last_ckpt = save_checkpoint(acc, s.run, s.step, s.ident, config.keep_checkpoints, s.ema)
    return stopped


def setup(config: TrainConfig, acc, run: Path, resume) -> Session | None:
    """Inputs, model, optimizer, schedule and EMA, restored from a checkpoint when resuming; None when the run is
    complete already."""
    inputs = prepare_inputs(config)
    ident = identity(config, inputs)
    fresh = prepare_run_dir(run, ident, resume, acc.is_main_process)
    acc.wait_for_everyone()
    if not fresh:
        if acc.is_main_process:
            print(f"{run}: already complete ({config.steps} steps), nothing to do")
        return None
    start_ckpt = checkpoint_to_resume(run, resume, ident)
    previous = run_record(run) or {}
    if start_ckpt and same_identity(previous.get("identity"), ident):
        ident = previous["identity"]  # a run keeps the identity it began with: each checkpoint names its run.json's
    first = start_ckpt[1] if start_ckpt else 0  # invocations past the checkpoint left nothing in the weights
    invocations = [i for i in previous.get("invocations", []) if i["from_step"] < first]
    if acc.is_main_process:  # the one process that writes run.json
        invocations.append({"from_step": first, "environment": environment()})

    model = build_model(config, inputs.teachers)
    backend = "none"
    for module in model.modules():  # the student, and mim-jepa's context encoder
        if isinstance(module, Student):
            backend = set_attention(module, config.attention, acc.device)
    if config.normalize_targets and not config.self_supervised:
        model.set_target_stats(inputs.target_stats(config.patch_grid, acc.device))
    optimizer = make_optimizer(model, config.lr, config.weight_decay, acc.device)
    model, optimizer = acc.prepare(model, optimizer)
    scheduler = make_scheduler(optimizer, config)
    ema = None
    if config.ema:
        from timm.utils import ModelEmaV3

        # Warm-up (decay 1 - (1 + t)^-2/3, capped at `ema`): without it a decay of 0.9998 would keep
        # the saved student near its initialisation for thousands of steps.
        ema = ModelEmaV3(acc.unwrap_model(model), decay=config.ema, use_warmup=config.ema_warmup)
    teacher = inputs.teacher.to(acc.device) if inputs.teacher is not None else None

    if acc.is_main_process:
        run.mkdir(parents=True, exist_ok=True)
        write_start_record(run, config, ident, invocations)
    if acc.log_with:
        simple = {k: v for k, v in config.to_dict().items() if isinstance(v, (int, float, str, bool))}
        acc.init_trackers(run.name, config=simple)
    step = 0
    if start_ckpt:
        acc.load_state(str(start_ckpt[0]))
        step = start_ckpt[1]
        if ema is not None:
            ema.load_state_dict(load_file(str(start_ckpt[0] / "ema.safetensors"), device=str(acc.device)))
    _trim_metrics(run / "metrics.jsonl", step, acc.is_main_process)

    sampler = StepBatches(len(inputs.dataset), config.batch_size, acc.num_processes, acc.process_index,
                          config.grad_accum, config.seed, step, config.steps)
    loader = torch.utils.data.DataLoader(inputs.dataset, batch_sampler=sampler, num_workers=config.workers,
                                         worker_init_fn=outlast_stop_signals,
                                         pin_memory=acc.device.type == "cuda")
    s = Session(config, acc, run, inputs, ident, invocations, model, optimizer, scheduler, ema, teacher, sampler, iter(loader),
                backend, step, step, start_ckpt[0] if start_ckpt else None)
    _describe(s)
    return s


def train_step(s: Session) -> dict[str, torch.Tensor]:
    """One optimisation step over the config's accumulation micro-batches; the step's mean loss terms."""
    config, acc, micro_terms = s.config, s.acc, []
    for a in range(config.grad_accum):
        batch = _to(next(s.batches), acc.device)
        if config.mixup_alpha:
            lam = mix_weights(config.seed, s.step, s.sampler.micro_ids(a), config.batch_size, config.mixup_alpha)
            batch = mix_batch(batch, lam)
        targets = None if config.self_supervised else \
            batch["targets"] if s.teacher is None else _online_targets(s.teacher, batch, s.inputs, config)
        mask = _mask(s, a)
        with acc.accumulate(s.model):
            with acc.autocast():
                terms = s.model(batch["image"], mask, targets)
            _check_finite(acc, terms, s.step, s.run, s.last_ckpt)
            micro_terms.append({k: v.detach() for k, v in terms.items()})
            acc.backward(terms["loss"])
            if acc.sync_gradients and config.grad_clip:
                acc.clip_grad_norm_(s.model.parameters(), config.grad_clip)
            s.optimizer.step()
            s.optimizer.zero_grad(set_to_none=True)
    if config.objective == "mim-jepa":  # the target encoder follows the context encoder, by the step alone
        acc.unwrap_model(s.model).update_target(s.step, config.steps)
    return {k: torch.stack([t[k] for t in micro_terms]).mean() for k in micro_terms[0]}


def counted_step(s: Session) -> tuple[int, dict[str, torch.Tensor]]:
    """train_step under torch's FlopCounterMode: the multiply-accumulates of one step (forward and backward passes,
    an online teacher's too) over all processes, and the step's loss terms."""
    from subsets.macs import mac_counter, macs

    counter = mac_counter()
    with counter:
        terms = train_step(s)
    return macs(counter) * s.acc.num_processes, terms


def _mask(s: Session, a: int) -> torch.Tensor | None:
    """Micro-batch a's patch mask: mim-jepa's blocks, or the distillation patch level's random positions."""
    config, student = s.config, s.acc.unwrap_model(s.model).student
    if config.objective == "mim-jepa":
        return block_masks(config.seed, s.step, s.sampler.micro_ids(a), student.grid,
                           config.jepa_mask_ratio).to(s.acc.device)
    if config.objective == "distill" and config.w_patch > 0:
        return make_masks(config.seed, s.step, s.sampler.micro_ids(a), student.grid ** 2, config.mask_ratio,
                          config.mask_share).to(s.acc.device)
    return None


def _describe(s: Session) -> None:
    if not s.acc.is_main_process:
        return
    c, n, k = s.config, len(s.inputs.dataset), s.inputs.subset["k"]
    params = sum(p.numel() for p in s.acc.unwrap_model(s.model).student.parameters()) / 1e6
    learns = f"objective {c.objective} (no teacher)" if c.self_supervised else \
        f"{', '.join(t.info['name'] for t in s.inputs.teachers)} ({'online' if s.teacher else 'cached'})"
    print(f"student {c.student} ({params:.1f}M params, {c.img_size} px / patch {c.patch_size} = "
          f"{c.img_size // c.patch_size}^2 tokens, attention {s.backend}) <- {learns}; "
          f"k = {k} x {n // max(1, k)} views; {c.steps} steps x {c.batch_size} = {c.steps * c.batch_size / n:.1f} "
          f"epochs; {s.acc.num_processes} process(es)")


@torch.no_grad()
def _online_targets(teacher, batch, inputs: Inputs, config: TrainConfig) -> dict:
    # no autocast of its own: the teacher's forward chooses its precision, as it does for the cache (an autocast here
    # alone made online MobileNetV2 targets bf16 and cached ones fp32 on an H200: step-0 losses 0.3% apart)
    out = teacher_targets(teacher, batch["teacher_image"], config.patch_grid)
    # The cache stores fp16; rounding the same way makes online and cached targets identical in value.
    return {inputs.teachers[0].key: {k: v.half().float() for k, v in out.items()}}


def _check_finite(acc, terms: dict, step: int, run: Path, last_ckpt: Path | None) -> None:
    finite = torch.stack([torch.isfinite(v.detach()).all() for v in terms.values()]).float()
    finite = acc.gather(finite[None]).amin(0)
    if bool(finite.all()):
        return
    bad = [name for name, ok in zip(terms, finite.tolist()) if not ok and name != "loss"]
    kept = f"the last good checkpoint is kept: {last_ckpt}" if last_ckpt else "no checkpoint was written yet"
    raise Diverged(f"loss became NaN/inf at step {step} ({', '.join(bad) or 'loss'}); stopped, {kept}. "
                   "Lower --lr or raise --warmup-ratio and start again")


def _check_finite_weights(acc, model, step: int, last_ckpt: Path | None) -> None:
    """A finite loss can still come with an update that overflowed the weights: never checkpoint those."""
    finite = torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all().float()
    if bool(acc.gather(finite[None]).amin() > 0):
        return
    kept = f"the last good checkpoint is kept: {last_ckpt}" if last_ckpt else "no checkpoint was written yet"
    raise Diverged(f"weights became NaN/inf by step {step}; stopped, {kept}. Lower --lr or raise --warmup-ratio and start again")


def _log(s: Session, terms: dict, rate: float) -> dict:
    names = list(terms)
    values = s.acc.reduce(torch.stack([terms[k].detach().float() for k in names]), reduction="mean").tolist()
    record = {"step": s.step, **dict(zip(names, values)), "lr": s.optimizer.param_groups[0]["lr"],
              "images_per_s": rate, "epoch": s.step * s.config.batch_size / len(s.inputs.dataset)}
    if s.acc.is_main_process:
        with open(s.run / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
    if s.acc.trackers:
        s.acc.log({k: v for k, v in record.items() if k != "step"}, step=s.step)
    return record


def _trim_metrics(path: Path, step: int, main: bool) -> None:
    """On resume, drop log lines past the checkpoint: those steps run again."""
    if not main or not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] < step]
    path.write_text("".join(line + "\n" for line in keep))


def _finish(s: Session, seconds: float) -> None:
    """The run's student (its EMA when kept), run.json and the timm-loadable student/ folder."""
    acc, run, model, ema, config, inputs = s.acc, s.run, s.model, s.ema, s.config, s.inputs
    acc.wait_for_everyone()
    if not acc.is_main_process:
        return
    final = ema.module if ema is not None else acc.unwrap_model(model)
    state = {k: v.detach().float().cpu().contiguous() for k, v in final.state_dict().items()}
    write_bytes_atomic(run / "student.safetensors", save(state, metadata={"format": RUN_FORMAT}))
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    n = len(inputs.dataset)
    k = inputs.subset["k"]
    record = {
        "format": RUN_FORMAT, "complete": True, "identity": s.ident, "config": config.to_dict(),
        "student": {"name": config.student, "img_size": config.img_size, "patch_size": config.patch_size,
                    "kwargs": config.student_kwargs, "stem": config.stem, "mean": list(STUDENT_MEAN), "std": list(STUDENT_STD),
                    "ema": bool(config.ema)},
        "teachers": [t.info | {"key": t.key, "tokens": t.tokens} for t in inputs.teachers], "subset": inputs.subset,
        "view_policy": inputs.view_policy,
        "objective": config.objective,
        "mode": "online" if inputs.teacher is not None or config.self_supervised else "cached", "targets": config.targets,
        "steps": config.steps, "batch_size": config.batch_size, "samples_seen": config.steps * config.batch_size,
        "epochs": config.steps * config.batch_size / n, "passes_per_image": config.steps * config.batch_size / k,
        "processes": acc.num_processes, "precision": acc.mixed_precision, "attention": s.backend,
        "macs_per_step": s.step_macs, "seconds_this_invocation": round(seconds, 2),
        "resumed_at": s.first_step or None, "final_metrics": metrics[-1] if metrics else None,
        "invocations": s.invocations,
    }
    write_json_atomic(run / "run.json", record)
    from .export import write_timm_folder

    write_timm_folder(final, record, run / "student")  # timm loads it as it is: local-dir:RUN/student
    print(f"run complete: {run} ({config.steps} steps, {record['epochs']:.1f} epochs of k = {k}, "
          f"final loss {record['final_metrics']['loss']:.4f})")


def main(argv: list[str] | None = None) -> int:
    """`accelerate launch -m distill.train ...`: the same flags as `distill train`."""
    from .cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
