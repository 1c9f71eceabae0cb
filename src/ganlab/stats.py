"""Statistics for comparing runs over seeds: bootstrap confidence intervals of a mean, paired
differences, a "best" that the intervals support, and the first step a target is reached.

The seeds are the sample: the confidence interval of a group's mean resamples its seeds
(percentile bootstrap, scipy.stats.bootstrap, with a fixed random seed so a report is the
same each time it is written). With 2 to 5 seeds such an interval is rough (the percentile
bootstrap is too narrow for tiny samples); it is the honest statement of how little a few
seeds pin down, and a difference whose interval holds 0 is not a difference.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence

import numpy as np

LEVEL = 0.95
RESAMPLES = 10_000
SEED = 0

Interval = tuple[float, float]


def bootstrap_ci(values: Sequence[float], level: float = LEVEL, resamples: int = RESAMPLES,
                 seed: int = SEED) -> Interval | None:
    """Percentile-bootstrap interval of the mean of ``values`` (None for fewer than 2)."""
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=np.float64)
    if len(data) < 2 or not np.isfinite(data).all():
        return None
    # scipy 1.15 renamed random_state to rng.
    key = "rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state"
    result = bootstrap((data,), np.mean, confidence_level=level, n_resamples=resamples,
                       method="percentile", **{key: np.random.default_rng(seed)})
    low, high = result.confidence_interval
    return float(low), float(high)


def paired_difference(values: Mapping[int, float], baseline: Mapping[int, float],
                      level: float = LEVEL, seed: int = SEED
                      ) -> tuple[float, Interval | None, int] | None:
    """Mean over the seeds both have of ``values[s] - baseline[s]``, its bootstrap interval
    and the number of shared seeds; None when they share none. Pairing removes what a seed
    does to both (its data order, its initial weights) from the comparison."""
    shared = sorted(set(values) & set(baseline))
    if not shared:
        return None
    diffs = [values[s] - baseline[s] for s in shared]
    return float(np.mean(diffs)), bootstrap_ci(diffs, level, seed=seed), len(shared)


def best_index(means: Sequence[float | None], intervals: Sequence[Interval | None],
               mode: str) -> int | None:
    """The group whose interval lies wholly on the better side (``mode`` 'min' or 'max') of
    every other group's interval; None when no group's does (or a group has no interval)."""
    candidates = [i for i, m in enumerate(means) if m is not None and math.isfinite(m)]
    if len(candidates) < 2 or any(intervals[i] is None for i in candidates):
        return None
    pick = min if mode == "min" else max
    best = pick(candidates, key=lambda i: means[i])
    low, high = intervals[best]
    others = [intervals[i] for i in candidates if i != best]
    if mode == "min":
        return best if all(high < o_low for o_low, _ in others) else None
    return best if all(low > o_high for _, o_high in others) else None


def first_reached(series: Mapping[int, float], target: float, mode: str) -> int | None:
    """The first step of ``series`` (step -> value) whose value reaches ``target``
    (<= for 'min' metrics, >= for 'max'); None when none does."""
    for step in sorted(series):
        value = series[step]
        if (value <= target) if mode == "min" else (value >= target):
            return step
    return None
