"""A run's folder: its one record (run.json, written when the run starts and again when it ends) and its checkpoints
(accelerate's state, written whole or not at all, each file's sha256 checked on resume)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

from subsets.errors import DiskFull, InputError
from subsets.fileio import file_sha256, is_disk_full, read_json, write_json_atomic

from .config import RUN_FORMAT, TrainConfig

# ---- the record: run.json, written when a run starts (complete: false) and again when it ends ----


def run_record(run: Path) -> dict | None:
    f = Path(run) / "run.json"
    return read_json(f, "run record") if f.exists() else None


def is_complete(run: Path) -> bool:
    record = run_record(run)
    return bool(record and record.get("complete"))


def holds_run(run: Path) -> bool:
    """A run was started here (config.yaml: the start record of runs begun before run.json was written first)."""
    return (Path(run) / "run.json").exists() or (Path(run) / "config.yaml").exists()


# Settings that name a place: two runs that name one place, spelt differently (relative or absolute, through a
# symlink), are one run. URIs (builtin:, https:, an hf: Hub id) are names, not places; hf: of a local folder is a place.
LOCATIONS = ("targets", "subset", "source")
# The places this tool made, known by their content where a run recorded it ("contents" in its identity): a sweep
# folder moved or copied whole still holds the same runs. The corpus stays known by its place: a copy with the same
# keys and labels may hold other pixels (resized, recompressed).
MADE_PLACES = ("targets", "subset")


def _place(value):
    if isinstance(value, list):
        return [_place(v) for v in value]
    if isinstance(value, str) and value.startswith("hf:"):  # a Hub id is a name; a local data set folder a place
        from subsets.hf_source import parse_spec

        spec = parse_spec(value)
        return replace(spec, name=_place(spec.name)).text() if Path(spec.name).expanduser().is_dir() else value
    if isinstance(value, str) and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", value):
        return str(Path(value).expanduser().resolve())
    return value


def comparable_settings(settings: dict) -> dict:
    """Settings with each place resolved, to compare runs by what they name rather than how."""
    return {k: _place(v) if k in LOCATIONS else v for k, v in settings.items()}


def contents_of(settings: dict) -> dict:
    """What the MADE_PLACES a run's settings name hold now: each target cache's fingerprint and the subset's hash
    (from the first cache where the settings name no subset); None for a place that is not there."""
    from teachers.cache import targets_fingerprint

    indexes = [_json_or_none(Path(p) / "index.json", "target cache") for p in settings.get("targets") or []]
    if settings.get("subset"):
        subset = (_json_or_none(Path(settings["subset"]) / "manifest.json", "subset manifest") or {}).get("hash")
    else:
        subset = (indexes[0] or {}).get("subset", {}).get("hash") if indexes else None
    return {"targets": [targets_fingerprint(i) if i else None for i in indexes], "subset": subset}


def _json_or_none(path: Path, what: str) -> dict | None:
    return read_json(path, what) if path.exists() else None


def _known(value) -> bool:
    return value is not None and (not isinstance(value, list) or None not in value)


def settings_that_differ(theirs: dict, mine: dict, their_contents: dict | None = None,
                         my_contents: dict | None = None) -> list[str]:
    """The names of the settings in which two runs differ: a place this tool made by its content where both runs
    know it, every other place by what it names."""
    theirs, mine = comparable_settings(theirs), comparable_settings(mine)
    by_content = {k for k in MADE_PLACES if their_contents and my_contents and _known(their_contents.get(k))
                  and _known(my_contents.get(k))}
    differ = {k for k in set(theirs) | set(mine) if k not in by_content and theirs.get(k) != mine.get(k)}
    return sorted(differ | {k for k in by_content if their_contents[k] != my_contents[k]})


def same_identity(theirs: dict | None, ident: dict) -> bool:
    """Two run identities are one, whatever the spelling of the places their settings name, and wherever the places
    this tool made lie now when both identities record their contents."""
    if theirs is None:
        return False
    rest = set(ident) - {"settings", "contents"}
    if set(theirs) - {"settings", "contents"} != rest:
        return False
    their_contents, my_contents = theirs.get("contents"), ident.get("contents")
    if settings_that_differ(theirs["settings"], ident["settings"], their_contents, my_contents):
        return False
    if their_contents and my_contents:  # the subset compared by its hash, not its path
        return all(_without_path(theirs[k]) == _without_path(ident[k]) if k == "subset" else theirs[k] == ident[k]
                   for k in rest)
    return all(theirs[k] == ident[k] for k in rest)


def _without_path(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "path"}


def identity_sha256(ident: dict) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def write_start_record(run: Path, config: TrainConfig, ident: dict, invocations: list[dict] = ()) -> None:
    """run.json of a run under way: what it is (identity), every setting (`distill train --config` reads them) and
    the invocations that trained it so far, each with its first step and its environment (code, libraries, machine)."""
    write_json_atomic(run / "run.json", {"format": RUN_FORMAT, "complete": False, "identity": ident,
                                         "config": config.to_dict(), "invocations": list(invocations)})
    (run / "config.yaml").unlink(missing_ok=True)  # an older trainer's start record, now in run.json


# ---- checkpoints: accelerate's save_state into a temporary folder, renamed when complete ----
# Not accelerate's automatic_checkpoint_naming: it deletes the oldest checkpoint before writing the next (a
# full disk then leaves none), writes in place (a killed job leaves a half checkpoint that load_state picks as
# the latest), and does not restore its iteration counter on load. Names here carry the step instead.

def checkpoint_dir(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step-{step:06d}"


def finished_checkpoints(run: Path) -> list[Path]:
    """The run's complete checkpoints (with their state.json), oldest first."""
    return sorted(p for p in (Path(run) / "checkpoints").glob("step-??????") if (p / "state.json").exists())


