"""A collection's HNSW graph is kept beside its points and read back instead of built again; a stale or damaged one is not used."""

from __future__ import annotations

import faiss
import numpy as np

from app.explorer.neighbors import INDEX_FILE, INDEX_INFO_FILE, NeighborIndex, flat_index


def test_a_saved_hnsw_index_answers_as_the_built_one(tmp_path):
    X = np.random.default_rng(0).normal(size=(3000, 16)).astype(np.float32)
    built = NeighborIndex.build(X, "cosine", exact_max=1000)  # HNSW past 1,000 points here
    built.save(tmp_path)
    back = NeighborIndex.saved(tmp_path, X, "cosine")
    assert back is not None and not back.exact and back.recall_at_10 == built.recall_at_10
    assert back.index.hnsw.efSearch == built.index.hnsw.efSearch
    np.testing.assert_array_equal(back.search(X[:50], 10)[0], built.search(X[:50], 10)[0])
    assert NeighborIndex.saved(tmp_path, X[:2999], "cosine") is None  # other points
    assert NeighborIndex.saved(tmp_path, X, "euclidean") is None  # another space
    (tmp_path / INDEX_FILE).write_bytes(b"truncated")
    assert NeighborIndex.saved(tmp_path, X, "cosine") is None
    faiss.write_index(flat_index(X, "cosine"), str(tmp_path / INDEX_FILE))  # a readable index of another kind
    assert NeighborIndex.saved(tmp_path, X, "cosine") is None
    built.save(tmp_path)
    (tmp_path / INDEX_INFO_FILE).write_text('{"n": 3000, "dims": 16, "space": "cosine"}')  # its search settings lost
    assert NeighborIndex.saved(tmp_path, X, "cosine") is None


def test_exact_indexes_are_not_kept(tmp_path):
    NeighborIndex.build(np.eye(4, dtype=np.float32), "euclidean").save(tmp_path)
    assert list(tmp_path.iterdir()) == []
