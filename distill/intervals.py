"""How sure a comparison is: bootstrap intervals over seeds and test images, paired differences with a verdict,
and rank correlations.

Two sources of error meet in every accuracy of a sweep: the seed (which subset was drawn and how the student
was trained) and the test set (a finite sample of images). Each bootstrap replicate redraws both: the test
images with replacement (one draw shared by every run, since all runs are scored on the same images) and the
seeds with replacement (one draw shared by every series in a statistic, so runs stay paired by seed). With three
seeds the seed part of the interval is coarse; it still widens the interval by the variance a user's own draw
would meet, which the test set's binomial error alone hides.

A table of paired differences is a family: were nine independent comparisons all without a real difference, over a
third of such tables would still show a "better" or "worse" at 95% each (1 - 0.95^9 = 0.37). `family_intervals`
widens every interval of a table alike (each at the same higher level) until all of them hold together at 95% over
the bootstrap replicates: the percentile method of Mandel & Betensky (2008), which for one comparison is the
comparison's own interval. Each comparison draws its own seeds, as its own interval always has; the test images are
drawn once for all. Drawing the seeds once for the whole table instead moved the level by 0.001 on the long-tail
study (99.4% against 99.5% for its 9 comparisons).

A lead that holds alone only is a question for more seeds: `seeds_to_hold` projects how many would settle it, drawing
n seeds at a time from the measured ones (their spread and the difference staying as measured) on a random stream of
its own, so the intervals above are drawn exactly as without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

REPLICATES = 2000
LEVEL = 0.95
MOST_SEEDS = 24  # how far `seeds_to_hold` projects: past it a user would rather rethink the comparison


def verdict(low: float, high: float) -> str:
    """'better' / 'worse' when the interval of a difference excludes zero, else 'not resolved'."""
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "not resolved"


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


class Bootstrap:
    """Replicates of test-image weights, drawn once for a comparison and shared by every statistic in it."""

    def __init__(self, n_images: int, replicates: int = REPLICATES, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        # projections to more seeds draw from their own stream: the intervals' draws stay as they always were
        self.projection_rng = np.random.default_rng([seed, 1])
        self.n_images, self.replicates = n_images, replicates
        p = np.full(n_images, 1.0 / n_images)
        # multinomial counts: replicate b holds image i weights[b, i] times
        self.weights = np.concatenate([self.rng.multinomial(n_images, p, size=min(256, replicates - b0)).astype(np.float32)
                                       for b0 in range(0, replicates, 256)])

    def accuracies(self, correct: np.ndarray) -> np.ndarray:
        """correct [S, N] (one row per seed, 0/1 per test image) -> accuracy [S, B] of each seed in each replicate."""
        correct = np.asarray(correct, dtype=np.float32).reshape(-1, self.n_images)
        return correct @ self.weights.T / self.n_images

    def seed_draws(self, seeds: int) -> np.ndarray:
        """[B, S] seed positions drawn with replacement; a single seed is always itself."""
        return self.rng.integers(seeds, size=(self.replicates, seeds))

    def _over_seeds(self, acc: np.ndarray, draws: np.ndarray) -> np.ndarray:
        """acc [S, B] -> [B]: each replicate's mean over its drawn seeds."""
        return acc[draws, np.arange(self.replicates)[:, None]].mean(1)

    def mean(self, correct: np.ndarray) -> Estimate:
        """Mean accuracy over seeds with its interval."""
        correct = np.atleast_2d(correct)
        reps = self._over_seeds(self.accuracies(correct), self.seed_draws(len(correct)))
        return percentile_estimate(float(correct.mean()), reps)

    def difference(self, correct_a: np.ndarray, correct_b: np.ndarray) -> Estimate:
        """Mean over seeds of a - b, paired by seed (row i of both is one seed) and by test image."""
        return percentile_estimate(*self.difference_replicates(correct_a, correct_b))

    def difference_replicates(self, correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[float, np.ndarray]:
        """(the mean over seeds of a - b, its [B] bootstrap replicates): `difference` before its interval is read,
        for a family of differences (`family_intervals`)."""
        value, per_seed = self.seed_differences(correct_a, correct_b)
        return value, self.over_drawn_seeds(per_seed)

    def over_drawn_seeds(self, per_seed: np.ndarray) -> np.ndarray:
        """[S, B] (each seed in each replicate of the test images) -> [B]: each replicate's mean over S seeds drawn
        with replacement."""
        return self._over_seeds(per_seed, self.seed_draws(len(per_seed)))

    def seed_differences(self, correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[float, np.ndarray]:
        """(the mean over seeds of a - b, each seed's a - b in each replicate of the test images [S, B]); no seed
        is drawn."""
        correct_a, correct_b = np.atleast_2d(correct_a), np.atleast_2d(correct_b)
        if correct_a.shape != correct_b.shape:
            raise ValueError(f"paired difference of {correct_a.shape} and {correct_b.shape}")
        return float(correct_a.mean() - correct_b.mean()), self.accuracies(correct_a) - self.accuracies(correct_b)

    def projected(self, per_seed: list[np.ndarray], most: int) -> Callable[[int], np.ndarray]:
        """For a family of paired differences (each [S_j, B] from `seed_differences`), a function of a seed count n
        giving the [J, B] replicates each difference would have with max(n, S_j) seeds, its seeds drawn from its
        measured ones: the spread over seeds and the difference staying as measured. Draws are shared across n (the
        first n of one draw), so a larger n only adds seeds and the projection moves smoothly with n."""
        draws = [self.projection_rng.integers(len(d), size=(self.replicates, max(most, len(d)))) for d in per_seed]
        columns = np.arange(self.replicates)[:, None]
        return lambda n: np.stack([d[dr[:, :max(n, len(d))], columns].mean(1) for d, dr in zip(per_seed, draws)])

    def rank_correlation(self, small: list[np.ndarray], full: list[np.ndarray]) -> Estimate:
        """Spearman correlation between the ranking of recipes by mean accuracy at a small k and on the full corpus.
        small[r] and full[r] are recipe r's [S, N] correctness, rows paired by seed across all of them."""
        seeds = len(np.atleast_2d(small[0]))
        draws = self.seed_draws(seeds)
        at = lambda series: np.stack([self._over_seeds(self.accuracies(c), draws) for c in series])  # noqa: E731
        reps_small, reps_full = at(small), at(full)  # [R, B]
        reps = np.array([spearman(reps_small[:, b], reps_full[:, b]) for b in range(self.replicates)])
        point = spearman(np.array([np.mean(c) for c in small]), np.array([np.mean(c) for c in full]))
        return percentile_estimate(point, reps[np.isfinite(reps)])


def percentile_estimate(value: float, replicates: np.ndarray, level: float = LEVEL) -> Estimate:
    if len(replicates) == 0:
        return Estimate(value, float("nan"), float("nan"))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return Estimate(value, float(low), float(high))


def _share_inside(replicates: np.ndarray, level: float) -> float:
    """The share of replicates (columns of [J, B]) inside every row's percentile interval at `level`."""
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail], axis=1)
    return float(((replicates >= low[:, None]) & (replicates <= high[:, None])).all(0).mean())


