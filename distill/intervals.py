"""How sure a comparison is: intervals over seeds and test images, paired differences with a verdict, and rank
correlations.

Two sources of error meet in every accuracy of a sweep: the seed (which subset was drawn and how the student
was trained) and the test set (a finite sample of images). Each replicate draws both. The test images are redrawn
with replacement (one draw shared by every run, since all runs are scored on the same images). The seeds are not
resampled: with the three seeds a sweep usually has, resampling them gives the seed part of an interval two thirds
of its variance and a normal quantile, where three values call for Student's t with two degrees of freedom (4.30,
not 1.96). Instead each replicate adds a seed error drawn from the t distribution with S - 1 degrees of freedom,
scaled by the measured seeds' standard deviation over sqrt(S): for the seeds alone exactly the t interval. The
seeds' spread already holds each run's own errors on particular test images, so the test images' part is shrunk to
what the seeds share (`images_error`). Simulated comparisons of two equal methods on 2,000 test images
(`benchmarks/intervals.py`) got a verdict at 95% in 0-1% of cases where the seeds differ by their runs' image errors
alone and in 8-9% where they spread as the widest of the shipped studies' cells, with seeds resampled; 2-6% across
those spreads so. Series compared seed by seed (the recipes of a rank correlation) share the seed draw, through
Gaussian multipliers on each seed's deviation and one chi-square per replicate (a multivariate t with the seeds'
covariance).

A table of paired differences is a family: were nine independent comparisons all without a real difference, over a
third of such tables would still show a "better" or "worse" at 95% each (1 - 0.95^9 = 0.37). `family_intervals`
widens every interval of a table alike (each at the same higher level) until all of them hold together at 95% over
the bootstrap replicates: the percentile method of Mandel & Betensky (2008), which for one comparison is the
comparison's own interval. Each comparison draws its own seed error, as its own interval always has; the test
images are drawn once for all.

A lead that holds alone only is a question for more seeds: `seeds_to_hold` projects how many would settle it, the
seed error of n seeds drawn as above with the measured spread and n - 1 degrees of freedom (the difference and the
test images' part staying as measured) on a random stream of its own, so the intervals above are drawn exactly as
without it.
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


@dataclass(frozen=True)
class Seeds:
    """One series seed by seed (accuracies, or paired differences): as measured on the test set [S], and in each
    replicate of the test images [S, B]."""

    measured: np.ndarray
    replicates: np.ndarray

    @property
    def value(self) -> float:
        return float(self.measured.mean())

    @property
    def deviations(self) -> np.ndarray:
        return self.measured - self.measured.mean()

    def __len__(self) -> int:
        return len(self.measured)


@dataclass(frozen=True)
class SeedDraws:
    """A seed error per replicate for series of S seeds: Gaussian multipliers [B, S] on the seeds' deviations and the
    t distribution's scale [B] (sqrt of a chi-square with S - 1 degrees of freedom over S - 1)."""

    multipliers: np.ndarray
    scale: np.ndarray

    def error(self, series: Seeds) -> np.ndarray:
        """[B]: the seed error of `series` in each replicate, t-distributed with S - 1 degrees of freedom around zero,
        with the scale of its measured seeds' standard deviation over sqrt(S); zero for one seed."""
        s = len(series)
        if s < 2:
            return np.zeros(len(self.scale))
        # sum_s dev_s g_s is normal with variance (S - 1) var: over sqrt(S (S - 1)) it has the mean's variance
        return self.multipliers @ series.deviations / np.sqrt(s * (s - 1)) / self.scale


def images_error(series: Seeds) -> np.ndarray:
    """[B]: what redrawing the test images moves the mean over seeds by, less what the seed error counts already.

    The mean over seeds of the redrawn accuracies moves by two things: the test set's sampling of the images (shared
    by every seed) and each run's own errors on particular images, which differ from seed to seed and so are in the
    measured seeds' spread, the seed error's scale. Counted twice, they made intervals about 1.4 times too wide where
    the seeds differ by little more than those errors (no false verdict among 300 simulated equal pairs). Their
    share of the variance is the within-seed variance of the redrawn accuracies over S - 1 (each seed's replicates
    about the mean replicate); the deviations are shrunk to the rest (to none where it is not positive). With one
    seed nothing tells them apart and the whole test-set error stays: the test set's binomial error."""
    mean = series.replicates.mean(0)
    deviation = mean - series.value
    s, total = len(series), deviation.var()
    if s < 2 or total == 0:
        return deviation
    own_errors = (series.replicates - mean).var(axis=1).mean() / (s - 1)
    return deviation * np.sqrt(max(0.0, 1 - own_errors / total))


