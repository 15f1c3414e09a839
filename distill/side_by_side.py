"""Runs trained side by side: a sweep's small students in worker processes, each with its share of the CPU's threads.

A student of a million parameters on 32 px images uses a CPU's threads poorly: its matrix products are too small
to split well, so two runs with one thread each on 2 cores train 1.44x faster together than the same two runs one
after the other with two threads each (the demo's recipe: 40 ms a step each side by side, against 29 ms alone;
`distill sweep` with `parallel_runs: 2`). The whole demo so took 471 s against 512 s: its nine runs take five rounds
of two, the last with one core idle. Each worker trains whole runs with its own thread count, so a run's
result depends on its settings and its worker's threads, not on which runs share the machine.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

from subsets.progress import progress_bar

from .config import TrainConfig
from .run_dir import last_logs, steps_checkpointed
from .stop_signal import Terminated, ask_to_stop

_accelerator = None  # one per worker process, made for its first run
_run_under_way = threading.Event()  # set while this worker trains a run, lock and checkpoints included
SWEEP_GONE = "the end of its sweep"  # why a worker's run stopped, in its Stopped line


@dataclass(frozen=True)
class PendingRun:
    label: str  # how the sweep names it ("run 3/9 kcenter-k100-s0")
    config: TrainConfig
    resume: bool


def threads_per_worker(workers: int) -> int:
    """This process's threads shared among the workers (at least one each)."""
    return max(1, torch.get_num_threads() // workers)


def train_side_by_side(runs: list[PendingRun], workers: int, console: Console, poll_s: float = 2.0,
                       on_trained: Callable[[PendingRun], None] | None = None) -> None:
    """Train every run, `workers` at a time in worker processes, each run under way with its own bar of steps
    (from its log, every `poll_s`); a run that fails is reported at once, no other run starts after it, and its
    error is raised here once the runs under way have finished (they are kept). `on_trained(run)` is called here
    as each run finishes, while the others train (a sweep evaluates it, so a study under way can be compared)."""
    threads = threads_per_worker(workers)
    console.print(f"training {len(runs)} run(s) side by side: {workers} worker processes x {threads} thread(s)")
    context = multiprocessing.get_context("spawn")  # torch and its thread pools do not survive a fork
    # Longest first, so that runs of unequal length fill the workers evenly (the last to start is the shortest).
    # A run is handed to the pool only when a worker is free: a run queued in the pool could not be called back
    # once another failed.
    waiting = sorted(runs, key=lambda r: -r.config.steps * r.config.batch_size)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(threads,)) as pool, \
            progress_bar("runs") as bar:
        try:
            _train_in_workers(pool, waiting, workers, bar, console, poll_s, on_trained)
        except (KeyboardInterrupt, Terminated):  # the pool's exit waits for the runs under way: stop them first
            _ask_workers_to_stop(pool)
            raise


def _train_in_workers(pool, waiting: list[PendingRun], workers: int, bar, console: Console, poll_s: float,
                      on_trained: Callable[[PendingRun], None] | None) -> None:
    """Hand the waiting runs to the pool's workers as they come free, each under way with its own bar of steps."""
    task = bar.add_task("train side by side", total=len(waiting))
    under_way, steps = {}, {}
    while waiting or under_way:
        while waiting and len(under_way) < workers:
            run = waiting.pop(0)
            future = pool.submit(_train_run, run.config, run.resume)
            under_way[future] = run
            steps[future] = bar.add_task(f"  {run.label}", total=run.config.steps, unit="steps",
                                         completed=steps_checkpointed(run.config.out) if run.resume else 0)
        done, _ = wait(under_way, timeout=poll_s, return_when=FIRST_COMPLETED)
        for future, run in under_way.items():  # the workers train without bars: their steps are in their logs
            if logged := last_logs(run.config.out):
                bar.update(steps[future], completed=logged[0]["step"] + 1)
        for future in done:
            bar.remove_task(steps.pop(future))
            run = under_way.pop(future)
            if future.exception() is not None:
                others = f"; the {len(under_way)} run(s) under way finish first" if under_way else ""
                console.print(f"[red]{run.label}: failed[/] ({future.exception()}){others}, no other run starts")
                raise future.exception()
            console.print(f"{run.label}: trained")
            bar.advance(task)
            if on_trained is not None:
                on_trained(run)


def _ask_workers_to_stop(pool) -> None:
    """SIGUSR1 to each worker: its run stops at the step's end with a checkpoint (a worker's Ctrl-C came with the
    sweep's own; a SIGTERM to the sweep's process alone reached none of them)."""
    for process in (getattr(pool, "_processes", None) or {}).values():  # the pool's workers, by their pids
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGUSR1)


def _start_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    signal.signal(signal.SIGUSR1, lambda signum, frame: ask_to_stop(SWEEP_GONE))
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()


def _exit_when_orphaned(parent: int, every_s: float = 1.0, grace_s: float = 600.0) -> None:
    """End this worker once the sweep that started it is gone without a word (kill -9, or a crash outside the pool's
    teardown; a sweep sent SIGTERM or Ctrl-C asks its workers itself). A worker left behind would go on training its
    run for half an hour, holding the run's lock and the cores the next sweep needs. The run under way stops at its
    step's end with a checkpoint there, as a run signalled itself does, and resumes from it."""
    while os.getppid() == parent:
        time.sleep(every_s)
    ask_to_stop(SWEEP_GONE)
    deadline = time.monotonic() + grace_s
    while _run_under_way.is_set() and time.monotonic() < deadline:  # until it has checkpointed and let go
        time.sleep(0.1)
    os._exit(1)


def _train_run(config: TrainConfig, resume: bool) -> Path:
    from .train import make_accelerator, train

    global _accelerator
    _run_under_way.set()
    try:
        _accelerator = _accelerator or make_accelerator(config)
        return train(config, _accelerator, resume=resume or None, show_progress=False)
    finally:
        _run_under_way.clear()
