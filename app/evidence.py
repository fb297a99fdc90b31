"""Uncertainty of retrieval metrics: seeded percentile bootstraps over query images, and the no-gain rule.

Torch-free: the worker computes a job's intervals with it, the API's advisor compares jobs with it.
A retrieval metric is the mean of per-query values (P@1, R-Precision, AP@R of each validation image),
so resampling the queries with replacement gives its sampling noise over the images (not over the
training seed: that is what several seeds in a sweep are for).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95


@lru_cache(maxsize=1)
def _resample_rows(n: int, seed: int, resamples: int) -> np.ndarray:
    """(resamples, n) query rows drawn with replacement; kept, since every evaluation of a job resamples the same n queries."""
    rows = np.random.default_rng(seed).integers(0, n, size=(resamples, n), dtype=np.int32)
    rows.flags.writeable = False
    return rows


def _resampled_means(values: np.ndarray, seed: int, resamples: int) -> np.ndarray:
    """(resamples, M) means of `values` (N, M) over resampled queries, one draw of rows for all M columns.

    float32 gathers and sums: half the memory traffic of float64, and an error (~1e-7) far below the interval's width.
    """
    n = len(values)
    rows = _resample_rows(n, seed, resamples)
    columns = np.ascontiguousarray(values.T, dtype=np.float32)
    return np.stack([np.take(col, rows).sum(axis=1, dtype=np.float64) / n for col in columns], axis=1)


def bootstrap_interval(values: np.ndarray, seed: int, resamples: int = RESAMPLES, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean of each column of `values` ((N,) or (N, M)); NaNs must be removed first.

    The same values and seed always give the same interval.
    """
    values = np.asarray(values, dtype=np.float64)
    flat = values.ndim == 1
    values = values[:, None] if flat else values
    if len(values) == 0:
        nan = np.full(values.shape[1], np.nan)
        return (nan[0], nan[0]) if flat else (nan, nan)
    tail = (1 - level) / 2
    low, high = np.quantile(_resampled_means(values, seed, resamples), [tail, 1 - tail], axis=0)
    return (low[0], high[0]) if flat else (low, high)


def paired_difference(
    a: np.ndarray, b: np.ndarray, seed: int, resamples: int = RESAMPLES, level: float = LEVEL
) -> tuple[float, float, float]:
    """Mean of a - b over the same queries, with its percentile bootstrap interval (resampling query pairs).

    The interval excluding 0 is the paired test: a and b differ beyond the noise of the query sample.
    """
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    low, high = bootstrap_interval(diff, seed, resamples, level)
    return float(diff.mean()), float(low), float(high)


def no_gain(best: dict, baseline: dict, metric: str) -> str | None:
    """A warning when the best evaluation is not above the untrained network beyond the noise, else None.

    Rule: the best's 95% interval low must lie above the baseline's 95% interval high (non-overlapping
    intervals); otherwise the gain, if any, is within the noise of the validation queries.
    `best` and `baseline` are {"step": int, "metrics": {metric, metric_low, metric_high}}.
    """
    b, u = best["metrics"], baseline["metrics"]
    if b.get(f"{metric}_low") is None or u.get(f"{metric}_high") is None:
        return None
    if b[f"{metric}_low"] > u[f"{metric}_high"]:
        return None
    untrained = (
        f"the untrained network's validation {metric} ({u[metric]:.4f}, 95% CI {u[f'{metric}_low']:.4f}-{u[f'{metric}_high']:.4f}, step 0)"
    )
    if best["step"] == baseline["step"]:
        finding = f"no evaluation after step 0 beat {untrained}"
    else:
        verdict = "below" if b[metric] < u[metric] else "not above"
        finding = (
            f"the best validation {metric} ({b[metric]:.4f}, 95% CI {b[f'{metric}_low']:.4f}-{b[f'{metric}_high']:.4f}, "
            f"step {best['step']}) is {verdict} {untrained} beyond the noise"
        )
    return (
        f"No gain from training: {finding} (rule: the best's 95% interval must lie entirely above the untrained one's). "
        "Try a lower learning rate, another margin or more steps."
    )
