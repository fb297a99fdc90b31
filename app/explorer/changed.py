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


NULL_DRAWS = 10_000  # random selections the noise band is read from


def selection_change(change: np.ndarray, inside: np.ndarray) -> dict:
    """Did the items of a selection (`inside`, a mask over the shared items) change more than the others?

    Rule (a permutation test): `noise` is the 95th percentile of |mean change of m items drawn at random from the N
    shared ones - that of the rest|, drawn exactly: a change takes at most k + 1 values, so a random selection is a
    multivariate hypergeometric draw of how many items of each value it holds (10,000 seeded draws). Beyond the band is
    evidence; inside it, noise. A rare change stays noise (0 or 1 of 5 changed items among 30,000 of 300,000 selected is
    what chance gives), and the band needs no normal approximation.
    """
    n, m = len(change), int(inside.sum())
    change = change.astype(np.float64)
    sel, rest = change[inside], change[~inside]
    out = {
        "selection": {"items": m, "mean_change": float(sel.mean())},
        "rest": {"items": n - m, "mean_change": float(rest.mean())} if n > m else None,
        "difference": None,
        "noise": None,
    }
    if n == m:
        out["verdict"] = "the selection is every shared item: nothing to compare it with"
        return out
    values, counts = np.unique(change, return_counts=True)
    held = np.random.default_rng(0).multivariate_hypergeometric(counts, m, size=NULL_DRAWS)  # (draws, values)
    picked = held @ values
    null = picked / m - (values @ counts - picked) / (n - m)
    diff = float(sel.mean() - rest.mean())
    noise = float(np.quantile(np.abs(null), 0.95))
    out.update(difference=diff, noise=noise)
    if diff > noise:
        out["verdict"] = "changed more than the other shared items"
    elif diff < -noise:
        out["verdict"] = "changed less than the other shared items"
    else:
        out["verdict"] = "within noise of the other shared items"
    return out
