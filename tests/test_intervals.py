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


def _share_called_different(seed_spread: float, comparisons: int = 400) -> float:
    """The share of simulated comparisons of two methods equal in truth that get a verdict, with three seeds: each
    run's per-image errors drawn around shared image difficulties, each seed's run shifted as a whole by
    `seed_spread` (the standard deviation, on the logit scale)."""
    rng = np.random.default_rng(0)
    called = 0
    for t in range(comparisons):
        difficulty = rng.normal(0.3, 2.0, N)

        def run():
            return rng.random(N) < 1 / (1 + np.exp(-(difficulty + rng.normal(0, seed_spread) + rng.normal(0, 1.0, N))))

        e = Bootstrap(N, replicates=300, seed=t).difference(np.stack([run() for _ in range(3)]),
                                                           np.stack([run() for _ in range(3)]))
        called += verdict(e.low, e.high) != "not resolved"
    return called / comparisons


@pytest.mark.parametrize("seed_spread", [0.0, 0.2])
def test_two_equal_methods_are_called_different_about_one_time_in_twenty_whatever_the_seeds_spread(seed_spread):
    # 0.2: the seeds' spread about twice the test images' error, as in the shipped studies' widest cells; resampling
    # three seeds called 13% of such pairs different. 0.0: the seeds differ by their runs' own image errors alone,
    # which resampling test images counted a second time: it called 1% of them, its intervals too wide.
    assert 0.025 <= _share_called_different(seed_spread) <= 0.08


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


def test_recipes_are_compared_with_the_baseline_recipe_paired_by_seed():
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
    assert baseline_arm(runs, {"config": {"recipe": ""}}, "long") == ("long", "distill")
    assert baseline_arm(runs, {"config": {"recipe": "short"}}, None) == ("short", "distill")  # the first run's
    with pytest.raises(InputError, match="no runs of recipe 'longer'.*the runs have \\(no recipe\\), long, short"):
        baseline_arm(runs, {"config": {"recipe": ""}}, "longer")


def test_a_family_of_one_or_of_comparisons_that_move_as_one_keeps_its_own_95_percent_intervals():
    from distill.intervals import family_intervals, percentile_estimate

    reps = np.random.default_rng(12).normal(0.02, 0.01, size=2000)
    [one], level = family_intervals([0.02], [reps])
    assert level == 0.95 and one == percentile_estimate(0.02, reps)
    same, level = family_intervals([0.02] * 5, [reps] * 5)
    assert level == 0.95 and all(e == one for e in same)


def test_independent_comparisons_are_widened_until_all_of_them_hold_together_at_95_percent():
    from distill.intervals import family_intervals, percentile_estimate

    rng = np.random.default_rng(13)
    reps = [rng.normal(0, 1, size=20000) for _ in range(9)]
    family, level = family_intervals([0.0] * 9, reps)
    assert level == pytest.approx(0.95 ** (1 / 9), abs=0.0015)  # Sidak's level for nine independent ones
    inside = np.all([(r >= e.low) & (r <= e.high) for r, e in zip(reps, family)], axis=0).mean()
    assert 0.95 <= inside < 0.955
    for r, e in zip(reps, family):
        alone = percentile_estimate(0.0, r)
        assert e.low < alone.low and e.high > alone.high


def test_a_lone_marginal_difference_among_nine_is_better_alone_but_not_together_and_a_clear_one_stays_better():
    from distill.intervals import family_intervals

    rng = np.random.default_rng(14)
    means = [2.3, 6.0] + [0.0] * 7  # in units of each comparison's bootstrap spread
    reps = [rng.normal(m, 1, size=4000) for m in means]
    alone, _ = family_intervals(means[:1], reps[:1])
    family, _ = family_intervals(means, reps)
    assert verdict(alone[0].low, alone[0].high) == "better"
    assert verdict(family[0].low, family[0].high) == "not resolved"
    assert verdict(family[1].low, family[1].high) == "better"


