"""Nearest neighbours in the full embedding space (faiss), for the explorer and the projection.

Torch-free: the API builds these indexes. Two spaces (`Distance.space` of the job's
distance, app/distance.py), named as UMAP names them: `cosine` (distance 1 - cos, in
[0, 2]; wherever the loss measures on normalised embeddings, which ranks alike to L2 on
the unit sphere) and `euclidean` (L2 on raw embeddings). Up to EXACT_MAX points the search
is exact (a flat scan, equal to brute force); past it a brute-force scan of every query
costs too much (a flat scan of 1,000,000 x 128 takes ~100 ms per query on two cores, see
bench/explorer.py), so an HNSW graph answers instead, with its recall@10 against the
exact answer measured when it is built.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from app.distance import Space

# 200,000 x 128-d is a ~20 ms flat scan per query here: the most that stays inside the
# explorer's 50 ms budget with room for the HTTP round trip.
EXACT_MAX = 200_000
# HNSW: 32 links per node; efSearch is raised until recall@10 >= 0.99 on a sample (see `tune_hnsw`).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = (64, 128, 256, 512)
TARGET_RECALL = 0.99
INDEX_FILE = "neighbors.faiss"  # a collection's HNSW graph, kept beside its projection.npz (NeighborIndex.save)
INDEX_INFO_FILE = "neighbors.json"


def prepare(vectors: np.ndarray, space: Space) -> np.ndarray:
    """float32, C-contiguous, unit length in the cosine space (so inner product = cos)."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if space == "cosine":
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        v = v / np.maximum(norms, 1e-12)
    return np.ascontiguousarray(v, dtype=np.float32)


def _to_distance(raw: np.ndarray, space: Space) -> np.ndarray:
    """faiss scores -> distances: 1 - cos for inner products, sqrt for squared L2."""
    if space == "cosine":
        return np.clip(1.0 - raw, 0.0, 2.0).astype(np.float32)
    return np.sqrt(np.maximum(raw, 0.0)).astype(np.float32)


def flat_index(vectors: np.ndarray, space: Space) -> faiss.Index:
    index = faiss.IndexFlatIP(vectors.shape[1]) if space == "cosine" else faiss.IndexFlatL2(vectors.shape[1])
    index.add(vectors)
    return index


def hnsw_index(vectors: np.ndarray, space: Space, m: int = HNSW_M, ef_construction: int = HNSW_EF_CONSTRUCTION) -> faiss.Index:
    metric = faiss.METRIC_INNER_PRODUCT if space == "cosine" else faiss.METRIC_L2
    index = faiss.IndexHNSWFlat(vectors.shape[1], m, metric)
    index.hnsw.efConstruction = ef_construction
    index.add(vectors)
    return index


def search_raw(index: faiss.Index, queries: np.ndarray, k: int, space: Space) -> tuple[np.ndarray, np.ndarray]:
    """Rows (int64, -1 where fewer than k exist) and distances, nearest first."""
    raw, rows = index.search(queries, min(k, index.ntotal))
    return rows.astype(np.int64), _to_distance(raw, space)


def knn(base: np.ndarray, queries: np.ndarray, k: int, space: Space) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows of `base` for each query (a throwaway flat index)."""
    b = prepare(base, space)
    return search_raw(flat_index(b, space), prepare(queries, space), k, space)


def first_other(nn: np.ndarray, start: int = 0) -> np.ndarray:
    """Each query's nearest row other than itself, from its two nearest (queries are rows start, start+1, ...).

    The point itself is usually first; with exact duplicates it may come second.
    """
    own = np.arange(start, start + len(nn))
    return np.where(nn[:, 0] == own, nn[:, 1], nn[:, 0])


def recall_at(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of each exact neighbour list found in the approximate one."""
    k = exact.shape[1]
    return float(np.mean([len(np.intersect1d(a, e)) / k for a, e in zip(approx, exact)]))


def tune_hnsw(
    index: faiss.Index, flat: faiss.Index, vectors: np.ndarray, space: Space, k: int = 10, sample: int = 1000, seed: int = 0
) -> tuple[int, float]:
    """Smallest efSearch whose recall@k vs the exact answer reaches TARGET_RECALL on a sample of the points."""
    rng = np.random.default_rng(seed)
    queries = vectors[rng.choice(len(vectors), min(sample, len(vectors)), replace=False)]
    exact, _ = search_raw(flat, queries, k, space)
    recall = 0.0
    for ef in HNSW_EF_SEARCH:
        index.hnsw.efSearch = ef
        recall = recall_at(search_raw(index, queries, k, space)[0], exact)
        if recall >= TARGET_RECALL:
            return ef, recall
    return HNSW_EF_SEARCH[-1], recall


@dataclass
class NeighborIndex:
    """Exact (flat) up to EXACT_MAX points, HNSW past it. Safe to search from several threads."""

    vectors: np.ndarray  # prepared (see `prepare`)
    space: Space
    index: faiss.Index = field(repr=False)
    exact: bool
    recall_at_10: float | None = None  # of the HNSW index vs exact; None when exact

    @classmethod
    def build(cls, vectors: np.ndarray, space: Space, exact_max: int = EXACT_MAX, *, prepared: bool = False) -> NeighborIndex:
        """An index over `vectors` (kept as given when `prepared`: already what `prepare` returns, not copied again)."""
        v = vectors if prepared else prepare(vectors, space)
        if len(v) <= exact_max:
            return cls(v, space, flat_index(v, space), exact=True)
        index = hnsw_index(v, space)
        _, recall = tune_hnsw(index, flat_index(v, space), v, space)
        return cls(v, space, index, exact=False, recall_at_10=recall)

    def save(self, folder: Path) -> None:
        """An HNSW index's graph beside the points (built in minutes past a million, read in seconds); exact ones are not kept."""
        if self.exact:
            return
        faiss.write_index(self.index, str(folder / INDEX_FILE))
        info = {"n": len(self), "dims": self.vectors.shape[1], "space": self.space, "recall_at_10": self.recall_at_10}
        (folder / INDEX_INFO_FILE).write_text(json.dumps({**info, "ef_search": int(self.index.hnsw.efSearch)}))

    @classmethod
    def saved(cls, folder: Path, vectors: np.ndarray, space: Space, *, prepared: bool = False) -> NeighborIndex | None:
        """The index `save` kept in `folder` for these vectors (same count, dimensions and space), else None (`prepared`: see build)."""
        try:
            info = json.loads((folder / INDEX_INFO_FILE).read_text())
            if (info["n"], info["dims"], info["space"]) != (len(vectors), vectors.shape[1], space):
                return None
            ef_search, recall = int(info["ef_search"]), info["recall_at_10"]
            index = faiss.read_index(str(folder / INDEX_FILE))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            return None  # missing or damaged: built again
        if not isinstance(index, faiss.IndexHNSW) or (index.ntotal, index.d) != (len(vectors), vectors.shape[1]):
            return None  # another kind of index, or over other points: built again
        index.hnsw.efSearch = ef_search
        return cls(vectors if prepared else prepare(vectors, space), space, index, exact=False, recall_at_10=recall)

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return search_raw(self.index, prepare(np.atleast_2d(queries), self.space), k, self.space)

    def neighbors_of_row(self, row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest other points of a stored point: the point itself is left out by row, not by distance."""
        rows, dist = self.search(self.vectors[row : row + 1], k + 1)
        keep = (rows[0] != row) & (rows[0] >= 0)
        return rows[0][keep][:k], dist[0][keep][:k]