def family_level(replicates: np.ndarray, level: float = LEVEL) -> float:
    """The level at which each of J percentile intervals (rows of `replicates` [J, B], one bootstrap: column b of
    every row is one replicate) is taken so that `level` of the replicates lies inside all J at once. Never below
    `level`: one comparison, or J that move as one, keep their own intervals."""
    replicates = np.atleast_2d(replicates)
    if len(replicates) <= 1 or _share_inside(replicates, level) >= level:
        return level
    low, high = level, 1.0  # at 1.0 each interval spans all its replicates: every replicate is inside
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (low, mid) if _share_inside(replicates, mid) >= level else (mid, high)
    return high


def family_intervals(values: list[float], replicates: list[np.ndarray],
                     level: float = LEVEL) -> tuple[list[Estimate], float]:
    """Intervals for a family of statistics (one bootstrap, `replicates[j]` the [B] replicates of `values[j]`) that
    hold together at `level`, and the level each is taken at (Mandel & Betensky 2008)."""
    if not values:
        return [], level
    each = family_level(np.stack(replicates), level)
    return [percentile_estimate(v, r, each) for v, r in zip(values, replicates)], each


def seeds_to_hold(values: list[float], per_seed: list[np.ndarray], boot: Bootstrap, most: int = MOST_SEEDS,
                  level: float = LEVEL) -> list[tuple[int | None, int | None]]:
    """For each of a family of paired differences (`values[j]`, its seeds' differences `per_seed[j]` [S_j, B] from
    `Bootstrap.seed_differences`): the fewest seeds, from S_j + 1 up to `most`, at which its own interval and the
    family's (every difference at its projected seeds, widened alike to hold together, `family_level`) would exclude
    zero, were the difference and its seeds' spread to stay as measured (`Bootstrap.projected`); None for a verdict
    not reached within `most`. A projection, not a promise: three seeds measure their spread coarsely, and a lead
    picked out for its size tends to shrink with more seeds (regression to the mean), so read the count as a
    lower bound."""
    if not values:
        return []
    at = boot.projected(per_seed, most)
    alone: list[int | None] = [None] * len(values)
    together: list[int | None] = [None] * len(values)
    for n in range(min(len(d) for d in per_seed) + 1, most + 1):
        reps = at(n)
        each = family_level(reps, level)
        for j, (value, r) in enumerate(zip(values, reps)):
            if n <= len(per_seed[j]):
                continue
            if alone[j] is None and verdict_of(percentile_estimate(value, r, level)) != "not resolved":
                alone[j] = n
            if together[j] is None and verdict_of(percentile_estimate(value, r, each)) != "not resolved":
                together[j] = n
        if all(t is not None or len(d) >= most for t, d in zip(together, per_seed)):
            break
    return list(zip(alone, together))


def verdict_of(estimate: Estimate) -> str:
    return verdict(estimate.low, estimate.high)


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):
        tied = x == value
        if tied.sum() > 1:
            r[tied] = r[tied].mean()
    return r


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson on average ranks); nan when either side is all ties."""
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")
