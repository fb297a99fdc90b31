"""The embedding explorer's data, computed once by the worker at the end of a job.

`save_projection` embeds a seeded sample of training images (at most TRAIN_SAMPLE) beside
the validation split, lays both out in 2-D with UMAP (app.explorer.layout: seeded, in the
job's distance) and writes one file, projection.npz, atomically: the points (dataset
index, label, split, full embedding, 2-D position), per-point and per-class retrieval
quality, the neighbour preservation of the layout, and the state UMAP's transform needs
to place uploaded queries. Everything is a plain array (loaded with allow_pickle=False);
the metadata is a JSON string inside the same file, so a reader sees all or nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.config import Settings
from app.distance import Distance, job_distance
from app.explorer import layout
from app.explorer.neighbors import first_other, knn
from app.files import PROJECTION_FILE
from app.spec import JobSpec
from trainer import artifacts
from trainer.data import ImageData
from trainer.evaluate import RETRIEVAL, accuracy_calculator, embed, per_query_retrieval
from trainer.phase import layout_reporter, umap_epochs
from trainer.run import Run


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """A seeded, sorted sample of row numbers (all rows when n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def nearest_same_label(X: np.ndarray, labels: np.ndarray, split: np.ndarray, distance: Distance) -> np.ndarray:
    """Per point: does its nearest other point of the same split carry the same label? (P@1 per point.)"""
    same = np.zeros(len(X), dtype=bool)
    for s in np.unique(split):
        rows = np.flatnonzero(split == s)
        if len(rows) < 2:
            continue
        nn, _ = knn(X[rows], X[rows], 2, distance.space)
        same[rows] = labels[rows][first_other(nn)] == labels[rows]
    return same


def per_class_metrics(emb: np.ndarray, labels: np.ndarray, distance: Distance) -> list[dict[str, Any]]:
    """P@1, R-Precision and MAP@R of each class (every image querying the others), by pytorch-metric-learning.

    Classes with a single image have nothing to retrieve: AccuracyCalculator leaves them
    out, and so does the table (their metrics are null).
    """
    classes, counts = np.unique(labels, return_counts=True)
    rows = [{"label": int(c), "count": int(n), **{m: None for m in RETRIEVAL}} for c, n in zip(classes, counts)]
    kept = [r for r in rows if r["count"] >= 2]
    if not kept:
        return rows
    result = accuracy_calculator(distance, return_per_class=True).get_accuracy(torch.from_numpy(emb), torch.from_numpy(labels))
    for name in RETRIEVAL:
        for row, value in zip(kept, result[name]):
            row[name] = None if value != value else float(value)  # NaN -> null
    return rows


def per_point_ap(emb: np.ndarray, labels: np.ndarray, distance: Distance) -> np.ndarray:
    """AP@R of each point querying the others (pytorch-metric-learning's definition, trainer.evaluate); NaN for a
    point whose class has no other point (nothing to retrieve)."""
    ap = np.full(len(labels), np.nan, dtype=np.float32)
    if len(labels) > 1:
        values, scored = per_query_retrieval(torch.from_numpy(emb), torch.from_numpy(labels), distance)
        ap[scored] = values["mean_average_precision_at_r"]
    return ap


def save_projection(
    run: Run,
    spec: JobSpec,
    settings: Settings,
    model: torch.nn.Module,
    val: ImageData,
    val_emb: torch.Tensor,
    train: ImageData,
    step: int | None = None,
) -> dict[str, Any]:
    """Compute and write the explorer's projection.npz; returns its metadata (timings included). `step`: a cancelled job's last evaluation."""
    started = time.perf_counter()
    report = layout_reporter(run, "cancelled: " if step is not None else "")
    report(0.0)
    distance = job_distance(spec)
    space = distance.space
    rows = sample_rows(len(train), layout.TRAIN_SAMPLE, spec.seed)
    train_emb = embed(model, train.images[torch.as_tensor(rows, dtype=torch.long)], run.device) if len(rows) else val_emb[:0]
    X = torch.cat([val_emb, train_emb]).numpy().astype(np.float32)
    labels = np.concatenate([val.labels.numpy(), train.labels.numpy()[rows]]).astype(np.int64)
    indices = np.concatenate([val.indices, train.indices[rows]]).astype(np.int64)
    split = np.concatenate([np.zeros(len(val), np.int8), np.ones(len(rows), np.int8)])
    embedded = time.perf_counter()

    report(0.1)
    xy, fitted, state = layout.fit(
        X, space, seed=spec.seed, home=settings.home_path, settings=umap_epochs(lambda f: report(0.15 + 0.75 * f))
    )
    laid_out = time.perf_counter()
    report(0.9)

    val_rows = split == 0
    meta = {
        "version": layout.FORMAT_VERSION,
        "space": space,
        "class_names": list(val.class_names),
        "points": len(X),
        "splits": {"val": int(val_rows.sum()), "train": int((~val_rows).sum())},
        "fitted_points": int(fitted.sum()),
        "umap": {**layout.UMAP_SETTINGS, "n_neighbors": state.n_neighbors, "metric": space, "seed": spec.seed},
        "layout": state.to_json(),
        "preservation": {
            "knn_recall_at_10": layout.knn_recall(X, xy, space, seed=spec.seed),
            "trustworthiness_at_10": layout.trustworthiness(X, xy, space, seed=spec.seed),
        },
        "per_class": per_class_metrics(X[val_rows], labels[val_rows], distance),
        "step": spec.steps if step is None else step,
    }
    nn_same = nearest_same_label(X, labels, split, distance)
    ap = np.full(len(X), np.nan, dtype=np.float32)  # the training sample is not scored
    ap[val_rows] = per_point_ap(X[val_rows], labels[val_rows], distance)
    meta["seconds"] = {
        "embed_train_sample": round(embedded - started, 3),
        "umap": round(laid_out - embedded, 3),
        "quality": round(time.perf_counter() - laid_out, 3),
    }

    arrays = {
        "embeddings": X,
        "labels": labels,
        "indices": indices,
        "split": split,
        "xy": xy,
        "fitted": fitted,
        "nn_same_label": nn_same,
        "ap": ap,
    }
    write_projection(run.job_dir, arrays, meta, run.still_owner)
    return meta


def write_projection(
    job_dir: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any], commit_ok: Callable[[], bool] = lambda: True
) -> bool:
    """projection.npz: the arrays app.explorer.embeddings.JobEmbedding reads, and the metadata as a JSON string (no pickle)."""

    def write(path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, **arrays, meta=np.array(json.dumps(meta)))

    return artifacts.atomic_write(job_dir / PROJECTION_FILE, write, commit_ok)


