"""An imported collection's files, and its layout built in a child process.

EMBEDLAB_HOME/collections/<id>/ holds source.npz (the checked embeddings, indices, labels; removed once the layout holds them), images.npz
(each point's image file, when an image folder was given), then projection.npz in the format of a
job's (trainer/project.py), so app.explorer.embeddings reads a collection exactly as it reads a job.

An import is checked and written into a temp folder first (app.files.temp_prefix, so a dead server's
leftovers are recognised and removed), and renamed to its id only once whole: a refused or broken
import leaves nothing. The layout (UMAP on a sample, every other point placed with UMAP's transform,
the neighbour index, per-class metrics) runs as `python -m app.explorer.collections FOLDER SPACE HOME`,
niced, so Numba's long kernels never hold the API's interpreter; it writes progress.json as it goes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from app.distance import Distance, Space
from app.explorer import layout
from app.explorer.imports import Imported
from app.explorer.neighbors import NeighborIndex, first_other
from app.files import collection_dir, collections_dir, remove_leftovers, save_json, temp_prefix

SOURCE_FILE = "source.npz"
IMAGES_FILE = "images.npz"
PROGRESS_FILE = "progress.json"
LOG_FILE = "layout.log"
SEED = 0
METRICS_SAMPLE = 20_000  # per-class P@1 / R-Precision / MAP@R: every sampled point querying the other sampled ones
NO_LABEL = "(no label)"
STAGE = "import"


def new_stage(home: Path) -> Path:
    """A fresh temp folder under collections/, for one import's files until `commit` renames it."""
    parent = collections_dir(home)
    parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(parent, STAGE)
    return Path(tempfile.mkdtemp(dir=parent, prefix=temp_prefix(STAGE)))


def write_source(folder: Path, imported: Imported) -> None:
    """The checked arrays the layout starts from (and each point's image file)."""
    labels = imported.labels if imported.labels is not None else np.zeros(len(imported), dtype=np.int64)
    names = imported.class_names or [NO_LABEL]
    with open(folder / SOURCE_FILE, "wb") as f:
        np.savez(
            f,
            embeddings=imported.embeddings,
            indices=imported.indices,
            labels=labels,
            meta=np.array(json.dumps({"class_names": names, "labelled": imported.labels is not None})),
        )
    if imported.image_files is not None:
        with open(folder / IMAGES_FILE, "wb") as f:
            np.savez(f, files=np.array(imported.image_files, dtype=str))


def commit(staged: Path, home: Path, collection_id: int) -> Path:
    target = collection_dir(home, collection_id)
    os.replace(staged, target)
    return target


def discard(staged: Path) -> None:
    shutil.rmtree(staged, ignore_errors=True)


def progress(folder: Path) -> str | None:
    """What the layout is doing ("placing 980,000 points with UMAP's transform"), while it runs."""
    try:
        return json.loads((folder / PROGRESS_FILE).read_text())["phase"]
    except (OSError, ValueError, KeyError):
        return None


@lru_cache(maxsize=4)
def _image_files(path: Path, version: tuple[int, int]) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        return z["files"]


def image_file(folder: Path, row: int) -> str | None:
    """The image of point `row`, relative to the collection's image folder; None without images."""
    path = folder / IMAGES_FILE
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return str(_image_files(path, (st.st_mtime_ns, st.st_size))[row])


# -- the layout (in the child process) -----------------------------------------


def distance_of(space: Space) -> Distance:
    """The distance whose space is `space`: cosine similarity on normalised vectors, or L2 on raw ones."""
    return Distance("cosine_similarity", True) if space == "cosine" else Distance("l2", False)


def nearest_same_label(index: NeighborIndex, labels: np.ndarray, batch: int = 65_536) -> np.ndarray:
    """Per point: does its nearest other point carry its label? Through the neighbour index (HNSW past 200,000 points)."""
    same = np.zeros(len(labels), dtype=bool)
    for start in range(0, len(labels), batch):
        rows, _ = index.search(index.vectors[start : start + batch], 2)
        nn = first_other(rows, start)
        same[start : start + len(nn)] = labels[nn] == labels[start : start + len(nn)]
    return same


