"""The shipped studies' tables are what their shipped runs give: where a study ships its runs' records and
evaluations (`runs/NAME/run.json` and `eval.json`, which hold each run's per-image results), `distill compare` over
them writes its tables again to the character. A change to how comparisons are drawn then fails here until the
shipped tables are drawn again from the same runs."""

import csv
from pathlib import Path

import pytest

from distill.compare import compare_runs

from .helpers import ROOT

TABLES = ("results.csv", "summary.csv", "verdicts.csv", "gaps.csv", "recipe_verdicts.csv", "floor_gains.csv")


def _shipped_comparisons() -> list[tuple[Path, Path]]:
    """(a comparison's folder, the runs folder of its study) for every shipped results.csv whose study ships its runs."""
    found = []
    for results in sorted((ROOT / "studies").rglob("results.csv")):
        runs = next((p / "runs" for p in results.parents if (p / "runs").is_dir()), None)
        if runs is not None and (ROOT / "studies") in runs.parents:
            found.append((results.parent, runs))
    return found


def test_a_study_that_ships_its_runs_ships_every_run_its_tables_name():
    comparisons = _shipped_comparisons()
    assert comparisons, "no shipped study ships its runs"
    for folder, runs in comparisons:
        for row in csv.DictReader((folder / "results.csv").open()):
            assert {"run.json", "eval.json"} <= {p.name for p in (runs / row["run"]).iterdir()}, (folder, row["run"])


@pytest.mark.parametrize("folder, runs", _shipped_comparisons(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_shipped_tables_are_drawn_again_from_the_shipped_runs(folder, runs, tmp_path):
    names = [row["run"] for row in csv.DictReader((folder / "results.csv").open())]
    compare_runs([runs / name for name in names], tmp_path, console=None)
    for table in TABLES:
        if (folder / table).exists():
            assert (tmp_path / table).read_text() == (folder / table).read_text(), table
        else:
            assert not (tmp_path / table).exists(), table


def test_a_comparison_leaves_no_table_of_an_earlier_one_and_never_overwrites_other_results(tmp_path):
    from .helpers import error_line, run_cli

    runs = sorted((ROOT / "studies" / "objectives-long-methods" / "runs" / "mim-jepa").iterdir())
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert run_cli("compare", *runs, "--out", out).returncode == 0
    assert (out / "verdicts.csv").exists() and (out / "floor_gains.csv").exists()
    # one seed of random alone: nothing to give verdicts on, so the earlier comparison's verdicts must not stay
    assert run_cli("compare", runs[-1], "--out", out).returncode == 0
    assert not (out / "verdicts.csv").exists() and not (out / "floor_gains.csv").exists()
    assert [r["run"] for r in csv.DictReader((out / "results.csv").open())] == [f"mim-jepa/{runs[-1].name}"]
    assert (out / "notes.txt").read_text() == "mine"

    other = tmp_path / "paper"
    other.mkdir()
    (other / "results.md").write_text("my results")
    res = run_cli("compare", *runs, "--out", other)
    assert res.returncode == 2 and "holds results.md, not written by a comparison" in error_line(res)
    assert [p.name for p in other.iterdir()] == ["results.md"] and (other / "results.md").read_text() == "my results"