def latest_checkpoint(run: Path) -> Path | None:
    done = finished_checkpoints(run)
    return done[-1] if done else None


def steps_checkpointed(run: Path) -> int:
    """The step a resumed run starts from: its latest checkpoint's (0 without one)."""
    latest = latest_checkpoint(run)
    return int(read_json(latest / "state.json", "checkpoint state")["step"]) if latest else 0


def last_logs(run: Path, count: int = 1, tail_bytes: int = 65536) -> list[dict]:
    """The run's last `count` complete records in metrics.jsonl (fewer where it holds fewer; none before its
    first log), read from the file's end, so a long run's log costs the same to look at as a short one's."""
    try:
        with open(Path(run) / "metrics.jsonl", "rb") as f:
            start = f.seek(max(0, f.seek(0, 2) - tail_bytes))
            lines = f.read().decode(errors="replace").splitlines()[1 if start else 0:]  # the first, cut by the seek
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # the line a run is writing now, or one a stopped run left
            continue
    return records[-count:]


def save_checkpoint(acc, run: Path, step: int, ident: dict, keep: int, ema=None) -> Path:
    final = checkpoint_dir(run, step)
    tmp = final.with_name(final.name + ".tmp")
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    try:
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            if ema is not None:  # kept apart from accelerate's state, so one Accelerator can serve run after run
                from safetensors.torch import save_file

                save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, str(tmp / "ema.safetensors"))
            # each file's sha256, checked on resume: a damaged optimizer state would otherwise resume silently
            files = {str(f.relative_to(tmp)): file_sha256(f) for f in sorted(tmp.rglob("*")) if f.is_file()}
            write_json_atomic(tmp / "state.json", {"format": RUN_FORMAT + "/checkpoint", "step": step,
                                                   "identity_sha256": identity_sha256(ident), "files": files})
    except Exception as e:  # noqa: BLE001 - whatever broke the write, no half-written checkpoint stays
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(e):
            kept = latest_checkpoint(run)
            raise DiskFull(f"{final}: disk full while writing this checkpoint; its temporary folder was removed"
                           + (f", the last good one ({kept.name}) is kept: free space and rerun with --resume"
                              if kept else "; free space and rerun the same command")) from None
        raise
    if acc.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in finished_checkpoints(run)[:-keep]:
            shutil.rmtree(old)
    acc.wait_for_everyone()
    return final