def build(folder: Path, space: Space, home: Path, report: Callable[[str], None]) -> dict[str, Any]:
    """projection.npz for a staged or committed collection folder; returns its metadata."""
    from trainer.project import per_class_metrics, per_point_ap, write_projection  # torch: only in this child process

    started = time.perf_counter()
    with np.load(folder / SOURCE_FILE, allow_pickle=False) as z:
        X, indices, labels = z["embeddings"], z["indices"], z["labels"]
        source_meta = json.loads(str(z["meta"]))
    n = len(X)
    fit_n = min(n, layout.FIT_MAX)
    report(f"fitting UMAP on {fit_n:,} points" + (f", then placing {n - fit_n:,} with its transform" if n > fit_n else ""))
    xy, fitted, state = layout.fit(X, space, seed=SEED, home=home)
    laid_out = time.perf_counter()
    report("building the neighbour index")
    index = NeighborIndex.build(X, space)
    index.save(folder)  # the API reads it instead of building it again (minutes past a million points)
    indexed = time.perf_counter()
    nn_same = np.zeros(n, dtype=bool)
    if source_meta["labelled"]:
        report(f"searching each point's nearest neighbour ({n:,} searches, for the nearest-same-label flag)")
        nn_same = nearest_same_label(index, labels)
    searched = time.perf_counter()
    report("measuring the layout and the classes")
    sample = np.sort(np.random.default_rng(SEED).choice(n, min(n, METRICS_SAMPLE), replace=False))
    per_class = per_class_metrics(X[sample], labels[sample], distance_of(space)) if source_meta["labelled"] else []
    ap = np.full(n, np.nan, dtype=np.float32)  # points outside the sample are not scored
    if source_meta["labelled"]:
        ap[sample] = per_point_ap(X[sample], labels[sample], distance_of(space))
    meta = {
        "version": layout.FORMAT_VERSION,
        "space": space,
        "class_names": source_meta["class_names"],
        "points": n,
        "splits": {"val": n, "train": 0},
        "fitted_points": int(fitted.sum()),
        "umap": {**layout.UMAP_SETTINGS, "n_neighbors": state.n_neighbors, "metric": space, "seed": SEED},
        "layout": state.to_json(),
        "preservation": {
            "knn_recall_at_10": layout.knn_recall(X, xy, space, seed=SEED),
            "trustworthiness_at_10": layout.trustworthiness(X, xy, space, seed=SEED),
        },
        "per_class": per_class,
        "per_class_points": len(sample) if source_meta["labelled"] else 0,
        "collection": True,
    }
    meta["seconds"] = {
        "umap": round(laid_out - started, 3),
        "neighbour_index": round(indexed - laid_out, 3),
        "nearest_same_label": round(searched - indexed, 3),
        "quality": round(time.perf_counter() - searched, 3),
    }
    arrays = {
        "embeddings": X,
        "labels": labels,
        "indices": indices,
        "split": np.zeros(n, dtype=np.int8),
        "xy": xy,
        "fitted": fitted,
        "nn_same_label": nn_same,
        "ap": ap,
    }
    write_projection(folder, arrays, meta)
    return meta


def main(argv: list[str]) -> int:
    folder, space, home = Path(argv[0]), argv[1], Path(argv[2])
    os.nice(10)  # the API's requests first

    def report(phase: str) -> None:
        save_json(folder / PROGRESS_FILE, {"phase": phase})
        print(phase, flush=True)

    meta = build(folder, space, home, report)  # type: ignore[arg-type]
    print(f"laid out {meta['points']:,} points in {sum(meta['seconds'].values()):.1f}s", flush=True)
    (folder / PROGRESS_FILE).unlink(missing_ok=True)
    (folder / SOURCE_FILE).unlink(missing_ok=True)  # projection.npz holds the same arrays: half the disk at 1,000,000 points
    return 0


# -- the API's side ------------------------------------------------------------

_running: dict[int, subprocess.Popen] = {}
_stopped: set[int] = set()  # layouts ended on purpose (deleted, or the server stopping): no outcome to record
_running_lock = threading.Lock()


def start(collection_id: int, folder: Path, space: str, home: Path, done: Callable[[int, str | None], None]) -> None:
    """Lay the collection out in a child process; `done(id, error)` once it ends (error None on success)."""
    with _running_lock:
        if collection_id in _running and _running[collection_id].poll() is None:
            return
        log = open(folder / LOG_FILE, "ab")  # noqa: SIM115 - the child writes it; closed when the child ends
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.explorer.collections", str(folder), space, str(home)], stdout=log, stderr=subprocess.STDOUT
        )
        _running[collection_id] = proc

    def wait() -> None:
        rc = proc.wait()
        log.close()
        with _running_lock:
            _running.pop(collection_id, None)
            if collection_id in _stopped:
                _stopped.discard(collection_id)
                return
        if rc == 0 and (folder / "projection.npz").exists():
            done(collection_id, None)
            return
        try:
            tail = (folder / LOG_FILE).read_text(errors="replace").strip().splitlines()[-1:]
        except OSError:
            tail = []
        done(collection_id, f"the layout stopped (exit status {rc})" + (f": {tail[0][:300]}" if tail else ""))

    threading.Thread(target=wait, name=f"collection-{collection_id}-layout", daemon=True).start()


def stop(collection_id: int) -> None:
    """End a layout still running (its collection is being deleted, or the server stops); its outcome is not recorded."""
    with _running_lock:
        proc = _running.get(collection_id)
        if proc is None or proc.poll() is not None:
            return
        _stopped.add(collection_id)
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stop_all() -> None:
    """End every layout this process started (the server is stopping: the next one resumes them)."""
    with _running_lock:
        ids = list(_running)
    for collection_id in ids:
        stop(collection_id)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
