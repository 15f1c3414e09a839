"""A run stopped by a signal keeps its last step: SIGTERM (`kill`, a batch system's pre-emption notice) or Ctrl-C
while a run trains finishes the step under way, writes a checkpoint there and stops with one line; the same command
(with --resume for `distill train`) goes on from that step. A second signal stops at once, as without this.

Under `accelerate launch` the processes agree on the step to stop at (a stop asked on any process stops them all),
so their checkpoint is one. DataLoader workers outlast the two signals, which a batch system sends to every process
of the job, by a grace period: a worker killed at once would fail the step the main process is finishing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

from subsets.errors import InputError

SIGNALS = (signal.SIGTERM, signal.SIGINT)
SIGNAL_NAMES = {s.name for s in SIGNALS}
_asked: list[str] = []  # why a stop was asked: a signal's name, or what the orphan watcher saw


class Stopped(InputError):
    """A run stopped at a step's end by a signal, its checkpoint written there."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):  # a sweep's worker sends it back pickled: an unpicklable result breaks the whole pool
        return type(self), (str(self), self.reason)

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by the signal (130 for Ctrl-C, 143 for SIGTERM)."""
        named = {s.name: s for s in SIGNALS}
        return 128 + int(named[self.reason]) if self.reason in named else 1


@contextlib.contextmanager
def stop_at_step_end() -> Iterator[None]:
    """While a run trains: the first SIGTERM or Ctrl-C asks the loop to stop at the step's end (`stop_asked`)."""
    in_main_thread = threading.current_thread() is threading.main_thread()  # only its handlers can be set
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS} if in_main_thread else {}

    def ask(signum, frame):
        if any(reason in SIGNAL_NAMES for reason in _asked):  # the second signal: at once, as without us
            _restore(previous)
            signal.raise_signal(signum)
            return
        # A stop asked without a signal (a sweep's worker told its sweep is stopping) is no first signal: a batch
        # system signals the sweep and its workers together, and the sweep's word, handled first, would otherwise
        # turn the worker's own signal into a second one that ends it without its checkpoint.
        _asked.append(signal.Signals(signum).name)
        print(f"{_asked[-1]}: finishing this step and writing a checkpoint there; once more to stop at once",
              file=sys.stderr, flush=True)

    for sig in previous:
        signal.signal(sig, ask)
    try:
        yield
    finally:
        _asked.clear()  # when the run ends, not when it begins: a stop asked while it set up still counts
        _restore(previous)


def _restore(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


class Terminated(BaseException):
    """SIGTERM outside a run's steps: it unwinds as Ctrl-C does, so locks are let go and half-written files removed
    (the default action would end the process where it stands)."""


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While a command runs: SIGTERM raises Terminated (a run's steps take it at their step's end instead)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def unwind(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    finally:
        _restore({signal.SIGTERM: previous})


def ask_to_stop(reason: str) -> None:
    """Ask the run training in this process to stop at its step's end (a sweep's worker whose sweep is gone)."""
    if not _asked:
        _asked.append(reason)


def stop_asked(acc) -> str | None:
    """Why a stop was asked, on this process or any other of the job; None to go on."""
    if acc.num_processes == 1:
        return _asked[0] if _asked else None
    import torch

    asked = acc.reduce(torch.tensor([float(bool(_asked))], device=acc.device), reduction="sum")
    return (_asked[0] if _asked else "a stop asked on another process") if asked.item() > 0 else None


def outlast_stop_signals(worker_id: int, grace_s: float = 10.0) -> None:
    """A DataLoader worker's init: the signals end it only `grace_s` later, with exit code 0, so that the main
    process can take the rest of its step's batches first and the loader sees no worker fail. A worker the main
    process no longer ends itself (one left to the interpreter's exit, which terminates it with SIGTERM) still ends."""

    def end_later(signum, frame):
        timer = threading.Timer(grace_s, os._exit, args=(0,))
        timer.daemon = True
        timer.start()

    for sig in SIGNALS:
        signal.signal(sig, end_later)
