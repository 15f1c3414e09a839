"""How a teacher is named in eval.json and in every table: by its name, and where one run or one comparison holds the
same teacher at two resolutions (two caches of one teacher, runs distilled at two teacher resolutions) by its name and
resolution, so that one's ceiling and cost never stand in for the other's."""

from __future__ import annotations


def teacher_labels(pairs: list[tuple[str, int | None]]) -> list[str]:
    """A label per (name, resolution): the name alone where it comes at one resolution only; a pair given twice (two
    caches of one teacher at one resolution) gets a number, so that no label names two entries."""
    resolutions: dict[str, set] = {}
    for name, res in pairs:
        resolutions.setdefault(name, set()).add(res)
    labels, seen = [], {}
    for name, res in pairs:
        label = f"{name} at {res} px" if len(resolutions[name]) > 1 and res is not None else name
        seen[label] = seen.get(label, 0) + 1
        labels.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return labels


def run_teacher_labels(record: dict) -> list[str]:
    """Each of a run's teachers (run.json's `teachers`) as its eval.json names it: by name, and by name and resolution
    where the run holds one teacher at two resolutions (two caches of it)."""
    return teacher_labels([(info["name"], info.get("resolution")) for info in record["teachers"]])


def evaluated_teachers(evaluation: dict, record: dict | None = None) -> list[tuple[str, str, int | None]]:
    """(key in eval.json, name, resolution) of each teacher an eval.json has a row for. An evaluation made before
    resolutions were recorded keys its teachers by name, and one that could not load a teacher has no entry to say:
    the run's record (run.json), where given, tells both, else the key stands for the name, resolution unknown."""
    recorded = dict(zip(run_teacher_labels(record), ((t["name"], t.get("resolution")) for t in record["teachers"]))) \
        if record else {}
    out = []
    for key, entry in evaluation.get("teachers", {}).items():
        name, resolution = recorded.get(key, (key, None))
        out.append((key, (entry or {}).get("name", name), (entry or {}).get("resolution", resolution)))
    return out


def comparison_labels(evaluations: list[dict], records: list[dict] | None = None) -> list[dict[str, str]]:
    """Per evaluation, its teachers' keys mapped to labels that tell apart every (name, resolution) across all of
    them: one teacher at one resolution keeps its name; at two, each is named with its resolution. `records`, the
    runs' run.json beside their evaluations, give the resolutions an older eval.json lacks: without them a run
    evaluated before resolutions were recorded, beside one evaluated after, would stand for a second resolution."""
    teachers = [evaluated_teachers(ev, rec) for ev, rec in zip(evaluations, records or [None] * len(evaluations))]
    pairs = list(dict.fromkeys((name, res) for listed in teachers for _, name, res in listed))
    label = dict(zip(pairs, teacher_labels(pairs)))
    return [{key: label[name, res] for key, name, res in listed} for listed in teachers]
