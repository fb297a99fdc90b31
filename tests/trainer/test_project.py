"""The explorer's 2-D layout: seeded, in the loss's space, fitted on a sample past a size."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from app.distance import Distance, job_distance
from app.explorer import layout
from app.explorer.neighbors import NeighborIndex, knn
from app.spec import JobSpec
from trainer.project import sample_rows

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "embedlab-tests" / "numba"))


def blobs(n: int = 300, d: int = 16, classes: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d)) * 4
    return (centres[rng.integers(0, classes, n)] + rng.normal(size=(n, d))).astype(np.float32)


def test_projection_is_reproducible_with_a_seed(tmp_path):
    X = blobs()
    fast = {"n_epochs": 30}
    a, fa, sa = layout.fit(X, "cosine", seed=3, home=tmp_path, settings=fast)
    b, fb, sb = layout.fit(X, "cosine", seed=3, home=tmp_path, settings=fast)
    np.testing.assert_array_equal(a, b)
    assert fa.all() and sa == sb and a.shape == (len(X), 2) and np.isfinite(a).all()


def test_fit_on_a_sample_places_the_rest(tmp_path):
    X = blobs(400)
    xy, fitted, state = layout.fit(X, "euclidean", seed=0, home=tmp_path, fit_max=200, settings={"n_epochs": 30})
    assert fitted.sum() == 200 and np.isfinite(xy).all()
    # an added point lands near its own copy
    placed = layout.place(state, X[fitted], xy[fitted], X[fitted][:1], tmp_path)
    spread = np.ptp(xy, axis=0).max()
    assert np.linalg.norm(placed[0] - xy[fitted][0]) < 0.2 * spread
    assert 0.0 <= layout.knn_recall(X, xy, "euclidean") <= 1.0


def test_exact_index_equals_brute_force():
    X = blobs(500, 32)
    index = NeighborIndex.build(X, "cosine")
    rows, dist = index.neighbors_of_row(7, 10)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    d = 1 - Xn @ Xn[7]
    d[7] = np.inf
    np.testing.assert_allclose(dist, np.sort(d)[:10], atol=1e-5)
    assert 7 not in rows.tolist()
    r2, _ = knn(X, X[:3], 1, "euclidean")
    assert r2[:, 0].tolist() == [0, 1, 2]


def test_hnsw_past_the_exact_limit_keeps_recall():
    X = blobs(3000, 32, classes=20)
    index = NeighborIndex.build(X, "cosine", exact_max=1000)
    assert not index.exact and index.recall_at_10 is not None and index.recall_at_10 >= 0.99


def test_space_follows_the_loss_and_sample_is_seeded():
    assert job_distance(JobSpec(dataset="digits")).space == "cosine"
    assert sample_rows(10, 20, 0).tolist() == list(range(10))
    assert sample_rows(1000, 20, 1).tolist() == sample_rows(1000, 20, 1).tolist()


def test_place_matches_umaps_own_transform(tmp_path):
    """`place` re-runs UMAP.transform's steps from stored arrays (no pickle): same placements, up to float noise."""
    import scipy.sparse as sp

    umap = layout.load_umap(tmp_path)
    from umap.umap_ import init_graph_transform

    graph = sp.random(60, 40, density=0.1, random_state=0, format="csr")
    graph.data[::7] = 1.0  # identical points snap onto their neighbour
    fit_xy = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    np.testing.assert_allclose(
        np.nan_to_num(layout._initial_positions(graph.copy(), fit_xy), nan=9),
        np.nan_to_num(init_graph_transform(graph.copy(), fit_xy), nan=9),
        atol=1e-5,
    )

    X = blobs(260, 16)
    reducer = umap.UMAP(metric="cosine", n_neighbors=10, init="pca", n_epochs=60, random_state=0).fit(X[:200])
    theirs = reducer.transform(X[200:])
    ours = layout.place(layout.LayoutState.of(reducer, "cosine"), X[:200], reducer.embedding_, X[200:], tmp_path)
    span = np.ptp(reducer.embedding_, axis=0).max()
    # The layout SGD amplifies 1e-7 differences in distances, so compare positions loosely and neighbourhoods tightly.
    assert np.median(np.linalg.norm(ours - theirs, axis=1)) < 0.02 * span
    nearest = lambda P: np.argmin(((P[:, None, :] - reducer.embedding_[None]) ** 2).sum(-1), axis=1)  # noqa: E731
    rng = np.random.default_rng(0)  # the blobs' classes, drawn as `blobs` draws them
    rng.normal(size=(5, 16))
    classes = rng.integers(0, 5, 260)
    assert np.mean(classes[:200][nearest(ours)] == classes[:200][nearest(theirs)]) >= 0.95


def test_per_class_table_matches_the_library_defaults():
    """The explorer's per-class P@1 / R-Precision / MAP@R equal AccuracyCalculator's own per-class values (default k, cosine kNN)."""
    import torch
    from pytorch_metric_learning.distances import CosineSimilarity
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    from trainer.evaluate import RETRIEVAL
    from trainer.project import per_class_metrics

    rng = np.random.default_rng(1)
    labels = np.concatenate([rng.integers(0, 4, 400), [9]])  # one class with a single image: nothing to retrieve
    X = blobs(len(labels), classes=4)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    rows = per_class_metrics(X, labels, Distance("cosine_similarity", normalized=True))
    reference = AccuracyCalculator(include=RETRIEVAL, return_per_class=True, knn_func=CustomKNN(CosineSimilarity())).get_accuracy(
        torch.from_numpy(X), torch.from_numpy(labels)
    )
    assert [r["label"] for r in rows] == [0, 1, 2, 3, 9] and rows[-1]["precision_at_1"] is None
    for name in RETRIEVAL:
        assert np.allclose([r[name] for r in rows[:-1]], reference[name], atol=1e-6), name
