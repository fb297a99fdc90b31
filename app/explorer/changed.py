"""Which items' neighbourhoods differ most between two embeddings of the same items (two jobs, a job and a collection).

The items are the points both share by index (a job's dataset index, a collection's id). In each embedding the
k nearest other shared points of every shared point are searched (its own space, app.explorer.neighbors: exact,
HNSW past 200,000 points); an item's change is 1 - Jaccard of its two k-nearest sets: 0 when both embeddings give
it the same neighbours, 1 when none are common. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.explorer.embeddings import JobEmbedding
from app.explorer.neighbors import NeighborIndex

MAX_K = 100
SEARCH_BATCH = 16_384


class TooFewShared(ValueError):
    """The two embeddings share fewer items than a neighbourhood needs."""


@dataclass
class Changes:
    indices: np.ndarray  # int64 (S,): the shared items' indices
    rows_a: np.ndarray  # int64 (S,): their rows in a
    rows_b: np.ndarray  # int64 (S,): their rows in b
    change: np.ndarray  # float32 (S,): 1 - Jaccard of the two k-nearest sets


def shared_rows(a: JobEmbedding, b: JobEmbedding) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The indices both hold, and their rows in each."""
    common, rows_a, rows_b = np.intersect1d(a.indices, b.indices, assume_unique=True, return_indices=True)
    return common.astype(np.int64), rows_a.astype(np.int64), rows_b.astype(np.int64)


def knn_sets(X: np.ndarray, space: str, k: int) -> np.ndarray:
    """(S, k) the k nearest other rows of each row of X, in its space (the row itself left out by position)."""
    index = NeighborIndex.build(X, space)  # type: ignore[arg-type]
    out = np.empty((len(X), k), dtype=np.int64)
    for start in range(0, len(X), SEARCH_BATCH):
        found, _ = index.search(index.vectors[start : start + SEARCH_BATCH], k + 1)
        drop = found == np.arange(start, start + len(found))[:, None]
        drop[~drop.any(axis=1), -1] = True  # the row itself missing (exact duplicates ahead of it): the farthest goes
        out[start : start + len(found)] = found[~drop].reshape(len(found), k)
    return out


def jaccard_change(na: np.ndarray, nb: np.ndarray) -> np.ndarray:
    """1 - |A ∩ B| / |A ∪ B| of each row's two neighbour sets (both of size k)."""
    k = na.shape[1]
    common = (na[:, :, None] == nb[:, None, :]).any(axis=2).sum(axis=1)
    return (1.0 - common / (2 * k - common)).astype(np.float32)


def changes(a: JobEmbedding, b: JobEmbedding, k: int) -> Changes:
    indices, rows_a, rows_b = shared_rows(a, b)
    if len(indices) < k + 2:
        raise TooFewShared(f"the two embeddings share {len(indices)} items; k = {k} needs at least {k + 2}")
    na = knn_sets(a.embeddings[rows_a], a.meta["space"], k)
    nb = knn_sets(b.embeddings[rows_b], b.meta["space"], k)
    nb[nb < 0] = -2  # a slot an approximate search left empty (-1) is no neighbour in common
    return Changes(indices, rows_a, rows_b, jaccard_change(na, nb))


Z95 = 1.959964  # the normal quantile of a two-sided 95% interval


def _mean_interval(values: np.ndarray) -> dict:
    """Mean and its 95% interval (mean +- 1.96 standard errors, within [0, 1]; none under two values)."""
    n, mean = len(values), float(values.mean())
    if n < 2:
        return {"items": n, "mean_change": mean, "low": None, "high": None}
    half = Z95 * float(values.std(ddof=1)) / np.sqrt(n)
    return {"items": n, "mean_change": mean, "low": max(0.0, mean - half), "high": min(1.0, mean + half)}  # a change is in [0, 1]


def selection_change(change: np.ndarray, inside: np.ndarray) -> dict:
    """Did the items of a selection (`inside`, a mask over the shared items) change more than the others?

    Rule: the difference of the two means with its 95% interval (Welch's standard error, items taken as independent:
    neighbouring items share neighbours, so the true noise is somewhat larger); "within noise" when the interval holds 0.
    """
    sel, rest = change[inside].astype(np.float64), change[~inside].astype(np.float64)
    out = {"selection": _mean_interval(sel), "rest": _mean_interval(rest) if len(rest) else None}
    out.update(difference=None, low=None, high=None)
    if len(rest) == 0:
        out["verdict"] = "the selection is every shared item: nothing to compare it with"
    elif len(sel) < 2 or len(rest) < 2:
        out["verdict"] = "too few items for an interval"
    else:
        diff = float(sel.mean() - rest.mean())
        half = Z95 * float(np.sqrt(sel.var(ddof=1) / len(sel) + rest.var(ddof=1) / len(rest)))
        out.update(difference=diff, low=diff - half, high=diff + half)
        if diff - half > 0:
            out["verdict"] = "changed more than the other shared items"
        elif diff + half < 0:
            out["verdict"] = "changed less than the other shared items"
        else:
            out["verdict"] = "within noise of the other shared items"
    return out
