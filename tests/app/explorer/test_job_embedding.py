"""A job's or a collection's explorer data is read without its neighbour index: the index is made on the first search,
once however many requests ask at the same time, and a failure to make it is the damaged file's error."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from app.explorer import embeddings as stored
from app.explorer.embeddings import CorruptProjection, JobEmbedding
from app.explorer.neighbors import NeighborIndex
from app.files import PROJECTION_FILE, collection_dir
from tests.e2e.fabricate import fabricate_collection


@pytest.fixture
def folder(tmp_path):
    cid, _ = fabricate_collection(tmp_path / "home", 500)
    return collection_dir(tmp_path / "home", cid)


def test_reading_and_the_array_uses_build_no_index(folder, builds):
    data = stored.job_embedding(folder)
    assert data.row_of(7) == 7 and len(stored.export_npy(data)) > 0
    d = data.distances_to(data.embeddings[7])
    assert builds == []
    np.testing.assert_allclose(d, np.linalg.norm(data.embeddings - data.embeddings[7], axis=1), atol=1e-4)
    assert stored.job_embedding(folder) is data  # the cached object, still without an index
    assert builds == []


def test_concurrent_searches_build_the_index_once_and_keep_it(folder, builds):
    data = stored.job_embedding(folder)
    found: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: found.append(data.neighbors(7, 5)[0])) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert builds == [500] and len(found) == 4
    assert all(np.array_equal(f, found[0]) for f in found) and 7 not in found[0]
    stored.job_embedding(folder, indexed=True).neighbors(8, 5)
    assert builds == [500]  # kept with the cached data


@pytest.mark.parametrize("space", ["cosine", "euclidean"])
def test_distances_without_the_index_are_the_indexed_vectors_distances(space):
    X = np.random.default_rng(2).normal(size=(300, 6)).astype(np.float32) * 3
    n = len(X)
    data = JobEmbedding(
        embeddings=X,
        labels=np.zeros(n, np.int64),
        indices=np.arange(n, dtype=np.int64),
        split=np.zeros(n, np.int8),
        xy=np.zeros((n, 2), np.float32),
        fitted=np.ones(n, bool),
        nn_same_label=np.ones(n, bool),
        meta={"space": space, "class_names": ["all"]},
    )
    before = data.distances_to(X[3])
    rows, dist = data.neighbors(3, 10)
    assert data.index.vectors is data.vectors  # one prepared copy, searched and scanned alike
    np.testing.assert_array_equal(data.distances_to(X[3]), before)
    np.testing.assert_allclose(before[rows], dist, atol=1e-5)  # the scan agrees with the index's search
    u = X / np.linalg.norm(X, axis=1, keepdims=True)
    expected = 1 - u @ u[3] if space == "cosine" else np.linalg.norm(X - X[3], axis=1)
    np.testing.assert_allclose(before, expected, atol=1e-5)


def test_an_index_that_cannot_be_made_is_the_files_error_and_is_tried_again(folder, monkeypatch):
    data = stored.job_embedding(folder)

    def broken(*args, **kwargs):
        raise RuntimeError("Error in faiss::IndexFlat: bad dimensions")

    monkeypatch.setattr(NeighborIndex, "build", broken)
    with pytest.raises(CorruptProjection, match=PROJECTION_FILE):
        data.neighbors(7, 5)
    with pytest.raises(CorruptProjection, match=PROJECTION_FILE):
        stored.job_embedding(folder, indexed=True)
    monkeypatch.undo()
    assert len(data.neighbors(7, 5)[0]) == 5