def test_a_verdict_table_marks_what_holds_alone_only_and_keeps_each_comparisons_own_interval():
    from distill.compare_stats import verdicts
    from distill.compare_tables import verdict_cell, verdict_summary

    base = _runs(0.4, 3, seed=15)

    def rows(method, correct):
        return [{"recipe": "", "objective": "distill", "method": method, "k": 100, "seed": s, "steps": 100,
                 "correct": {"knn_top1": c, "probe_top1": c}} for s, c in enumerate(correct)]

    clear = _better_by(base, 0.08)
    runs = rows("random", base) + rows("clear", clear)
    [alone] = verdicts(runs, Bootstrap(N, seed=16), "random")[0]
    assert (alone["knn_top1_family_low"], alone["knn_top1_family_high"]) == (alone["knn_top1_low"], alone["knn_top1_high"])
    for i in range(8):  # eight more methods as good as random in truth, each seed's run drawn alike
        runs += rows(f"null-{i}", _runs(0.4, 3, seed=100 + i))
    table, _ = verdicts(runs, Bootstrap(N, seed=16), "random")
    assert len(table) == 9 and all(r["family"] == 9 for r in table)
    for r in table:
        assert r["knn_top1_family_low"] <= r["knn_top1_low"] <= r["knn_top1_high"] <= r["knn_top1_family_high"]
        assert r["knn_top1_family_level"] > 0.99
    again = Bootstrap(N, seed=16)  # each comparison's own interval, drawn as it always was: pair by pair, metric within
    own = [again.difference(np.stack([r["correct"][m] for r in runs if r["method"] == method]), base)
           for method in ["clear", *(f"null-{i}" for i in range(8))] for m in ("knn_top1", "probe_top1")]
    assert [(r[f"{m}_low"], r[f"{m}_high"]) for r in table for m in ("knn_top1", "probe_top1")] == \
        [(e.low, e.high) for e in own]
    got = {r["method"]: r for r in table}
    assert got["clear"]["knn_top1_family_verdict"] == "better" and verdict_cell(got["clear"], "knn_top1") == "better"
    marginal = dict(got["clear"], knn_top1_family_verdict="not resolved")  # as a lone marginal one reads
    assert verdict_cell(marginal, "knn_top1") == "better, not with all 9"
    assert verdict_summary([marginal]) == ["clear against random (k-NN top-1): better at k = 100 (k = 100 not with all "
                                           "9 together)"]


def _shifted(row: np.ndarray, share: float) -> np.ndarray:
    """One seed's run with `share` of the test images turned from wrong to right (from right to wrong if < 0)."""
    out = row.copy()
    out[np.flatnonzero(~row if share > 0 else row)[:round(abs(share) * N)]] = share > 0
    return out


