"""ganlab.stats on samples whose bootstrap distribution can be worked out by hand."""

import pytest

from ganlab.stats import best_index, bootstrap_ci, first_reached, paired_difference


def test_interval_of_two_values_is_their_range() -> None:
    # Resampled means of [1, 2] are 1, 1.5 and 2 with probabilities 1/4, 1/2, 1/4: the 2.5%
    # and 97.5% percentiles are 1 and 2.
    assert bootstrap_ci([1.0, 2.0]) == (1.0, 2.0)


def test_interval_of_a_skewed_sample_is_bounded_by_the_binomial() -> None:
    # A resample of [0, 0, 0, 0, 10] has mean 2k, k ~ Binomial(5, 0.2) tens drawn.
    # P(k = 0) = 0.328 > 0.025, so the lower end is 0; P(k <= 2) = 0.942 < 0.975 <=
    # P(k <= 3) = 0.993, so the upper end is 2 * 3 = 6 (10,000 resamples put the empirical
    # quantiles on the same side by more than 10 standard errors).
    assert bootstrap_ci([0.0, 0.0, 0.0, 0.0, 10.0]) == (0.0, 6.0)


def test_interval_is_reproducible_and_none_for_one_value() -> None:
    values = [3.1, 2.7, 3.9, 3.3]
    low, high = bootstrap_ci(values)
    assert min(values) <= low < sum(values) / 4 < high <= max(values)
    assert bootstrap_ci(values) == (low, high)  # a fixed seed: the same report every time
    assert bootstrap_ci([5.0, 5.0, 5.0]) == (5.0, 5.0)
    assert bootstrap_ci([3.0]) is None


def test_paired_difference_uses_only_shared_seeds() -> None:
    # Seed 3 ran only in the baseline; the shared seeds' differences are 2 and 1.
    mean, interval, n = paired_difference({0: 3.0, 1: 1.0}, {0: 1.0, 1: 0.0, 3: 9.0})
    assert (mean, interval, n) == (1.5, (1.0, 2.0), 2)
    # A constant offset is known exactly, however noisy the seeds are.
    assert paired_difference({0: 10.5, 1: 2.5, 2: 7.5}, {0: 10.0, 1: 2.0, 2: 7.0}) == (
        0.5, (0.5, 0.5), 3)
    assert paired_difference({0: 1.0}, {1: 1.0}) is None


def test_best_needs_an_interval_clear_of_every_other() -> None:
    clear = [(0.5, 1.5), (4.0, 6.0), (5.0, 7.0)]
    assert best_index([1.0, 5.0, 6.0], clear, "min") == 0
    assert best_index([1.0, 5.0, 6.8], [(0.5, 1.5), (4.0, 6.0), (6.5, 7.0)], "max") == 2
    # The best mean, but its interval overlaps another group's: no mark.
    assert best_index([1.0, 5.0], [(0.5, 4.5), (4.0, 6.0)], "min") is None
    assert best_index([1.0, 5.0], [(0.5, 1.5), None], "min") is None  # one seed: no interval
    assert best_index([1.0], [(0.5, 1.5)], "min") is None


def test_first_step_that_reaches_a_target() -> None:
    fid = {3000: 25.0, 0: 50.0, 2000: 19.0, 1000: 30.0}
    assert first_reached(fid, 20.0, "min") == 2000
    assert first_reached(fid, 19.0, "min") == 2000  # reaching means <=, not <
    assert first_reached({1000: 0.5, 2000: 0.9}, 0.8, "max") == 2000
    assert first_reached(fid, 10.0, "min") is None


@pytest.mark.parametrize("values", [[1.0, float("nan")], [float("inf"), 2.0]])
def test_no_interval_of_non_finite_values(values) -> None:
    assert bootstrap_ci(values) is None
