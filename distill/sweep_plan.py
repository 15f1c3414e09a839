"""What a sweep will do before it does it (`distill sweep --config FILE --plan`): every run it plans, grouped by
recipe, method and k, with its budget, how many are done, under way and still to train, and the time left at the
pace of the runs it has already finished (before any has, at the pace its runs under way logged). Reads the
sweep's folder; trains, selects and caches nothing."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from subsets.console import output_console
from subsets.fileio import read_json

from .run_dir import holds_run, last_logs, run_record, steps_checkpointed
from .sweep_config import FULL, SweepConfig, evaluated_as, full_corpus_size, run_plan, settings_differing

# "other settings": a finished run of other settings holds the run's folder; the sweep refuses to train over it
STATUSES = ("done", "to evaluate", "under way", "to train", "other settings")


@dataclass
class PlannedRun:
    recipe: str | None
    method: str
    k: int | str
    seed: int
    steps: int
    batch_size: int
    k_images: int  # the images it learns from (the corpus's size for the full corpus)
    status: str  # one of STATUSES
    steps_left: int
    seconds_per_step: float | None  # a done run's pace over the invocation that finished it
    logged_seconds_per_step: float | None = None  # a run under way: its pace over its last logged intervals
    eval_seconds: float | None = None  # a done run: how long its evaluation took


def _pace(record: dict) -> float | None:
    """Seconds per step of a finished run, from the invocation that finished it."""
    done_here = record["steps"] - (record.get("resumed_at") or 0)
    seconds = record.get("seconds_this_invocation")
    return seconds / done_here if seconds and done_here > 0 else None


def _logged_pace(run: Path, batch_size: int, last: int = 20) -> float | None:
    """Seconds per step of a run under way: the median over its last logged intervals (metrics.jsonl's images/s,
    each over the steps since the log before; the first log, which holds the start-up, is left out)."""
    rates = [r["images_per_s"] for r in last_logs(run, last) if r.get("step", 0) > 0 and r.get("images_per_s")]
    return batch_size / statistics.median(rates) if rates else None


def plan_runs(config: SweepConfig) -> list[PlannedRun]:
    """Each run the sweep plans, in its order, with where it stands in the sweep's folder."""
    out = Path(config.out)
    eval_config = config.eval_config()
    planned = []
    for p in run_plan(config, out, full_corpus_size(config, out) if config.has_full else 0):
        steps, pace, logged, left, eval_seconds = p.config.steps, None, None, p.config.steps, None
        differ = settings_differing(p.folder, p.config)  # None: no finished run there
        if differ == []:
            status, left, pace = "done" if evaluated_as(p.folder, eval_config) else "to evaluate", 0, \
                _pace(run_record(p.folder))
            eval_seconds = read_json(p.folder / "eval.json", "evaluation").get("seconds") if status == "done" else None
        elif differ:  # the sweep refuses to train over it
            status = "other settings"
        elif holds_run(p.folder):
            status, left = "under way", steps - steps_checkpointed(p.folder)
            logged = _logged_pace(p.folder, p.config.batch_size)
        else:
            status = "to train"
        planned.append(PlannedRun(p.recipe, p.method, p.k, p.seed, steps, p.config.batch_size, p.config.k, status,
                                  left, pace, logged, eval_seconds))
    return planned


def evaluation_left(planned: list[PlannedRun]) -> tuple[float, int] | None:
    """Seconds of evaluation left and the runs still to evaluate, at the median time of the evaluations done here
    (they run one at a time in the sweep's process); None before any evaluation is done, or with none left."""
    times = [p.eval_seconds for p in planned if p.eval_seconds]
    left = sum(p.status in ("to evaluate", "under way", "to train") for p in planned)
    return (left * statistics.median(times), left) if times and left else None


def time_left(planned: list[PlannedRun], parallel_runs: int) -> tuple[float, str] | None:
    """Seconds of training left, at each recipe's median pace over its finished runs (another recipe's where it has
    none), shared among the runs trained side by side. Before any run has finished, the runs under way stand in at
    the pace they logged; None before any run has logged one."""
    field, which = "seconds_per_step", "finished run(s) here"
    if not any(p.seconds_per_step for p in planned):
        field, which = "logged_seconds_per_step", "run(s) under way, as they logged it"
    paces = [getattr(p, field) for p in planned if getattr(p, field)]
    if not paces:
        return None
    by_recipe = {r: statistics.median(ps) for r in {p.recipe for p in planned}
                 if (ps := [getattr(p, field) for p in planned if p.recipe == r and getattr(p, field)])}
    overall = statistics.median(paces)
    seconds = sum(p.steps_left * by_recipe.get(p.recipe, overall) for p in planned) / parallel_runs
    return seconds, f"{overall:.3f} s a step (median of {len(paces)} {which})"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def print_plan(config: SweepConfig, planned: list[PlannedRun], console: Console | None = None) -> None:
    console = console or output_console()
    groups: dict[tuple, list[PlannedRun]] = {}
    for p in planned:
        groups.setdefault((p.recipe, p.method, p.k), []).append(p)
    named = any(p.recipe for p in planned)
    table = Table(title=f"sweep plan: {config.out}", title_style="bold")
    counts = {s: sum(p.status == s for p in planned) for s in STATUSES}
    shown = [s for s in STATUSES if counts[s] or s in ("done", "to train")]
    for col in ["recipe"] * named + ["method", "k", "seeds", "steps", "passes per image", *shown]:
        table.add_column(col, justify="left" if col in ("recipe", "method") else "right")
    for (recipe, method, k), ps in groups.items():
        first = ps[0]
        table.add_row(*[recipe or "-"] * named, method, FULL if k == FULL else f"{k:,}", str(len(ps)),
                      f"{first.steps:,}", f"{first.steps * first.batch_size / first.k_images:,.1f}",
                      *(str(sum(p.status == s for p in ps)) for s in shown))
    console.print(table)
    left = sum(p.steps_left for p in planned)
    line = f"{len(planned)} run(s): " + ", ".join(f"{counts[s]} {s}" for s in shown) + f"; {left:,} steps left"
    estimate = time_left(planned, config.parallel_runs) if left else None
    if estimate:
        seconds, pace = estimate
        side = f", {config.parallel_runs} side by side" if config.parallel_runs > 1 else ""
        line += f", about {_duration(seconds)} of training at {pace}{side}"
    elif left:
        line += "; no run here has logged its pace yet to time the rest by"
    evaluation = evaluation_left(planned)
    if evaluation:
        line += f"; then about {_duration(evaluation[0])} of evaluation ({evaluation[1]} run(s), one at a time)"
    elif left or counts["to evaluate"]:
        line += "; evaluation not counted (none done here yet to time it by)"
    console.print(line)
    if counts["other settings"]:
        clash = [p for p in planned if p.status == "other settings"]
        console.print(f"[red]{counts['other settings']} run folder(s) hold a finished run of other settings[/], which "
                      f"the sweep will not train over (the first: {clash[0].method} k = {clash[0].k} seed "
                      f"{clash[0].seed}{f' of recipe {clash[0].recipe}' if clash[0].recipe else ''}); move them or "
                      "choose another out")