class Bootstrap:
    """Replicates of test-image weights, drawn once for a comparison and shared by every statistic in it, and the
    seed errors each statistic adds to them."""

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

    def series(self, correct: np.ndarray) -> Seeds:
        """correct [S, N] -> each seed's accuracy, measured and in each replicate."""
        correct = np.atleast_2d(correct)
        return Seeds(correct.mean(1, dtype=np.float64), self.accuracies(correct))

    def seed_draws(self, seeds: int) -> SeedDraws:
        """The seed errors of one statistic's replicates, for series of `seeds` seeds; one seed has none."""
        multipliers = self.rng.standard_normal((self.replicates, seeds))
        scale = (np.sqrt(self.rng.chisquare(seeds - 1, size=self.replicates) / (seeds - 1)) if seeds > 1
                 else np.ones(self.replicates))
        return SeedDraws(multipliers, scale)

    def with_seed_error(self, series: Seeds, draws: SeedDraws | None = None) -> np.ndarray:
        """[B]: each replicate's test images' error (`images_error`) plus a seed error (`draws`, else drawn here for
        this statistic alone), around the measured mean."""
        draws = draws if draws is not None else self.seed_draws(len(series))
        return series.value + images_error(series) + draws.error(series)

    def mean(self, correct: np.ndarray) -> Estimate:
        """Mean accuracy over seeds with its interval."""
        series = self.series(correct)
        return percentile_estimate(series.value, self.with_seed_error(series))

    def difference(self, correct_a: np.ndarray, correct_b: np.ndarray) -> Estimate:
        """Mean over seeds of a - b, paired by seed (row i of both is one seed) and by test image."""
        return percentile_estimate(*self.difference_replicates(correct_a, correct_b))

    def difference_replicates(self, correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[float, np.ndarray]:
        """(the mean over seeds of a - b, its [B] replicates): `difference` before its interval is read, for a family
        of differences (`family_intervals`)."""
        d = self.seed_differences(correct_a, correct_b)
        return d.value, self.with_seed_error(d)

    def seed_differences(self, correct_a: np.ndarray, correct_b: np.ndarray) -> Seeds:
        """Each seed's a - b, measured and in each replicate of the test images; no seed error is drawn."""
        correct_a, correct_b = np.atleast_2d(correct_a), np.atleast_2d(correct_b)
        if correct_a.shape != correct_b.shape:
            raise ValueError(f"paired difference of {correct_a.shape} and {correct_b.shape}")
        a, b = self.series(correct_a), self.series(correct_b)
        return Seeds(a.measured - b.measured, a.replicates - b.replicates)

    def projected(self, per_seed: list[Seeds], most: int) -> Callable[[int], np.ndarray]:
        """For a family of paired differences (from `seed_differences`), a function of a seed count n giving the
        [J, B] replicates each difference would have with max(n, S_j) seeds: its test images' part as measured, its
        seed error t-distributed with n - 1 degrees of freedom at the measured spread over sqrt(n). One normal and
        `most` chi-square terms per replicate serve every n (the first n - 1 of them), so a larger n only adds seeds
        and the projection moves smoothly with n."""
        terms = max(most, *(len(d) for d in per_seed))
        normal = self.projection_rng.standard_normal((len(per_seed), self.replicates))
        squares = np.cumsum(self.projection_rng.standard_normal((len(per_seed), self.replicates, terms)) ** 2, axis=2)
        spread = [d.deviations.std(ddof=1) if len(d) > 1 else 0.0 for d in per_seed]
        image_part = [images_error(d) for d in per_seed]  # shared by every seed: more seeds do not shrink it

        def at(n: int) -> np.ndarray:
            out = []
            for j, d in enumerate(per_seed):
                seeds = max(n, len(d))
                scale = np.sqrt(squares[j, :, seeds - 2] / (seeds - 1)) if seeds > 1 else 1.0
                out.append(d.value + image_part[j] + spread[j] / np.sqrt(seeds) * normal[j] / scale)
            return np.stack(out)

        return at

    def rank_correlation(self, small: list[np.ndarray], full: list[np.ndarray]) -> Estimate:
        """Spearman correlation between the ranking of recipes by mean accuracy at a small k and on the full corpus.
        small[r] and full[r] are recipe r's [S, N] correctness, rows paired by seed across all of them: one seed
        draw serves every series, so their seed errors keep the seeds' covariance."""
        draws = self.seed_draws(len(np.atleast_2d(small[0])))
        at = lambda series: np.stack([self.with_seed_error(self.series(c), draws) for c in series])  # noqa: E731
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


def seeds_to_hold(per_seed: list[Seeds], boot: Bootstrap, most: int = MOST_SEEDS,
                  level: float = LEVEL) -> list[tuple[int | None, int | None]]:
    """For each of a family of paired differences (`per_seed[j]`, its S_j seeds' differences from
    `Bootstrap.seed_differences`): the fewest seeds, from S_j + 1 up to `most`, at which its own interval and the
    family's (every difference at its projected seeds, widened alike to hold together, `family_level`) would exclude
    zero, were the difference and its seeds' spread to stay as measured (`Bootstrap.projected`); None for a verdict
    not reached within `most`. A projection, not a promise: three seeds measure their spread coarsely, and a lead
    picked out for its size tends to shrink with more seeds (regression to the mean), so read the count as a
    lower bound."""
    if not per_seed:
        return []
    at = boot.projected(per_seed, most)
    alone: list[int | None] = [None] * len(per_seed)
    together: list[int | None] = [None] * len(per_seed)
    for n in range(min(len(d) for d in per_seed) + 1, most + 1):
        reps = at(n)
        each = family_level(reps, level)
        for j, (d, r) in enumerate(zip(per_seed, reps)):
            if n <= len(d):
                continue
            if alone[j] is None and verdict_of(percentile_estimate(d.value, r, level)) != "not resolved":
                alone[j] = n
            if together[j] is None and verdict_of(percentile_estimate(d.value, r, each)) != "not resolved":
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