def project_for_explorer(
    run: Run,
    spec: JobSpec,
    settings: Settings,
    model: torch.nn.Module,
    val: ImageData,
    val_emb: torch.Tensor,
    train: ImageData,
    step: int | None = None,
) -> None:
    """save_projection for the training loop: a job whose model trained fine still succeeds if this fails (the log says why)."""
    try:
        meta = save_projection(run, spec, settings, model, val, val_emb, train, step)
    except Exception as e:  # noqa: BLE001 - the explorer is an extra; the checkpoint and metrics are already saved
        run.log("warning", f"no embedding explorer for this job: {type(e).__name__}: {e}")
        return
    s, p = meta["seconds"], meta["preservation"]
    run.log(
        "info",
        f"explorer: {meta['points']} points laid out with UMAP in {s['umap']:.1f}s (fitted on {meta['fitted_points']}), "
        f"kNN recall@10 2-D vs full {p['knn_recall_at_10']:.3f}",
    )


def keep_last_evaluation(
    run: Run, spec: JobSpec, settings: Settings, model: torch.nn.Module, val: ImageData, train: ImageData, step: int, evaluated: dict
) -> None:
    """A cancelled job keeps its last evaluation: the checkpoint written then, its embeddings, and (when the spec asks for
    the explorer) their layout, from the model as it was at that evaluation."""
    if "step" not in evaluated:  # resumed, then cancelled before evaluating again: the checkpoint is all there is
        run.log("info", f"cancelled at step {step}, before an evaluation of this attempt; the checkpoint is kept")
        return
    at, emb = int(evaluated["step"]), evaluated["embeddings"]
    run.log("info", f"cancelled at step {step}; keeping the checkpoint and embeddings of the evaluation at step {at}")
    run.phase("cancelled: saving embeddings")
    artifacts.save_embeddings(run.job_dir, emb.numpy(), val.labels.numpy(), val.indices, run.still_owner)
    if spec.explorer:
        ckpt = artifacts.load_checkpoint(run.job_dir)
        if ckpt is not None and ckpt.get("step") == at:
            model.load_state_dict(ckpt["model"])  # the training sample is embedded by the evaluated model
            project_for_explorer(run, spec, settings, model, val, emb, train, at)