def checkpoint_to_resume(run: Path, resume: str | bool | None, ident: dict) -> tuple[Path, int] | None:
    """The checkpoint `--resume` names (or the latest in the run), checked to belong to this run."""
    if not resume:
        return None
    path = latest_checkpoint(run) if resume is True or resume == "latest" else Path(resume)
    if path is None and holds_run(run):
        print(f"{run}: no checkpoint was reached before it stopped; starting from step 0")
        return None
    if path is None:
        raise InputError(f"--resume: no checkpoint in {run / 'checkpoints'}")
    state_file = path / "state.json"
    if not state_file.exists():
        raise InputError(f"--resume {path}: not a checkpoint of this trainer (no state.json)")
    state = read_json(state_file, "checkpoint state")
    if _checkpoint_identity_sha256(state) != identity_sha256(ident):
        theirs = _checkpoint_identity(path, state)
        if theirs is None:  # its run's record is gone or was rewritten: the difference cannot be named
            raise InputError(f"--resume {path}: a checkpoint of another run (its identity differs from this run's)")
        if not same_identity(theirs, ident):  # not the same run under another spelling of its places
            diff = settings_that_differ(theirs["settings"], ident["settings"], theirs.get("contents"),
                                        ident.get("contents"))
            what = ", ".join(diff) if diff else "subset or teachers"
            raise InputError(f"--resume {path}: a checkpoint of another run (differs in {what})")
    _verify_checkpoint(path, state, run)
    return path, int(state["step"])


def _checkpoint_identity_sha256(state: dict) -> str | None:
    # checkpoints written before run.json became the run's one record carry the whole identity
    return identity_sha256(state["identity"]) if "identity" in state else state.get("identity_sha256")


def _checkpoint_identity(path: Path, state: dict) -> dict | None:
    """The identity of the run a checkpoint belongs to: its own copy (older checkpoints), else its run's run.json
    when that still has the identity the checkpoint was written under."""
    if "identity" in state:
        return state["identity"]
    owner = (run_record(path.parent.parent) or {}).get("identity")
    return owner if owner is not None and identity_sha256(owner) == state.get("identity_sha256") else None


def _verify_checkpoint(path: Path, state: dict, run: Path) -> None:
    """Every file of the checkpoint as it was written (sha256s in state.json)."""
    for name, sha256 in state.get("files", {}).items():
        f = path / name
        if not f.exists() or file_sha256(f) != sha256:
            earlier = [p.name for p in sorted((run / "checkpoints").glob("step-??????")) if p != path]
            hint = f"resume from an earlier one (--resume {run / 'checkpoints' / earlier[-1]})" if earlier else \
                "start the run again in another --out"
            raise InputError(f"--resume {path}: {name} is {'missing' if not f.exists() else 'damaged'} (its sha256 "
                             f"differs from the one written with it); {hint}")


def prepare_run_dir(run: Path, ident: dict, resume, main: bool = True) -> bool:
    """False when the run is already complete with these settings; refuses to mix two runs in one folder."""
    record = run_record(run) or {}
    complete = bool(record.get("complete"))
    if complete and same_identity(record.get("identity"), ident):
        return False
    if holds_run(run) and not resume:
        if latest_checkpoint(run) is None and not complete:  # it stopped before its first checkpoint
            if main:
                print(f"{run}: takes over a run that stopped before its first checkpoint")
                shutil.rmtree(run)
            return True
        raise InputError(f"{run}: holds a run already; pass --resume to continue it, or choose another --out")
    if run.exists() and any(run.iterdir()) and not holds_run(run):
        raise InputError(f"{run}: exists and is not a run directory; choose another --out")
    return True
