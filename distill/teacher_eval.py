"""Teachers alone, before any distillation: which one to distil from on your images, and the ceiling its students
can reach. Each teacher's k-NN and linear probe on the evaluation sets a run's evaluation uses (`EvalConfig`), with
95% intervals over the test images, what it costs per image, and each teacher against the best by k-NN, paired image
by image, the differences holding together at 95% (`family_intervals`): a lead is claimed only where it holds.
"""

from __future__ import annotations

from pathlib import Path

from subsets.fileio import write_json_atomic
from subsets.provenance import environment

from .compare_stats import per_image
from .eval_config import EvalConfig
from .intervals import Bootstrap, family_intervals, verdict_of
from .model_cost import cost_cells, model_cost

TEACHER_EVAL_FORMAT = "subset-distill/teacher-eval"


def evaluate_teachers(names: list[str], config: EvalConfig = EvalConfig(), resolution: int | None = None,
                      device=None, out: Path | None = None) -> dict:
    """Each named teacher's k-NN and probe on `config`'s sets, with per-image results and its cost; written to
    `out` (JSON) when given."""
    import torch

    from teachers import check_teacher, load_teacher

    from .evaluate import _data, extract, scores

    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = config.check()
    eval_set = config.eval_set()  # both sets read first: a bad source is refused before any teacher is loaded
    for name in names:  # and every name: a missing teacher is refused before the others' work, not after it
        check_teacher(name)
    teachers = {}
    for name in names:  # one teacher in memory at a time
        teacher = load_teacher(name, resolution=resolution).to(device)
        info = teacher.info
        features = [extract(class_token_of(teacher), _data(config, which), info.resolution, info.mean, info.std,
                            config.batch_size, device, f"{name} on {which}", keep_pixels=False)
                    for which in ("train", "test")]
        teachers[name] = scores(*features, config, per_image=True) | {
            "cost": model_cost(teacher, info.resolution), "teacher": info.to_dict()}
        del teacher
    result = {"format": TEACHER_EVAL_FORMAT, "eval_set": eval_set, "teachers": teachers, "environment": environment()}
    if out is not None:
        write_json_atomic(Path(out), result)
    return result


def class_token_of(teacher):
    return lambda x: teacher(x)["cls"]


def against_the_best(result: dict, boot: Bootstrap, metric: str = "knn_top1") -> tuple[str, dict[str, object], float]:
    """(the best teacher by `metric`, each other's difference from it as an Estimate, the level each interval is
    taken at for all of them to hold together at 95%)."""
    teachers = result["teachers"]
    best = max(teachers, key=lambda n: teachers[n][metric])
    correct = {n: per_image(t)[metric] for n, t in teachers.items()}
    others = [n for n in teachers if n != best]
    replicates = [boot.difference_replicates(correct[n], correct[best]) for n in others]
    estimates, level = family_intervals([v for v, _ in replicates], [r for _, r in replicates])
    return best, dict(zip(others, estimates)), level


def teachers_table(result: dict):
    """The teachers side by side, the best by k-NN first: accuracies with their 95% intervals and cost; then, with
    several, each one's k-NN difference from the best. Returns the tables and the notes to print under them."""
    from rich.table import Table

    teachers = result["teachers"]
    n_test = len(next(iter(teachers.values()))["correct"]["knn_top1"])
    boot = Bootstrap(n_test)
    es = result["eval_set"]
    ranked = sorted(teachers, key=lambda n: -teachers[n]["knn_top1"])
    table = Table(title=f"teachers on {es['test_source']} ({n_test:,} test images; k-NN memory and probe: "
                        f"{es['train_source']})")
    table.add_column("teacher", overflow="fold")  # a long folder name breaks anywhere rather than losing its end
    for col in ("k-NN top-1 [95%]", "linear probe top-1 [95%]", "parameters", "MACs / image"):
        table.add_column(col, justify="right")
    for name in ranked:
        t, cells = teachers[name], []
        for metric in ("knn_top1", "probe_top1"):
            e = boot.mean(per_image(t)[metric])
            cells.append(f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]")
        table.add_row(name, *cells, *cost_cells(t["cost"]))
    if len(teachers) < 2:
        return [table], []
    best, diffs, level = against_the_best(result, boot)
    versus = Table(title=f"k-NN against the best, {best}, paired by test image")
    versus.add_column("teacher", overflow="fold")
    versus.add_column("difference [95%]", justify="right")
    versus.add_column("verdict")
    for name in ranked[1:]:
        d = diffs[name]
        versus.add_row(name, f"{d.value:+.3f} [{d.low:+.3f}, {d.high:+.3f}]", verdict_of(d))
    notes = [f"The differences hold together at 95% (each interval at {level:.1%})."] if len(diffs) > 1 else []
    return [table, versus], notes
