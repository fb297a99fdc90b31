"""The 2-D UMAP layout of a job's embeddings: fitted by the worker, extended by the API.

Torch-free; umap (and Numba) are imported only through `load_umap`.

Choices, measured by bench/explorer.py on 10,000 x 128-d embeddings (2 cores):

- The kNN graph is exact (faiss) and handed to UMAP (`precomputed_knn`), in the job's
  space (`Distance.space`, app/distance.py). UMAP's own path is slower on both sides of its
  4,096-point switch: below it, sklearn calls a Numba distance once per pair from Python;
  above it, NN-descent runs single-threaded once a seed is set.
- Settings: n_neighbors=10, min_dist=0.05, init="pca", n_epochs=200 lay 10,000 points
  out in well under half the time of umap-learn's defaults (15 neighbours, spectral init,
  500 epochs below 10,001 points) with kNN recall@10 (2-D vs full space) and
  trustworthiness at least equal: fewer, closer neighbours keep local structure (what
  the explorer is for), and PCA init costs nothing where spectral init is a sparse eigen
  problem per connected component (one per well-separated class).
- Seeded (random_state): the same embeddings always give the same picture.
- Past FIT_MAX points, UMAP is fitted on a seeded sample and every other point is placed
  with UMAP's transform (see `place`). Measured on 50,000 points: a full fit took 64 s
  (kNN recall@10 0.232); fitting 20,000 and placing 30,000 took 37 s (0.205); fitting
  10,000 and placing 40,000 also 36 s (0.170): placing costs about half of fitting per
  point, so below ~20,000 fitted points the saving stops while preservation keeps falling.
- Nothing is pickled. What placing needs (the fitted points' embeddings, their 2-D
  coordinates and a few numbers, `LayoutState`) is stored as plain arrays and JSON, and
  `place` re-runs the steps of umap.UMAP.transform with umap's own functions on an exact
  kNN. An uploaded query thus lands where UMAP's transform would put it, and reading a
  job's files can never execute code.
- Numba compiles umap's kernels at first use (~40 s on two cores). `load_umap` keeps the
  compiled code under EMBEDLAB_HOME/cache/numba and turns on caching for the umap kernels
  that umap leaves uncached, so only the first projection on a machine pays the JIT.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from app.explorer.neighbors import Space, knn
from app.files import numba_cache_dir

FORMAT_VERSION = 1
FIT_MAX = 20_000
TRAIN_SAMPLE = 2_000  # training images embedded at the end of a job, shown beside the validation split
UMAP_SETTINGS: dict[str, Any] = {"n_neighbors": 10, "min_dist": 0.05, "init": "pca", "n_epochs": 200}
SPLITS = ("val", "train")  # the `split` array holds positions in this tuple

_umap_lock = threading.Lock()
_umap_ready = False


def load_umap(home: Path) -> ModuleType:
    """Import umap with Numba's on-disk cache under `home` (an explicit NUMBA_CACHE_DIR wins).

    The cache directory must be known before umap's modules create their dispatchers,
    hence the environment variable (and numba's config, should numba already be loaded).
    """
    global _umap_ready
    with _umap_lock:
        if _umap_ready:
            return sys.modules["umap"]
        cache = os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache_dir(home)))
        Path(cache).mkdir(parents=True, exist_ok=True)
        if "numba" in sys.modules:
            sys.modules["numba"].core.config.CACHE_DIR = cache
        import umap
        import umap.aligned_umap
        import umap.distances
        import umap.layouts
        import umap.spectral
        import umap.umap_
        import umap.utils
        from numba.core.caching import NullCache
        from numba.core.dispatcher import Dispatcher

        # umap compiles its layout, fuzzy-set and alignment kernels without cache=True: ~30 s per process.
        for module in (umap.umap_, umap.layouts, umap.utils, umap.spectral, umap.distances, umap.aligned_umap):
            for obj in vars(module).values():
                if isinstance(obj, Dispatcher) and isinstance(obj._cache, NullCache):
                    obj.enable_caching()
        _umap_ready = True
        return umap


@dataclass(frozen=True)
class LayoutState:
    """Everything UMAP's transform reads from a fitted model, besides the fitted points themselves."""

    space: Space
    n_neighbors: int
    a: float
    b: float
    local_connectivity: float
    repulsion_strength: float
    initial_alpha: float
    negative_sample_rate: float
    n_epochs: int
    transform_seed: int
    disconnection_distance: float

    @classmethod
    def of(cls, reducer: Any, space: Space) -> LayoutState:
        n_epochs = reducer.n_epochs if isinstance(reducer.n_epochs, int) else (500 if reducer.embedding_.shape[0] <= 10_000 else 200)
        return cls(
            space,
            int(reducer._n_neighbors),
            float(reducer._a),
            float(reducer._b),
            float(reducer.local_connectivity),
            float(reducer.repulsion_strength),
            float(reducer._initial_alpha),
            float(reducer.negative_sample_rate),
            int(n_epochs),
            int(reducer.transform_seed),
            float(reducer._disconnection_distance),
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["disconnection_distance"] = None if np.isinf(self.disconnection_distance) else self.disconnection_distance
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LayoutState:
        d = dict(d)
        d["disconnection_distance"] = np.inf if d.get("disconnection_distance") is None else d["disconnection_distance"]
        return cls(**d)


def fit(
    X: np.ndarray, space: Space, seed: int, home: Path, fit_max: int = FIT_MAX, settings: dict[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray, LayoutState]:
    """2-D coordinates of every row of X, the rows UMAP was fitted on (a mask), and what placing new points needs."""
    settings = {**UMAP_SETTINGS, **(settings or {})}
    n = len(X)
    fitted = np.zeros(n, dtype=bool)
    if n > fit_max:
        fitted[np.random.default_rng(seed).choice(n, fit_max, replace=False)] = True
    else:
        fitted[:] = True
    Xf = np.ascontiguousarray(X[fitted], dtype=np.float32)
    k = max(2, min(int(settings.pop("n_neighbors")), len(Xf) - 1))
    if len(Xf) < 4:  # too few points for UMAP: a line, so the page still shows them
        xy = np.stack([np.arange(n, dtype=np.float32), np.zeros(n, dtype=np.float32)], axis=1)
        state = LayoutState(space, 1, 1.0, 1.0, 1.0, 1.0, 1.0, 5.0, 3, seed, np.inf)
        return xy, np.ones(n, dtype=bool), state
    umap = load_umap(home)
    knn_rows, knn_dist = knn(Xf, Xf, k, space)
    reducer = umap.UMAP(
        n_components=2,
        metric=space,
        n_neighbors=k,
        random_state=seed,
        transform_seed=seed,
        precomputed_knn=(knn_rows.astype(np.int32), knn_dist),
        **settings,
    )
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")  # a seed makes UMAP single-threaded: wanted
        warnings.filterwarnings("ignore", message=".*precomputed_knn.*")
        xy_fit = reducer.fit_transform(Xf).astype(np.float32)
    state = LayoutState.of(reducer, space)
    xy = np.empty((n, 2), dtype=np.float32)
    xy[fitted] = xy_fit
    if not fitted.all():
        xy[~fitted] = place(state, Xf, xy_fit, X[~fitted], home)
    return xy, fitted, state


def place(state: LayoutState, fit_X: np.ndarray, fit_xy: np.ndarray, X_new: np.ndarray, home: Path) -> np.ndarray:
    """umap.UMAP.transform's steps, on an exact kNN of the fitted points: 2-D positions of new points.

    Same membership strengths, same initialisation (weighted mean of the neighbours'
    positions), same n_epochs // 3 epochs of layout optimisation with the fitted points held
    still, same transform seed.
    """
    from scipy.sparse import coo_matrix

    load_umap(home)
    from umap.layouts import optimize_layout_euclidean
    from umap.umap_ import INT32_MAX, INT32_MIN, compute_membership_strengths, make_epochs_per_sample, smooth_knn_dist

    X_new = np.atleast_2d(np.asarray(X_new, dtype=np.float32))
    fit_xy = np.ascontiguousarray(fit_xy, dtype=np.float32)
    if len(fit_X) < 4:
        return np.repeat(fit_xy.mean(axis=0, keepdims=True), len(X_new), axis=0)
    k = min(state.n_neighbors, len(fit_X))
    rows, dists = knn(fit_X, X_new, k, state.space)
    rows = rows.astype(np.int32)
    dists = np.ascontiguousarray(dists, dtype=np.float32)
    rows[dists >= state.disconnection_distance] = -1
    sigmas, rhos = smooth_knn_dist(dists, float(k), local_connectivity=float(max(0.0, state.local_connectivity - 1.0)))
    r, c, vals, _ = compute_membership_strengths(rows, dists, sigmas, rhos, bipartite=True)
    graph = coo_matrix((vals, (r, c)), shape=(len(X_new), len(fit_X)))
    embedding = _initial_positions(graph.tocsr(), fit_xy)
    n_epochs = max(1, state.n_epochs // 3)
    graph.data[graph.data < (graph.data.max() / float(n_epochs))] = 0.0
    graph.eliminate_zeros()
    rng_state = np.random.RandomState(state.transform_seed).randint(INT32_MIN, INT32_MAX, 3).astype(np.int64)
    embedding = optimize_layout_euclidean(
        embedding,
        fit_xy.copy(),
        graph.row,
        graph.col,
        n_epochs,
        graph.shape[1],
        make_epochs_per_sample(graph.data, n_epochs),
        state.a,
        state.b,
        rng_state,
        state.repulsion_strength,
        state.initial_alpha / 4.0,
        state.negative_sample_rate,
        False,
    )
    return np.nan_to_num(np.asarray(embedding, dtype=np.float32), nan=float(np.nanmean(fit_xy)))


def _initial_positions(graph: Any, fit_xy: np.ndarray) -> np.ndarray:
    """umap.umap_.init_graph_transform without its Python loop over rows (60% of `place` at 30,000 points).

    Each new point starts at the membership-weighted mean of its neighbours' positions, or
    exactly on a neighbour whose membership is 1 (an identical point); NaN without neighbours.
    """
    graph.eliminate_zeros()
    sums = np.asarray(graph.sum(axis=1)).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(graph @ fit_xy.astype(np.float64)) / sums[:, None]
    row_of_entry = np.repeat(np.arange(graph.shape[0]), np.diff(graph.indptr))
    exact = np.flatnonzero(graph.data == 1)
    rows, first = np.unique(row_of_entry[exact], return_index=True)
    out[rows] = fit_xy[graph.indices[exact[first]]]
    out[sums == 0] = np.nan
    return out.astype(np.float32)


def knn_recall(X: np.ndarray, xy: np.ndarray, space: Space, k: int = 10, sample: int = 5000, seed: int = 0) -> float:
    """Neighbour preservation: mean fraction of each point's k nearest neighbours in the full
    space that are also among its k nearest in 2-D (a seeded sample of query points, all points as references)."""
    n = len(X)
    if n <= k + 1:
        return 1.0
    queries = np.random.default_rng(seed).choice(n, min(sample, n), replace=False)
    full, _ = knn(X, X[queries], k + 1, space)
    flat, _ = knn(xy, xy[queries], k + 1, "euclidean")
    hits = [len(np.intersect1d(f[f != q][:k], p[p != q][:k])) / k for f, p, q in zip(full, flat, queries)]
    return float(np.mean(hits))


def trustworthiness(X: np.ndarray, xy: np.ndarray, space: Space, k: int = 10, sample: int = 2000, seed: int = 0) -> float:
    """sklearn's trustworthiness on a seeded sample (it is quadratic in memory and time)."""
    from sklearn.manifold import trustworthiness as sk_trustworthiness

    n = len(X)
    if n <= 2 * k + 1:
        return 1.0
    rows = np.random.default_rng(seed).choice(n, min(sample, n), replace=False)
    return float(sk_trustworthiness(X[rows], xy[rows], n_neighbors=k, metric=space))