def _spread_like(seeds: int, mean: float, sd: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(runs, base runs) of `seeds` seeds whose paired differences have this mean and standard deviation over seeds."""
    z = np.linspace(-1, 1, seeds)
    z = (z - z.mean()) / z.std(ddof=1)
    base = _runs(0.4, seeds, seed=seed)
    return np.stack([_shifted(row, round(mean + sd * zi, 3)) for row, zi in zip(base, z)]), base


def test_the_seeds_projected_to_resolve_a_difference_are_where_that_many_seeds_of_the_same_spread_resolve_it():
    from distill.intervals import seeds_to_hold

    other, base = _spread_like(3, 0.015, 0.02, seed=21)  # -0.005, +0.015, +0.035
    boot = Bootstrap(N, seed=22)
    assert verdict(*(lambda e: (e.low, e.high))(boot.difference(other, base))) == "not resolved"
    d = boot.seed_differences(other, base)
    [(alone, together)] = seeds_to_hold([d], boot)
    assert alone == together and 6 < alone < 21  # a family of one is its own interval
    for n in range(4, 25):  # n seeds of the same mean difference and spread
        e = Bootstrap(N, seed=23).difference(*_spread_like(n, 0.015, 0.02, seed=100 + n))
        if abs(n - alone) >= 2:  # the bootstrap's own noise decides right at the boundary
            assert verdict(e.low, e.high) == ("better" if n > alone else "not resolved"), (n, alone)


def test_more_seeds_are_not_projected_to_resolve_no_difference_and_a_family_needs_more_than_one_alone():
    from distill.intervals import seeds_to_hold

    base = _runs(0.4, 3, seed=24)
    boot = Bootstrap(N, seed=25)
    assert seeds_to_hold([], boot) == []  # a table with nothing to compare
    same = boot.seed_differences(base, base.copy())
    assert seeds_to_hold([same], boot) == [(None, None)]
    lead = np.stack([_shifted(row, share) for row, share in zip(base, [0.04, 0.0, 0.02])])
    nulls = [np.stack([np.random.default_rng(200 + 10 * i + s).permutation(row) for s, row in enumerate(base)])
             for i in range(8)]  # as good as the base on every seed, right on other images
    drawn = [boot.seed_differences(c, base) for c in [lead, *nulls]]
    [(alone, together), *_] = seeds_to_hold(drawn, boot)
    assert alone is not None and together is not None and together > alone


def test_a_verdict_table_says_how_many_seeds_a_lead_would_need_and_keeps_a_verdict_reached_at_its_seeds():
    from distill.compare_stats import verdicts
    from distill.compare_tables import paired_sections

    base = _runs(0.4, 3, seed=26)

    def rows(method, correct):
        return [{"recipe": "", "objective": "distill", "method": method, "k": 100, "seed": s, "steps": 100,
                 "correct": {"knn_top1": c, "probe_top1": c}} for s, c in enumerate(correct)]

    lead = np.stack([_shifted(row, share) for row, share in zip(base, [0.035, -0.005, 0.015])])
    runs = rows("random", base) + rows("clear", _better_by(base, 0.08)) + rows("lead", lead)
    table, _ = verdicts(runs, Bootstrap(N, seed=27), "random")
    got = {r["method"]: r for r in table}
    assert got["clear"]["knn_top1_seeds_alone"] == got["clear"]["knn_top1_seeds_together"] == 3
    assert 3 < got["lead"]["knn_top1_seeds_alone"] <= got["lead"]["knn_top1_seeds_together"] <= 24
    [(_, _, _, summary)] = paired_sections([], table, [], [])
    assert summary[-1].startswith("with more seeds (k-NN top-1; projected") and "clear" not in summary[-1]
    assert (f"lead at k = 100 (+0.015) alone at {got['lead']['knn_top1_seeds_alone']} seeds, with all 2 at "
            f"{got['lead']['knn_top1_seeds_together']}") in summary[-1]


def test_an_evaluation_set_where_the_untrained_student_reaches_the_ceiling_is_called_out():
    from distill.compare_stats import headroom_note

    demo_floor, demo_teacher = {"knn_top1": 0.296, "probe_top1": 0.435}, {"knn_top1": 0.681, "probe_top1": 0.705}
    assert headroom_note(demo_floor, [demo_teacher]) is None
    easy = headroom_note({"knn_top1": 0.97, "probe_top1": 0.90}, [{"knn_top1": 0.99, "probe_top1": 0.99}])
    assert easy.startswith("no room to learn") and "k-NN top-1 0.970 against 0.990" in easy and "probe" not in easy
    # without a teacher's row the ceiling is a perfect score; the best of several teachers counts
    assert "1.000" in headroom_note({"knn_top1": 0.96, "probe_top1": 0.5}, [])
    assert headroom_note({"knn_top1": 0.60, "probe_top1": 0.5}, [{"knn_top1": 0.62}, {"knn_top1": 0.80}]) is None


def test_teachers_side_by_side_name_the_best_and_claim_a_lead_only_where_it_holds_with_the_others():
    from distill.teacher_eval import against_the_best, teachers_table

    rng = np.random.default_rng(0)
    n = 2000

    def correct(p):  # per-image results at accuracy about p, as eval.json keeps them
        return "".join("1" if c else "0" for c in rng.random(n) < p)

    strong = rng.random(n) < 0.70
    close = strong.copy()  # 100 images lost and 90 won against the strong one: 0.005 behind, far too close to call
    right, wrong = np.flatnonzero(strong), np.flatnonzero(~strong)
    close[right[:100]], close[wrong[:90]] = False, True
    teachers = {"strong": "".join("1" if c else "0" for c in strong), "close": "".join("1" if c else "0" for c in close),
                "weak": correct(0.40)}
    result = {"eval_set": {"test_source": "t", "train_source": "m"},
              "teachers": {name: {"knn_top1": c.count("1") / n, "probe_top1": c.count("1") / n,
                                  "correct": {"knn_top1": c, "probe_top1": c},
                                  "cost": {"params": 1, "macs": 1, "img_size": 32}} for name, c in teachers.items()}}
    best, diffs, level = against_the_best(result, Bootstrap(n))
    assert best == "strong" and set(diffs) == {"close", "weak"} and 0.95 < level < 0.99
    assert diffs["weak"].high < 0 and diffs["close"].low < 0 < diffs["close"].high
    assert diffs["close"].value == pytest.approx(-10 / n)
    tables, notes = teachers_table(result)
    assert notes and "hold together at 95%" in notes[0]
    assert len(tables) == 2 and tables[1].row_count == 2  # the others against the best


def test_each_cell_is_judged_against_its_untrained_twin_and_a_cell_of_one_seed_is_named_not_dropped_unsaid():
    from distill.compare_stats import floor_gains, one_seed_note

    twins = _runs(0.3, 3, seed=5)
    learned = _better_by(twins, 0.1)

    def rows(method, k, students, untrained):
        return [{"recipe": "", "objective": "distill", "method": method, "k": k, "seed": s,
                 "correct": {m: students[s] for m in ("knn_top1", "probe_top1")},
                 "untrained_correct": {m: untrained[s] for m in ("knn_top1", "probe_top1")}}
                for s in range(len(students))]

    cells = rows("random", 100, learned, twins) + rows("kcenter", 100, twins, twins) + \
        rows("kmeans", 300, learned[:1], twins[:1])
    gains = {r["method"]: r for r in floor_gains(cells, Bootstrap(N, seed=2))}
    assert set(gains) == {"random", "kcenter"}  # one seed: no interval over seeds, so no verdict
    assert gains["random"]["knn_top1_verdict"] == "better" and gains["random"]["knn_top1_diff"] == pytest.approx(0.1)
    assert gains["kcenter"]["knn_top1_verdict"] == "not resolved" and gains["kcenter"]["knn_top1_diff"] == 0
    assert gains["random"]["seeds"] == 3 and gains["random"]["knn_top1_low"] > 0
    note = one_seed_note(cells)
    assert note.startswith("1 of 3 cells have one seed (kmeans at k = 300)") and "untrained twin" in note
    assert one_seed_note(cells[:6]) is None
