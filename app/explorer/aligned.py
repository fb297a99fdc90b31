"""Aligned 2-D layouts of a sweep's jobs, for small multiples where an image sits in about the same place in every panel.

Every succeeded job wrote its validation embeddings with their dataset indices
(embeddings.npz, trainer/artifacts.py). The split never depends on the training seed, so
the jobs of a sweep share it: rows are lined up by dataset index, keeping the indices common
to all jobs (a grid over the split settings may leave fewer), and umap's AlignedUMAP lays
all jobs out at once, row i being the same image in every job (identity relations between
consecutive jobs).

Choices, measured on a mnist5k margin sweep (4 jobs of 2,500 validation images, 2 cores
shared with other work; CPU seconds: AlignedUMAP's loops are serial, and a seed makes UMAP
single-threaded):

- Each job's distances are computed once with BLAS, in its own distance's space
  (app/distance.py), and handed over as
  metric="precomputed". With metric="cosine", UMAP's small-data path (< 4,096 points)
  calls a Numba distance once per pair through sklearn: 88 s of a 97 s fit.
- init="random" for the per-job UMAP fits AlignedUMAP makes first: their own layouts are
  thrown away (AlignedUMAP starts from its spectral layouts), and their spectral init alone
  cost 23 s of 74 s.
- n_epochs=100 instead of AlignedUMAP's 200: kNN recall@10 (2-D vs full space) 0.394
  against 0.410 and trustworthiness@10 0.973 against 0.975 at 2,000 points, for 40% less
  time; 50 epochs lost more (0.373).
- alignment_regularisation=0.03 instead of 0.01: an image's positions in consecutive
  panels 0.14 instead of 0.18 of the median distance between two random images, for the
  same recall (0.392 at 2,000 points); 0.1 began to cost recall.
- NUMBA_NUM_THREADS=1 in the child: AlignedUMAP compares neighbourhoods with a parallel
  Numba kernel called tens of thousands of times, and on a busy host thread hand-offs made that 30-48 s
  instead of under 2 s; nothing else in the fit runs in parallel.
- At most MAX_POINTS images per job and TOTAL_POINTS over the sweep, a seeded sample of the
  common indices: 2,000 points still show every class's shape, and the cost is ~5 s to load
  umap, ~10 s to compile the layout epoch (umap compiles it anew at every call) and ~0.2 s
  per epoch per 8,000 points, so a fit stays under a minute (38-48 s at 4 x 2,000) however
  many jobs, and the page draws at most ~10,000 SVG points.
- The fit runs in a child process: in a thread of the server, each epoch held the GIL for
  up to 0.23 s, stalling every other request for the length of a fit.

Two embeddings of the same items (the neighbourhood comparison: two jobs, a job and a collection) each
have their own stored layout already, of every point; there B's layout is turned onto A's by Procrustes
(`procrustes`: rotation or mirror, uniform scale, shift, fitted on all shared items, a 2x2 SVD even at
1,000,000 points) instead of a new AlignedUMAP fit, so the panels show the very layouts each explorer shows.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.config import Settings
from app.datasets import DatasetError, load_catalog
from app.distance import Space, job_distance
from app.files import EMBEDDINGS_FILE, LAYOUTS_FILE, save_json
from app.spec import JobSpec
from app.store.rows import JobRow

FORMAT_VERSION = 1
MAX_POINTS = 2_000
TOTAL_POINTS = 8_000
MIN_POINTS = 50  # per job, however many jobs: fewer would show nothing
SEED = 0
ALIGNED_UMAP_SETTINGS: dict[str, Any] = {
    "n_neighbors": 10,
    "min_dist": 0.05,
    "n_epochs": 100,
    "init": "random",
    "alignment_regularisation": 0.03,
}
FIT_TIMEOUT_S = 900
NOT_COMPARABLE_EXIT = 3  # the child's exit status when the jobs share too few images


class NotComparable(Exception):
    """The sweep's jobs cannot be laid out side by side (fewer than two with embeddings, or different datasets)."""


