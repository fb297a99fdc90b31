"""Bootstrap intervals cover the true mean about 95% of the time, paired differences see a real gap, and the no-gain rule."""

from __future__ import annotations

import numpy as np
import pytest

from app.evidence import bootstrap_interval, no_gain, paired_difference


@pytest.mark.parametrize(
    "draw, true_mean",
    [
        (lambda rng, n: rng.binomial(1, 0.3, n).astype(float), 0.3),  # per-query P@1: hit or miss
        (lambda rng, n: rng.beta(2, 5, n), 2 / 7),  # per-query AP@R: a skewed value in [0, 1]
    ],
)
def test_intervals_cover_the_true_mean_about_95_percent_of_the_time(draw, true_mean):
    rng = np.random.default_rng(7)
    trials, covered = 400, 0
    for trial in range(trials):
        low, high = bootstrap_interval(draw(rng, 300), seed=trial)
        covered += low <= true_mean <= high
    assert 0.92 <= covered / trials <= 0.98, covered / trials


def test_intervals_of_several_metrics_at_once_are_seeded_and_narrow_with_more_queries():
    rng = np.random.default_rng(0)
    values = rng.random((2000, 3))
    low, high = bootstrap_interval(values, seed=3)
    assert low.shape == high.shape == (3,) and np.all(low < values.mean(0)) and np.all(values.mean(0) < high)
    again = bootstrap_interval(values, seed=3)
    assert np.array_equal(low, again[0]) and np.array_equal(high, again[1])
    small_low, small_high = bootstrap_interval(values[:200], seed=3)
    assert np.all(high - low < small_high - small_low)


def test_paired_difference_separates_a_real_gap_and_not_noise():
    rng = np.random.default_rng(1)
    a = rng.beta(2, 5, 500)
    same = paired_difference(a, a + rng.normal(0, 0.01, 500), seed=0)
    assert same[1] < 0 < same[2]
    better = paired_difference(a + 0.02 + rng.normal(0, 0.01, 500), a, seed=0)
    assert 0 < better[1] < better[0] < better[2]


def scored(step: int, value: float, low: float, high: float) -> dict:
    m = "mean_average_precision_at_r"
    return {"step": step, "metrics": {m: value, f"{m}_low": low, f"{m}_high": high}}


def test_no_gain_unless_the_best_interval_lies_above_the_baseline_interval():
    baseline = scored(0, 0.50, 0.48, 0.52)
    m = "mean_average_precision_at_r"
    assert no_gain(scored(300, 0.60, 0.58, 0.62), baseline, m) is None
    overlapping = no_gain(scored(300, 0.53, 0.51, 0.55), baseline, m)
    assert overlapping and "not above" in overlapping and "step 300" in overlapping
    assert "below" in no_gain(scored(300, 0.30, 0.28, 0.32), baseline, m)
    assert "no evaluation after step 0" in no_gain(baseline, baseline, m)
