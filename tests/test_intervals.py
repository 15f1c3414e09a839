"""Intervals, paired verdicts and rank correlations on constructed cases whose answer is known."""

import math

import numpy as np
import pytest

from distill.intervals import Bootstrap, ranks, spearman, verdict

N = 1000


def _runs(p: float, seeds: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((seeds, N)) < p


def _better_by(base: np.ndarray, share: float) -> np.ndarray:
    """The same runs with `share` of the test images turned from wrong to right on every seed."""
    out = base.copy()
    for row in out:
        wrong = np.flatnonzero(~row)
        row[wrong[:round(share * N)]] = True
    return out


def test_a_method_better_on_every_seed_is_called_better_and_its_mirror_worse():
    base = _runs(0.4, 3)
    better = _better_by(base, 0.05)
    boot = Bootstrap(N, seed=1)
    d = boot.difference(better, base)
    assert d.value == pytest.approx(0.05) and d.low > 0 and verdict(d.low, d.high) == "better"
    d = boot.difference(base, better)
    assert verdict(d.low, d.high) == "worse"


def test_identical_runs_resolve_no_difference():
    base = _runs(0.4, 3)
    d = Bootstrap(N, seed=2).difference(base, base.copy())
    assert (d.value, d.low, d.high) == (0.0, 0.0, 0.0) and verdict(d.low, d.high) == "not resolved"


def test_a_small_difference_on_noisy_seeds_is_not_resolved():
    # seeds disagree: +0.06, -0.04, +0.01 against the baseline
    base = _runs(0.4, 3, seed=3)
    other = base.copy()
    for row, change in zip(other, (0.06, -0.04, 0.01)):
        idx = np.flatnonzero(~row if change > 0 else row)[:round(abs(change) * N)]
        row[idx] = change > 0
    d = Bootstrap(N, seed=4).difference(other, base)
    assert d.value == pytest.approx(0.01) and verdict(d.low, d.high) == "not resolved"


def test_one_seeds_interval_is_the_test_sets_binomial_error():
    runs = _runs(0.3, 1, seed=5)
    est = Bootstrap(N, seed=6).mean(runs)
    p = runs.mean()
    assert est.low < p < est.high
    assert est.half_width == pytest.approx(1.96 * math.sqrt(p * (1 - p) / N), rel=0.15)


def test_seeds_that_disagree_widen_the_interval():
    boot = Bootstrap(N, seed=7)
    one = boot.mean(_runs(0.4, 1, seed=8))
    spread = np.concatenate([_runs(p, 1, seed=9 + i) for i, p in enumerate((0.3, 0.4, 0.5))])
    three = boot.mean(spread)
    assert three.half_width > 2 * one.half_width


def test_spearman_of_identical_and_reversed_rankings():
    x = np.array([0.31, 0.45, 0.40, 0.38])
    assert spearman(x, x * 2 + 1) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert list(ranks([3.0, 1.0, 3.0, 2.0])) == [3.5, 1.0, 3.5, 2.0]
    assert math.isnan(spearman(x, np.ones(4)))


def test_rank_correlation_of_recipes_ranked_alike_at_small_k_and_full_data():
    boot = Bootstrap(N, seed=10)
    small = [_runs(p, 3, seed=20 + i) for i, p in enumerate((0.30, 0.40, 0.50, 0.60))]
    full = [_runs(p, 3, seed=30 + i) for i, p in enumerate((0.45, 0.55, 0.65, 0.75))]
    same = boot.rank_correlation(small, full)
    assert same.value == pytest.approx(1.0) and same.low > 0.5
    reversed_ = boot.rank_correlation(small, full[::-1])
    assert reversed_.value == pytest.approx(-1.0) and reversed_.high < -0.5


def test_the_k_from_which_a_subset_stops_falling_short_of_the_full_corpus_is_named():
    from distill.compare_stats import gaps_to_full
    from distill.compare_tables import gap_summary

    full = _runs(0.5, 3, seed=8)
    worse = ~_better_by(~full, 0.08)  # 8% of the full runs' right images turned wrong on every seed
    noisy = full.copy()
    for row, change in zip(noisy, (0.03, -0.03, 0.0)):  # seeds disagree around the full corpus
        idx = np.flatnonzero(~row if change > 0 else row)[:round(abs(change) * N)]
        row[idx] = change > 0

    def rows(method, k, correct, steps=100):
        return [{"recipe": None, "objective": "distill", "method": method, "k": k, "seed": s, "steps": steps,
                 "correct": {"knn_top1": c, "probe_top1": c}} for s, c in enumerate(correct)]

    runs = rows("full", "full", full, steps=300) + rows("random", 100, worse) + rows("random", 1000, noisy)
    runs += rows("kcenter", 100, worse) + rows("kcenter", 1000, worse)
    gaps = gaps_to_full(runs, Bootstrap(N, seed=9))
    got = {(g["method"], g["k"]): g for g in gaps}
    assert set(got) == {("random", 100), ("random", 1000), ("kcenter", 100), ("kcenter", 1000)}
    assert got[("random", 100)]["knn_top1_diff"] == pytest.approx(-0.08)
    assert got[("random", 100)]["knn_top1_verdict"] == "worse"
    assert got[("random", 1000)]["knn_top1_verdict"] == "not resolved"
    assert (got[("random", 1000)]["steps"], got[("random", 1000)]["full_steps"]) == (100, 300)
    lines = gap_summary(gaps)
    assert any(line.startswith("random against the full corpus") and "worse at k = 100" in line
               and "from k = 1,000 on, no subset is resolved worse" in line for line in lines)
    assert any(line.startswith("kcenter against") and "the largest k here is still resolved worse" in line
               for line in lines)


def test_recipes_are_compared_with_the_baseline_recipe_paired_by_seed(tmp_path):
    from distill.compare import baseline_arm
    from distill.compare_stats import recipe_verdicts
    from distill.compare_tables import recipe_summary
    from subsets.errors import InputError

    base = _runs(0.4, 3, seed=10)
    better = _better_by(base, 0.05)

    def rows(recipe, k, correct, steps=100):
        return [{"recipe": recipe, "objective": "distill", "method": "full" if k == "full" else "random", "k": k,
                 "seed": s, "steps": steps, "correct": {"knn_top1": c, "probe_top1": c}} for s, c in enumerate(correct)]

    runs = rows("", 100, base) + rows("", "full", base) + rows("long", 100, better, 300) + rows("long", "full", base, 300)
    runs += rows("short", 100, base[:1])  # one seed: no interval over seeds, no verdict
    got = {(r["recipe"], r["k"]): r for r in recipe_verdicts(runs, Bootstrap(N, seed=11), ("", "distill"))}
    assert set(got) == {("long", 100), ("long", "full")}
    assert got[("long", 100)]["knn_top1_verdict"] == "better" and got[("long", 100)]["knn_top1_diff"] == pytest.approx(0.05)
    assert got[("long", "full")]["knn_top1_verdict"] == "not resolved"
    assert (got[("long", 100)]["against"], got[("long", 100)]["against_steps"]) == ("(no recipe)", 100)
    assert recipe_summary([got[("long", 100)], got[("long", "full")]]) == [
        "long against (no recipe) on random (k-NN top-1): better at k = 100",
        "long against (no recipe) on the full corpus (k-NN top-1): not resolved"]
    assert baseline_arm(runs, tmp_path, "long") == ("long", "distill")
    with pytest.raises(InputError, match="no runs of recipe 'longer'.*the runs have \\(no recipe\\), long, short"):
        baseline_arm(runs, tmp_path, "longer")