class LayoutFailed(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SweepJob:
    id: int
    dir: Path
    space: Space


@dataclass(frozen=True)
class Comparison:
    jobs: list[SweepJob]  # the succeeded jobs with stored embeddings, by id
    skipped: list[int]  # succeeded jobs without (an older or interrupted run)
    dataset: dict[str, Any]  # `dataset` and `dataset_path`, the same for every job


def comparison(rows: list[JobRow], settings: Settings) -> Comparison:
    """What can be laid out side by side among a sweep's job rows; NotComparable when not two of them."""
    succeeded = sorted((r for r in rows if r.status == "succeeded"), key=lambda r: r.id)
    usable = [r for r in succeeded if (settings.job_dir(r.id) / EMBEDDINGS_FILE).is_file()]
    skipped = [r.id for r in succeeded if r not in usable]
    if len(usable) < 2:
        raise NotComparable(
            f"comparing embeddings needs at least 2 succeeded jobs with stored embeddings; this sweep has "
            f"{len(usable)} of {len(rows)} jobs" + (f" ({len(skipped)} succeeded without embeddings)" if skipped else "")
        )
    datasets = {(r.spec["dataset"], r.spec.get("dataset_path")) for r in usable}
    if len(datasets) > 1:
        raise NotComparable("the jobs of this sweep train on different datasets: the same index is not the same image")
    jobs = [SweepJob(r.id, settings.job_dir(r.id), job_distance(JobSpec.model_validate(r.spec)).space) for r in usable]
    ((name, path),) = datasets
    return Comparison(jobs, skipped, {"dataset": name, "dataset_path": path})


# -- the fit (in a child process) ----------------------------------------------


def points_per_job(n_jobs: int) -> int:
    return max(MIN_POINTS, min(MAX_POINTS, TOTAL_POINTS // n_jobs))


def common_sample(indices: list[np.ndarray], size: int, seed: int = SEED) -> tuple[np.ndarray, int]:
    """A seeded, sorted sample of the dataset indices every job has (all of them when few enough), and their count."""
    common = indices[0]
    for idx in indices[1:]:
        common = np.intersect1d(common, idx)
    if len(common) > size:
        return np.sort(np.random.default_rng(seed).choice(common, size, replace=False)), len(common)
    return common, len(common)


def rows_of(indices: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row numbers of `wanted` dataset indices (all present) in a job's `indices`."""
    order = np.argsort(indices, kind="stable")
    return order[np.searchsorted(indices, wanted, sorter=order)]


def distance_matrix(X: np.ndarray, space: str) -> np.ndarray:
    from sklearn.metrics import pairwise_distances

    d = pairwise_distances(X, metric=space).astype(np.float32)
    np.maximum(d, 0, out=d)  # rounding leaves tiny negatives on cosine's diagonal
    np.fill_diagonal(d, 0)
    return d


def aligned_layouts(distances: list[np.ndarray], home: Path) -> list[np.ndarray]:
    """AlignedUMAP over the jobs in order, row i the same image in each; one (n, 2) float32 layout per job."""
    from app.explorer.layout import load_umap

    umap = load_umap(home)
    n = len(distances[0])
    identity = {i: i for i in range(n)}
    reducer = umap.AlignedUMAP(metric="precomputed", random_state=SEED, transform_seed=SEED, **ALIGNED_UMAP_SETTINGS)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")  # a seed makes UMAP single-threaded: wanted
        warnings.filterwarnings("ignore", message=".*precomputed metric.*")  # no inverse_transform: not used
        layouts = reducer.fit_transform(distances, relations=[identity] * (len(distances) - 1))
    # A point UMAP leaves unconnected comes back NaN: put it at the centre (JSON has no NaN).
    return [np.nan_to_num(np.asarray(xy, dtype=np.float32), nan=float(np.nanmean(xy))) for xy in layouts]


def class_names(dataset: dict[str, Any], roots: list[Path], labels: np.ndarray) -> list[str]:
    try:
        return load_catalog(dataset["dataset"], dataset["dataset_path"], roots).class_names
    except (DatasetError, OSError):  # the folder moved since training: the labels still tell classes apart
        return [str(c) for c in range(int(labels.max()) + 1)]


def fit_and_write(jobs: list[SweepJob], dataset: dict[str, Any], out: Path, settings: Settings) -> dict[str, Any]:
    """Read the jobs' validation embeddings, lay them out aligned, write `out` atomically; returns what was written."""
    started = time.perf_counter()
    stored = []
    for job in jobs:
        with np.load(job.dir / EMBEDDINGS_FILE, allow_pickle=False) as z:
            stored.append({k: z[k] for k in ("embeddings", "labels", "indices")})
    keep, n_common = common_sample([s["indices"] for s in stored], points_per_job(len(jobs)))
    if len(keep) < ALIGNED_UMAP_SETTINGS["n_neighbors"] + 2:
        raise NotComparable(f"the jobs share only {len(keep)} validation images: too few to lay out (their split settings differ)")
    rows = [rows_of(s["indices"], keep) for s in stored]
    labels = stored[0]["labels"][rows[0]]
    distances = [distance_matrix(s["embeddings"][r], job.space) for s, r, job in zip(stored, rows, jobs)]
    layouts = aligned_layouts(distances, settings.home_path)
    payload = {
        "version": FORMAT_VERSION,
        "job_ids": [job.id for job in jobs],
        "points": {"index": keep.tolist(), "label": labels.tolist()},
        "class_names": class_names(dataset, settings.data_root_paths, stored[0]["labels"]),
        "layouts": {
            str(job.id): {"x": np.round(xy[:, 0].astype(float), 4).tolist(), "y": np.round(xy[:, 1].astype(float), 4).tolist()}
            for job, xy in zip(jobs, layouts)
        },
        "common_points": n_common,
        "umap": {**ALIGNED_UMAP_SETTINGS, "metric": "precomputed", "spaces": sorted({job.space for job in jobs}), "seed": SEED},
        "seconds": round(time.perf_counter() - started, 2),
    }
    save_json(out, payload)
    return payload


def main(argv: list[str]) -> int:
    """`python -m app.explorer.aligned '<json>'`: the child process's entry point."""
    args = json.loads(argv[0])
    jobs = [SweepJob(i, Path(d), s) for i, d, s in args["jobs"]]
    try:
        fit_and_write(jobs, args["dataset"], Path(args["out"]), Settings(home=Path(args["home"]), data_roots=args["data_roots"]))
    except NotComparable as e:
        print(e, file=sys.stderr)
        return NOT_COMPARABLE_EXIT
    return 0


# -- two embeddings of the same items: B's stored layout turned onto A's -------------

PAIR_POINTS = 4_000  # drawn per panel: two SVG panels hold what the sweep's TOTAL_POINTS do
PAIR_MOST_CHANGED = 2_000  # of them, the most changed items (the comparison table's rows), so a row click finds its point


@dataclass(frozen=True)
class Turn:
    """xy @ rotation * scale + shift turns B's layout onto A's (rotation orthogonal: a mirror when det < 0) at A's spread."""

    rotation: np.ndarray
    scale: float
    shift: np.ndarray
    # RMS distance of best-fit B (the least-squares scale) from A over A's RMS spread: 0 aligned, ~1 unrelated
    residual: float

    def apply(self, xy: np.ndarray) -> np.ndarray:
        return ((xy.astype(np.float64) @ self.rotation) * self.scale + self.shift).astype(np.float32)

    @property
    def degrees(self) -> float:
        return float(np.degrees(np.arctan2(self.rotation[0, 1], self.rotation[0, 0])))

    @property
    def mirrored(self) -> bool:
        return bool(np.linalg.det(self.rotation) < 0)


def procrustes(moving: np.ndarray, fixed: np.ndarray) -> Turn:
    """The similarity transform taking `moving` onto `fixed` in least squares, row i the same item in both.

    Two UMAP layouts of one space differ by about that (UMAP's axes, sign and scale are arbitrary); nothing
    bends, so what still differs after it is what the embeddings changed.
    """
    from scipy.linalg import orthogonal_procrustes

    M, F = moving.astype(np.float64), fixed.astype(np.float64)
    mc, fc = M.mean(axis=0), F.mean(axis=0)
    M, F = M - mc, F - fc
    norm = float((M**2).sum())
    if norm == 0:  # every point of B at one place: nothing to turn
        return Turn(np.eye(2), 1.0, fc - mc, 1.0)
    rotation, singular_sum = orthogonal_procrustes(M, F)
    best = float(singular_sum) / norm  # the least-squares scale: it shrinks B towards a dot as the layouts become unrelated
    spread = float(np.sqrt((F**2).sum(axis=1).mean())) or 1.0
    residual = float(np.sqrt((((M @ rotation) * best - F) ** 2).sum(axis=1).mean())) / spread
    # B is drawn at A's spread: the same scale as `best` for layouts that agree, and still a picture for ones that do not.
    scale = float(np.sqrt((F**2).sum() / norm))
    return Turn(rotation, scale, fc - (mc @ rotation) * scale, residual)


def pair_sample(change: np.ndarray, size: int = PAIR_POINTS, most: int = PAIR_MOST_CHANGED, seed: int = SEED) -> np.ndarray:
    """Sorted positions of the shared items to draw: the `most` most changed, then a seeded sample of the rest up to `size`."""
    if len(change) <= size:
        return np.arange(len(change))
    order = np.argsort(-change, kind="stable")  # the table's order: most changed first, ties by index
    rest = np.random.default_rng(seed).choice(order[most:], size - most, replace=False)
    return np.sort(np.concatenate([order[:most], rest]))


# -- one fit per sweep at a time, in the background ------------------------------

_lock = threading.Lock()
_running: dict[Path, threading.Thread] = {}
_failures: dict[Path, LayoutFailed] = {}
_children: set[subprocess.Popen] = set()


def read_cached(path: Path, job_ids: list[int]) -> dict[str, Any] | None:
    """The stored layouts when they were computed from exactly these jobs (and by this version)."""
    try:
        payload = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return payload if payload.get("version") == FORMAT_VERSION and payload.get("job_ids") == job_ids else None


def layouts(settings: Settings, sweep_id: int, rows: list[JobRow]) -> tuple[dict[str, Any] | None, Comparison]:
    """The aligned layouts of the sweep's comparable jobs if computed; else None, with a fit started unless one runs for this sweep.

    A fit that failed is reported once (LayoutFailed); the next call tries again.
    """
    found = comparison(rows, settings)
    path = settings.sweep_dir(sweep_id) / LAYOUTS_FILE
    with _lock:
        if path in _running:
            return None, found
        if (failure := _failures.pop(path, None)) is not None:
            raise failure
        payload = read_cached(path, [job.id for job in found.jobs])  # under the lock: a fit that just ended has written it
        if payload is not None:
            return payload, found
        thread = threading.Thread(target=_fit_in_child, args=(path, found, settings), name=f"sweep-layout-{sweep_id}", daemon=True)
        _running[path] = thread
        thread.start()
    return None, found


def _fit_in_child(path: Path, found: Comparison, settings: Settings) -> None:
    args = {
        "jobs": [[j.id, str(j.dir), j.space] for j in found.jobs],
        "dataset": found.dataset,
        "out": str(path),
        "home": str(settings.home_path),
        "data_roots": settings.data_roots,
    }
    failure = None
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "app.explorer.aligned", json.dumps(args)],
            cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, "NUMBA_NUM_THREADS": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        with _lock:
            _children.add(child)
        try:
            _, err = child.communicate(timeout=FIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            err = f"it took longer than {FIT_TIMEOUT_S} s and was stopped"
        finally:
            with _lock:
                _children.discard(child)
        if child.returncode == NOT_COMPARABLE_EXIT:
            failure = LayoutFailed(409, err.strip())
        elif child.returncode != 0:
            last = [line.strip() for line in err.splitlines() if line.strip()][-1:] or [f"exit status {child.returncode}"]
            failure = LayoutFailed(500, f"the aligned layout failed: {last[0]}")
    except OSError as e:
        failure = LayoutFailed(500, f"the aligned layout could not start: {e}")
    finally:
        with _lock:
            if failure is not None:
                _failures[path] = failure
            _running.pop(path, None)


@atexit.register
def _stop_children() -> None:
    """A server that stops takes its fits along (a later request starts them again)."""
    with _lock:
        for child in _children:
            child.kill()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
