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


def evaluated_teachers(evaluation: dict) -> list[tuple[str, str, int | None]]:
    """(key in eval.json, name, resolution) of each teacher an eval.json has a row for; an evaluation made before
    resolutions were recorded gives its keys as names and no resolution."""
    return [(key, (t or {}).get("name", key), (t or {}).get("resolution"))
            for key, t in evaluation.get("teachers", {}).items()]


def comparison_labels(evaluations: list[dict]) -> list[dict[str, str]]:
    """Per evaluation, its teachers' keys mapped to labels that tell apart every (name, resolution) across all of
    them: one teacher at one resolution keeps its name; at two, each is named with its resolution."""
    pairs = list(dict.fromkeys((name, res) for ev in evaluations for _, name, res in evaluated_teachers(ev)))
    label = dict(zip(pairs, teacher_labels(pairs)))
    return [{key: label[name, res] for key, name, res in evaluated_teachers(ev)} for ev in evaluations]
