"""The statistics of a comparison of evaluated runs: one row per run, the mean over seeds of each (recipe, objective,
method, k) with its 95% interval, and the paired differences with verdicts (methods against a baseline method,
subsets against the full corpus, recipes against a baseline recipe) and rank correlations between small k and the
full corpus. One set of replicates, the test images redrawn and a t-distributed seed error added, gives every interval
(`distill.intervals`)."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from subsets.errors import InputError
from subsets.fileio import read_json

from .compute_account import ACCOUNT
from .intervals import Bootstrap, Estimate, family_intervals, percentile_estimate, seeds_to_hold, verdict
from .teacher_labels import comparison_labels

METRICS = {"knn_top1": "k-NN top-1", "probe_top1": "linear probe top-1", "agreement": "cosine to teacher"}
SCORED = ("knn_top1", "probe_top1")  # per-image results exist for these: intervals and verdicts
COLUMNS = ["run", "recipe", "objective", "method", "k", "seed", "steps", "epochs", "knn_top1", "probe_top1", "agreement",
           "untrained_knn_top1", "untrained_probe_top1", "selection_macs", "teacher_macs", "training_macs", "total_macs"]
FLOOR = "untrained student"
FULL = "full"
# Line styles of the objectives in the plots (colours are the methods'); dashed and dash-dot are the reference lines'.
OBJECTIVE_STYLES = {"distill": "-", "mim-jepa": ":", "local-global": (0, (5, 1, 1, 1, 1, 1))}


# Below this gap between the untrained floor and the ceiling (the best teacher, else a perfect score), the evaluation
# set cannot show a student's learning: every run sits at the floor and the ceiling alike, however it was trained.
MIN_HEADROOM = 0.05


def headroom_note(floor: dict, ceilings: list[dict]) -> str | None:
    """A warning when the untrained student already scores within MIN_HEADROOM of the ceiling (an easy test set)."""
    short = []
    for m in SCORED:
        top = max((c[m] for c in ceilings if c and c.get(m) is not None), default=1.0)
        if floor.get(m) is not None and top - floor[m] < MIN_HEADROOM:
            short.append(f"{METRICS[m]} {floor[m]:.3f} against {top:.3f}")
    if not short:
        return None
    return (f"no room to learn on this evaluation set: the untrained student already scores within {MIN_HEADROOM} of "
            f"the ceiling ({'; '.join(short)}), so no student can show that it learned; evaluate on harder held-out "
            "images (more classes, a harder set)")


def k_order(k) -> tuple:
    """Subset sizes ascending, the full corpus last."""
    return (1, 0) if k == FULL else (0, k)


def read_evaluated(runs: list[Path]) -> list[tuple[Path, dict, dict]]:
    """Each run with its eval.json and run.json, read once for everything a comparison says; refuses runs evaluated
    on different sets or without per-image results."""
    if not runs:
        raise InputError("compare: no runs given")
    evaluated = []
    for run in map(Path, runs):
        if not run.is_dir():
            raise InputError(f"{run}: no such run folder")
        if not (run / "eval.json").exists():
            raise InputError(f"{run}: no eval.json; evaluate it first (distill eval --run {run}), or compare the "
                             "others with --evaluated-only")
        ev, rec = read_json(run / "eval.json", "evaluation"), read_json(run / "run.json", "run record")
        if evaluated and ev["eval_set"] != (first := evaluated[0])[1]["eval_set"]:
            diff = sorted(k for k in ev["eval_set"] if ev["eval_set"][k] != first[1]["eval_set"].get(k))
            raise InputError(f"{run}: evaluated on another set than {first[0]} (differs in {', '.join(diff)}); "
                             "re-evaluate them alike to compare")
        if "correct" not in ev["student"]:
            raise InputError(f"{run / 'eval.json'}: has no per-image results (made by an older version); "
                             f"re-evaluate it (distill eval --run {run})")
        evaluated.append((run, ev, rec))
    return evaluated


def load_rows(evaluated: list[tuple[Path, dict, dict]], classes: list[int | str] | None = None) -> tuple[list[dict], dict]:
    """One row per run of `read_evaluated` (`correct` holds its per-image results) and the reference rows (the
    untrained floor, averaged over the runs, and each teacher's scores). With `classes`, every accuracy (the floor's
    and the teachers' too) is that of the test images of those classes only."""
    rows, references = [], {}
    for run, ev, rec in evaluated:
        agreements = [v for v in ev["student"]["agreement"].values() if v is not None]
        subset = rec["subset"]
        recipe, objective = run_arm(rec)
        rows.append({"run": _run_label(run, rec), "recipe": recipe, "objective": objective,
                     "method": FULL if subset.get("full") else subset["method"],
                     "k": FULL if subset.get("full") else subset["k"],
                     "seed": rec["config"]["seed"], "steps": rec["steps"], "epochs": round(rec["epochs"], 2),
                     "knn_top1": ev["student"]["knn_top1"], "probe_top1": ev["student"]["probe_top1"],
                     "agreement": statistics.fmean(agreements) if agreements else None,
                     "untrained_knn_top1": ev.get("untrained", {}).get("knn_top1"),
                     "untrained_probe_top1": ev.get("untrained", {}).get("probe_top1"),
                     **{f"{part}_macs": v for part, v in compute_of(ev).items()},
                     "correct": per_image(ev["student"]),
                     "untrained_correct": per_image(ev["untrained"]) if "correct" in ev.get("untrained", {}) else None})
    evaluations = [ev for _, ev, _ in evaluated]
    for ev, labels in zip(evaluations, comparison_labels(evaluations, [rec for _, _, rec in evaluated])):
        for key, scores in ev.get("teachers", {}).items():
            if scores:
                references.setdefault(f"teacher: {labels[key]}", scores)
    if classes is not None:
        _restrict_to_classes(rows, references, classes, (evaluated[0][0], evaluated[0][1]["eval_set"]))
    references = {name: {k: v for k, v in scores.items() if k not in ("correct", "name", "resolution")}
                  for name, scores in references.items()}
    rows.sort(key=lambda r: (r["recipe"], r["objective"], r["method"], k_order(r["k"]), r["seed"]))
    # first: two runs of other settings and one seed are not duplicates
    _refuse_mixed_settings([(run, rec) for run, _, rec in evaluated])
    _refuse_duplicates(rows)
    return rows, floor_rows(rows) | references


def compute_of(ev: dict) -> dict[str, int | None]:
    """A run's compute account from its eval.json (`distill.compute_account`), every part None where it has none."""
    account = ev.get("cost", {}).get("compute") or {}
    return {part: account.get(part) for part in ACCOUNT}


def per_image(scores: dict) -> dict[str, np.ndarray]:
    """Which test images each scored metric got right (eval.json keeps them as a string of 0/1), as booleans."""
    return {m: np.frombuffer(scores["correct"][m].encode(), np.uint8) == ord("1") for m in SCORED}


def _restrict_to_classes(rows: list[dict], references: dict, classes: list[int | str],
                         first: tuple[Path, dict]) -> None:
    """Every run's per-image results, its floor's and the teachers' cut to the test images of `classes`, and their
    accuracies recomputed on those images (the pairing by test image is kept: every run was tested on one set)."""
    from .evaluate import classes_of_test_images

    run, eval_set = first
    classes = resolve_classes(classes, eval_set)
    labels, _ = classes_of_test_images(eval_set)
    present = set(labels.tolist())
    absent = [c for c in classes if c not in present]
    if absent:
        raise InputError(f"compare: no test image of class {absent[0]} in {eval_set['test_source']} (its classes are "
                         f"{', '.join(map(str, sorted(present)))})")
    keep = np.isin(labels, classes)
    for r in rows:
        if r["untrained_correct"] is None:
            raise InputError(f"{r['run']}: its eval.json has no per-image results of the untrained student (made by "
                             "an older version); re-evaluate it (distill eval) to compare classes")
        r["correct"] = {m: c[keep] for m, c in r["correct"].items()}
        r |= {m: float(r["correct"][m].mean()) for m in SCORED}
        r["untrained_correct"] = {m: c[keep] for m, c in r["untrained_correct"].items()}
        r |= {f"untrained_{m}": float(c.mean()) for m, c in r["untrained_correct"].items()}
    for name, scores in list(references.items()):
        if "correct" not in scores:
            raise InputError(f"{run}: its eval.json has no per-image results of {name} (made by an older version); "
                             "re-evaluate the runs (distill eval) to compare classes")
        references[name] = {**scores, **{m: float(c[keep].mean()) for m, c in per_image(scores).items()}}


def resolve_classes(classes: list[int | str], eval_set: dict) -> list[int]:
    """Class numbers from numbers or the test source's class names (any case), refused in one line when unknown."""
    from .evaluate import classes_of_test_images

    _, names = classes_of_test_images(eval_set)
    lowered = {n.lower(): i for i, n in enumerate(names or [])}
    resolved = []
    for c in classes:
        if isinstance(c, int) or str(c).lstrip("-").isdigit():
            resolved.append(int(c))
        elif str(c).lower() in lowered:
            resolved.append(lowered[str(c).lower()])
        else:
            known = f"its classes are {', '.join(names)}" if names else "it names no classes: give their numbers"
            raise InputError(f"compare: no class named {c!r} in {eval_set['test_source']} ({known})")
    return resolved


def class_names(eval_set: dict, classes: list[int | str]) -> str:
    """The classes by name where the test source names them, else by number."""
    from .evaluate import classes_of_test_images

    _, names = classes_of_test_images(eval_set)
    return ", ".join(names[c] if names and 0 <= c < len(names) else str(c) for c in resolve_classes(classes, eval_set))


def class_note(eval_set: dict, classes: list[int | str]) -> str:
    """Which test images a class-restricted comparison counts."""
    from .evaluate import classes_of_test_images

    labels, _ = classes_of_test_images(eval_set)
    count = int(np.isin(labels, resolve_classes(classes, eval_set)).sum())
    return (f"Test images of classes {class_names(eval_set, classes)} only ({count:,} of {len(labels):,}): every "
            "accuracy, the floor's and the teacher's included, is on those images.")


def floor_rows(rows: list[dict]) -> dict:
    """The untrained student, averaged over the runs; one row per recipe when recipes differ in the floor (another
    student shape or seed gives another untrained twin)."""
    by_recipe: dict[str, dict] = {}
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        floors = [r for r in rows if r["recipe"] == recipe and r["untrained_knn_top1"] is not None]
        if floors:
            by_recipe[recipe] = {m: statistics.fmean(r[f"untrained_{m}"] for r in floors) for m in SCORED}
    if len({tuple(v.values()) for v in by_recipe.values()}) <= 1:
        return {FLOOR: v for v in list(by_recipe.values())[:1]}
    return {f"{FLOOR} ({recipe})": v for recipe, v in by_recipe.items()}


def run_arm(rec: dict) -> tuple[str, str]:
    """(recipe, objective) of a run record: "" for a run outside a recipe; older records name no objective."""
    return rec["config"].get("recipe") or "", rec.get("objective") or rec["config"].get("objective", "distill")


def _run_label(run: Path, rec: dict) -> str:
    return f"{rec['config']['recipe']}/{run.name}" if rec["config"].get("recipe") else run.name


def _refuse_duplicates(rows: list[dict]) -> None:
    seen = {}
    for r in rows:
        key = (r["recipe"], r["objective"], r["method"], r["k"], r["seed"])
        if key in seen:
            raise InputError(f"compare: runs {seen[key]} and {r['run']} are the same recipe, objective, method, k and seed; "
                             "give each once")
        seen[key] = r["run"]


# What may differ between the runs of one recipe: the seed, the subset (method and k, read from their places) and
# its budget (a sweep's steps by k), and how a run was carried out
PER_RUN = {"seed", "k", "steps", "targets", "subset", "source"}


def learned_from(record: dict) -> dict:
    """What a run's targets were, beside its settings (`targets` names only the caches, which differ by method):
    each teacher (its weights, resolution, the patch tokens kept and, where the layer level learns from them, its
    intermediate maps) and the views (their crop seed aside, as a seed); runs made before run.json kept the views
    have none."""
    kept = ("sha256", "resolution", "tokens") + (("layers",) if record["config"].get("w_layer") else ())
    out = {"teachers": [{k: t.get(k) for k in kept} for t in record.get("teachers", [])]}
    if record.get("view_policy"):
        out["view_policy"] = {k: v for k, v in record["view_policy"].items() if k != "seed"}
    return out


def _refuse_mixed_settings(records: list[tuple[Path, dict]]) -> None:
    """The runs of one recipe are compared with each other as seeds and methods of one set of settings; runs of
    other settings (another lr, student, loss) among them would be averaged in silently, so they are refused."""
    from .config import OPERATIONAL, TrainConfig

    first: dict[tuple, tuple[Path, dict]] = {}
    for run, rec in records:
        try:  # settings added since a run was made count at their defaults (which keep the old behaviour)
            config = TrainConfig.from_dict(rec["config"], str(run)).to_dict()
        except InputError:  # a setting of another version: compared as written
            config = rec["config"]
        settings = {k: v for k, v in config.items() if k not in PER_RUN | OPERATIONAL} | learned_from(rec)
        arm = run_arm(rec)
        if arm not in first:
            first[arm] = (run, settings)
            continue
        other, theirs = first[arm]
        differ = sorted(k for k in theirs.keys() | settings.keys() if theirs.get(k) != settings.get(k)
                        and not (k == "view_policy" and (k not in theirs or k not in settings)))  # made before runs kept it
        if differ:
            name = f"of recipe {arm[0]!r}" if arm[0] else "without a recipe"
            raise InputError(f"compare: {other} and {run} are both {name} but differ in {', '.join(differ)}; "
                             "train runs of other settings with --recipe NAME (a sweep's recipes) to compare them "
                             "as recipes")


def shared_subset_note(evaluated: list[tuple[Path, dict, dict]]) -> str | None:
    """A line naming the cells whose seeds all trained on one subset: their intervals then hold the training's
    randomness only, not which subset a method draws, the part the product's question is about."""
    by_cell: dict[tuple, set] = {}
    for _, _, rec in evaluated:
        subset = rec["subset"]
        if not subset.get("full") and subset.get("hash"):
            cell = (*run_arm(rec), subset["method"], subset["k"])
            by_cell.setdefault(cell, set()).add((rec["config"]["seed"], subset["hash"]))
    shared = [cell for cell, seen in by_cell.items() if len(seen) > 1 and len({h for _, h in seen}) == 1]
    if not shared:
        return None
    cells = ", ".join(f"{f'{r}/' if r else ''}{m} k = {k:,}" for r, _, m, k in sorted(shared, key=str))
    return (f"One subset for every seed: {cells}. Their intervals hold the student's randomness only, not which subset "
            "the method draws; select one per seed (distill subset select --seed, as distill sweep does) for that.")


def _groups(rows: list[dict]) -> dict[tuple, dict[int, dict]]:
    """((recipe, objective), method, k) -> {seed: row}. A recipe with an objective is an arm of the comparison."""
    groups: dict[tuple, dict[int, dict]] = {}
    for r in rows:
        groups.setdefault(((r["recipe"], r["objective"]), r["method"], r["k"]), {})[r["seed"]] = r
    return groups


def _cell_order(group: tuple) -> tuple:
    """A `_groups` item's place in the tables: by recipe, then method, then k."""
    (arm, method, k), _ = group
    return arm, method, k_order(k)


def _stack(runs: list[dict], metric: str) -> np.ndarray:
    return np.stack([r["correct"][metric] for r in runs])


def aggregate(rows: list[dict], boot: Bootstrap) -> list[dict]:
    """Per (recipe, objective, method, k): mean over seeds, std, and the 95% interval (the test images redrawn,
    a seed error drawn from the t distribution at the seeds' spread)."""
    out = []
    for (arm, method, k), by_seed in sorted(_groups(rows).items(), key=_cell_order):
        rs = [by_seed[s] for s in sorted(by_seed)]
        agg = {"recipe": arm[0], "objective": arm[1], "method": method, "k": k, "seeds": len(rs),
               "steps": ", ".join(f"{s:,}" for s in sorted({r["steps"] for r in rs}))}
        for m in METRICS:
            vals = [r[m] for r in rs if r[m] is not None]
            agg[m] = statistics.fmean(vals) if vals else None
            agg[m + "_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        for m in SCORED:
            est = boot.mean(_stack(rs, m))
            agg[m + "_low"], agg[m + "_high"] = est.low, est.high
        out.append(agg)
    return out


def _paired(boot: Bootstrap, pairs: list[tuple]) -> list[dict]:
    """For each (runs by seed, the partner's, seeds) and scored metric: the mean over `seeds` of runs - partner, paired
    by seed and test image, its 95% interval and verdict; for the pairs as one family, the wider interval each
    is given so that all of them hold together at 95% (`family_intervals`), its verdict and that level; and the
    seeds at which its verdict, alone and together, is reached now or projected to be (`seeds_to_hold`)."""
    per_seed = [{m: boot.seed_differences(_stack([runs[s] for s in seeds], m), _stack([base[s] for s in seeds], m))
                 for m in SCORED} for *_, runs, base, seeds in pairs]
    # drawn pair by pair, metric within pair: the seed errors are drawn in a fixed order
    drawn = [{m: (d.value, boot.with_seed_error(d)) for m, d in p.items()} for p in per_seed]
    families = {m: family_intervals([d[m][0] for d in drawn], [d[m][1] for d in drawn]) for m in SCORED}
    more = {m: seeds_to_hold([p[m] for p in per_seed], boot) for m in SCORED}
    rows = []
    for i, d in enumerate(drawn):
        row = {}
        for m in SCORED:  # each comparison's own interval first, as the tables always had them
            one = percentile_estimate(*d[m])
            row |= {f"{m}_diff": one.value, f"{m}_low": one.low, f"{m}_high": one.high,
                    f"{m}_verdict": verdict(one.low, one.high)}
        for m, (family, level) in families.items():
            row |= {f"{m}_family_low": family[i].low, f"{m}_family_high": family[i].high,
                    f"{m}_family_verdict": verdict(family[i].low, family[i].high), f"{m}_family_level": level}
        seeds = len(pairs[i][-1])
        for m, projected in more.items():  # a verdict reached now needs no more seeds
            alone, together = projected[i]
            row |= {f"{m}_seeds_alone": seeds if row[f"{m}_verdict"] != "not resolved" else alone,
                    f"{m}_seeds_together": seeds if row[f"{m}_family_verdict"] != "not resolved" else together}
        rows.append(row | {"family": len(pairs)})
    return rows


def holds_together(row: dict, metric: str) -> bool:
    """Not a 'better' or 'worse' that holds alone only: with the table's intervals widened to hold together it is
    'not resolved' (a family interval contains its comparison's own, so it never turns to the other side)."""
    return row[metric + "_family_verdict"] == row[metric + "_verdict"]


def _against(rows: list[dict], partner, by_k_first: bool = False) -> tuple[list[tuple], bool]:
    """Every group (arm, method, k) with the group it is compared with (`partner(arm, method, k)` names it, None for
    none) and the seeds both have: ([(arm, method, k, its runs by seed, the partner's, seeds)], whether a pair was
    dropped for sharing fewer than two seeds: one seed gives no interval over seeds)."""
    groups = _groups(rows)
    order = (lambda g: (g[0][0], k_order(g[0][2]), g[0][1])) if by_k_first else _cell_order
    pairs, single = [], False
    for key, by_seed in sorted(groups.items(), key=order):
        other = partner(*key)
        base = groups.get(other) if other not in (None, key) else None
        if base is None:
            continue
        seeds = sorted(set(by_seed) & set(base))
        if len(seeds) < 2:
            single = True
            continue
        pairs.append((*key, by_seed, base, seeds))
    return pairs, single


def verdicts(rows: list[dict], boot: Bootstrap, baseline: str) -> tuple[list[dict], str | None]:
    """Each method against `baseline` at each k of each recipe: the mean over seeds of the paired difference (same
    seed, same test images), its 95% interval, and a verdict. Returns (rows, why there are none, if so)."""
    pairs, single = _against(rows, lambda arm, method, k: None if method == FULL else (arm, baseline, k),
                             by_k_first=True)
    out = [{"recipe": arm[0], "objective": arm[1], "k": k, "method": method, "baseline": baseline,
            "seeds": len(seeds)} | diff for (arm, method, k, _, _, seeds), diff in zip(pairs, _paired(boot, pairs))]
    if out:
        return out, None
    if single:
        return [], (f"no verdicts: a verdict against {baseline} needs at least two seeds of each method at a k "
                    "(paired by seed); these runs have one")
    return [], f"no verdicts: no method has runs beside {baseline} at the same k"


def arm_name(recipe: str, objective: str, with_objective: bool = False) -> str:
    name = recipe or "(no recipe)"
    return f"{name}, {objective}" if with_objective else name


def recipe_verdicts(rows: list[dict], boot: Bootstrap, baseline: tuple[str, str]) -> list[dict]:
    """Each other recipe (with its objective) against the `baseline` one, for each method and k both ran: the mean
    over seeds of the paired difference (same seed, subset and test images), its 95% interval and a verdict."""
    several = len({r["objective"] for r in rows}) > 1
    pairs, _ = _against(rows, lambda arm, method, k: (baseline, method, k))
    return [{"recipe": arm[0], "objective": arm[1], "method": method, "k": k, "against": arm_name(*baseline, several),
             "seeds": len(seeds), "steps": by_seed[seeds[0]]["steps"], "against_steps": base[seeds[0]]["steps"]}
            | diff for (arm, method, k, by_seed, base, seeds), diff in zip(pairs, _paired(boot, pairs))]


def gaps_to_full(rows: list[dict], boot: Bootstrap) -> list[dict]:
    """Each method at each small k against the full corpus of the same recipe: the mean over seeds of the paired
    difference (same seed, so the same student initialisation; same test images), its 95% interval and a verdict.
    'not resolved' from some k on is where the subset stops being told apart from all the data at this budget."""
    pairs, _ = _against(rows, lambda arm, method, k: None if method == FULL else (arm, FULL, FULL))
    return [{"recipe": arm[0], "objective": arm[1], "method": method, "k": k, "seeds": len(seeds),
             "steps": by_seed[seeds[0]]["steps"], "full_steps": base[seeds[0]]["steps"]}
            | diff for (arm, method, k, by_seed, base, seeds), diff in zip(pairs, _paired(boot, pairs))]


def floor_gains(rows: list[dict], boot: Bootstrap) -> list[dict]:
    """Each method at each k of each recipe against its untrained twin (the same student, seed and shape before its
    first step): the mean over seeds of the paired difference (same seed, same test images), its 95% interval and a
    verdict. Whether the students learned at all, which the floor row beside the table only suggests."""
    pairs = []
    for (arm, method, k), by_seed in sorted(_groups(rows).items(), key=_cell_order):
        twin = {s: {"correct": r["untrained_correct"]} for s, r in by_seed.items() if r["untrained_correct"] is not None}
        if len(twin) >= 2:
            pairs.append((arm, method, k, by_seed, twin, sorted(twin)))
    return [{"recipe": arm[0], "objective": arm[1], "method": method, "k": k, "seeds": len(seeds)} | diff
            for (arm, method, k, _, _, seeds), diff in zip(pairs, _paired(boot, pairs))]


def one_seed_note(rows: list[dict]) -> str | None:
    """Where cells have one seed: they get no paired comparison, which needs an interval over seeds, and would
    otherwise be missing from the paired tables unsaid."""
    groups = _groups(rows)
    single = sorted(" ".join(filter(None, (arm[0], method, f"at k = {k:,}" if isinstance(k, int) else "")))
                    for (arm, method, k), by_seed in groups.items() if len(by_seed) == 1)
    if not single:
        return None
    named = "; ".join(single[:4]) + (f"; and {len(single) - 4} more" if len(single) > 4 else "")
    return (f"{len(single)} of {len(groups)} cells have one seed ({named}): they get no paired comparison (against "
            "their untrained twin, another method, another recipe or the full corpus), which needs two seeds or more "
            "of each side, paired by seed; their intervals above are over the test images alone.")


def rank_correlations(rows: list[dict], boot: Bootstrap, metric: str = "knn_top1") -> list[dict]:
    """With runs on the full corpus: for each method and small k, Spearman's correlation between the ranking of
    recipes (with their objectives) there and on the full corpus, with its 95% interval (recipes paired by seed)."""
    groups = _groups(rows)
    full = {arm: g for (arm, method, _), g in groups.items() if method == FULL}
    out = []
    for method in sorted({m for (_, m, _) in groups if m != FULL}):
        for k in sorted({k for (_, m, k) in groups if m == method}, key=k_order):
            recipes = [r for r in sorted(full) if (r, method, k) in groups]
            if len(recipes) < 3:  # with two, any ranking correlates +-1
                continue
            seeds = sorted(set.intersection(*[set(groups[(r, method, k)]) & set(full[r]) for r in recipes]))
            if not seeds:
                continue
            est: Estimate = boot.rank_correlation([_stack([groups[(r, method, k)][s] for s in seeds], metric) for r in recipes],
                                                  [_stack([full[r][s] for s in seeds], metric) for r in recipes])
            out.append({"method": method, "k": k, "recipes": len(recipes), "seeds": len(seeds), "metric": metric,
                        "spearman": est.value, "low": est.low, "high": est.high})
    return out
