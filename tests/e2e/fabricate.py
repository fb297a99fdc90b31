"""Finished jobs written straight through app/store (no training): metric rows, the evidence summary, per-query values
and distance histograms, so that browser tests of the evidence pages run in seconds."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from sqlalchemy import update

from app.files import DISTANCES_FILE, PER_QUERY_FILE, save_json
from app.store import jobs, metrics
from app.store.db import writing
from app.store.models import Job

M = ("mean_average_precision_at_r", "r_precision", "precision_at_1")
QUERIES = 300


def scored(values: dict[str, np.ndarray], step: int) -> dict:
    out = {}
    for m, v in values.items():
        half = 1.96 * float(v.std()) / np.sqrt(len(v))
        out.update({m: float(v.mean()), f"{m}_low": float(v.mean()) - half, f"{m}_high": float(v.mean()) + half})
    return {"step": step, "metrics": out}


def finish_next(engine, home, level: float, *, baseline: float = 0.2, noise: float = 0.02, query_seed: int = 0) -> int:
    """Claim the next queued job and finish it as if trained: validation MAP@R rising from `baseline` to about `level`."""
    claim = jobs.claim(engine, "fabricated", devices=("auto", "cpu"), lease_seconds=60, run_device="cpu")
    assert claim is not None
    rng = np.random.default_rng(claim.job_id)
    query_effect = np.random.default_rng(query_seed).uniform(-0.15, 0.15, QUERIES)  # the same queries for every job
    indices = np.arange(1000, 1000 + QUERIES)
    steps = [0, 10, 20]
    levels = [baseline, (baseline + level) / 2, level]
    points, now = [], time.time()
    per_step = {}
    for step, lv in zip(steps, levels):
        values = {m: np.clip(query_effect + lv + (0.3 if m == "precision_at_1" else 0) + rng.normal(0, noise, QUERIES), 0, 1) for m in M}
        per_step[step] = values
        for m, v in scored(values, step)["metrics"].items():
            points.append(metrics.Point(f"val/{m}", step, v, now))
        points.append(metrics.Point("val/loss", step, 1 - lv, now))
    for step in range(1, 21):
        points.append(metrics.Point("train/loss", step, 1.0 / step, now))
        points.append(metrics.Point("train/triplets_semihard", step, 0.5, now))
    assert metrics.append(engine, claim.job_id, claim.attempt, claim.token, points)
    best_step = max(steps, key=lambda s: per_step[s]["mean_average_precision_at_r"].mean())
    test = {m: np.clip(v - 0.02, 0, 1) for m, v in per_step[best_step].items()}
    evidence = {
        "select_metric": "mean_average_precision_at_r",
        "best": scored(per_step[best_step], best_step),
        "baseline": scored(per_step[0], 0),
        "test": {"best": scored(test, best_step), "final": scored(test, 20)},
        "stopped_early": None,
        "no_gain": None if best_step else "the best validation MAP@R is not above the untrained network's (step 0) beyond the noise",
    }
    with writing(engine) as conn:
        row = conn.execute(Job.__table__.select().where(Job.id == claim.job_id)).mappings().one()
        conn.execute(update(Job).where(Job.id == claim.job_id).values(summary={**(row["summary"] or {}), **evidence}))
    job_dir = home / "jobs" / str(claim.job_id)
    job_dir.mkdir(parents=True, exist_ok=True)
    with open(job_dir / PER_QUERY_FILE, "wb") as f:
        np.savez(f, indices=indices, **per_step[best_step], seed=np.int64(claim.spec.get("seed", 0)), step=np.int64(best_step))
    edges = np.linspace(0, 2, 41)
    centre = 0.5 + 0.5 * level
    save_json(
        job_dir / DISTANCES_FILE,
        {
            "loss": claim.spec["loss"],
            "margin": claim.spec["margin"],
            "kind": "l2",
            "evaluations": [
                {
                    "step": 20,
                    "kind": "l2",
                    "edges": edges.tolist(),
                    "positive": np.histogram(rng.normal(0.5, 0.15, 500), edges)[0].tolist(),
                    "negative": np.histogram(rng.normal(centre + 0.5, 0.15, 500), edges)[0].tolist(),
                    "overlap": 0.1,
                    "positive_median": 0.5,
                    "negative_median": centre + 0.5,
                    "positive_p90": 0.7,
                }
            ],
        },
    )
    assert jobs.finish(engine, claim.job_id, claim.token, "succeeded", step=20)
    return claim.job_id


def fabricate_collection(
    home,
    n: int,
    dim: int = 16,
    classes: int = 20,
    images: int = 40,
    seed: int = 7,
    xy_map: Callable[[np.ndarray], np.ndarray] | None = None,
    x_map: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[int, int]:
    """A ready collection of n points written straight to its files (no import, no UMAP): clustered embeddings, a layout
    with a cluster per class (passed through `xy_map` when given: the same seed's layout turned, say), per-point AP, and
    an image folder of `images` PNGs that the points share in turn. Its id, and the row nearest the middle of class 0's
    cluster on the layout. `x_map` likewise changes the embeddings (the same seed's vectors moved a little, say)."""
    import json
    from pathlib import Path

    from PIL import Image

    from app.config import Settings
    from app.explorer import collections as files
    from app.explorer.layout import LayoutState
    from app.files import PROJECTION_FILE, collection_dir, datasets_dir
    from app.store import collections as store
    from app.store.db import get_engine, init_db

    home = Path(home)
    engine = get_engine(Settings(home=home).db_url)
    init_db(engine)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    X = (rng.normal(size=(classes, dim))[labels] + rng.normal(scale=0.3, size=(n, dim))).astype(np.float32)
    xy = ((rng.normal(size=(classes, 2)) * 8)[labels] + rng.normal(size=(n, 2))).astype(np.float32)
    if xy_map is not None:
        xy = xy_map(xy).astype(np.float32)
    if x_map is not None:
        X = x_map(X).astype(np.float32)
    folder = datasets_dir(home) / "fabricated-images"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        Image.new("RGB", (48, 48), (40 + 5 * i, 90, 200 - 4 * i)).save(folder / f"img{i:02d}.png")
    row = store.create(
        engine,
        name=f"fabricated {n:,}",
        owner="local",
        points=n,
        dims=dim,
        classes=classes,
        space="euclidean",
        images=str(folder),
        source={},
    )
    target = collection_dir(home, row.id)
    target.mkdir(parents=True)
    meta = {
        "version": 1,
        "space": "euclidean",
        "class_names": [f"class {c}" for c in range(classes)],
        "points": n,
        "splits": {"val": n, "train": 0},
        "fitted_points": n,
        "umap": {"n_neighbors": 10, "min_dist": 0.05, "seed": 0},
        "layout": LayoutState("euclidean", 10, 1.0, 1.0, 1.0, 1.0, 1.0, 5.0, 200, 0, float("inf")).to_json(),
        "preservation": {"knn_recall_at_10": 0.0, "trustworthiness_at_10": 0.0},
        "per_class": [
            {
                "label": c,
                "count": int((labels == c).sum()),
                "precision_at_1": None,
                "r_precision": None,
                "mean_average_precision_at_r": None,
            }
            for c in range(classes)
        ],
        "per_class_points": 0,
    }
    with open(target / PROJECTION_FILE, "wb") as f:
        np.savez(
            f,
            embeddings=X,
            labels=labels.astype(np.int64),
            indices=np.arange(n, dtype=np.int64),
            split=np.zeros(n, np.int8),
            xy=xy,
            fitted=np.ones(n, bool),
            nn_same_label=rng.random(n) < 0.9,
            ap=rng.random(n).astype(np.float32),
            meta=np.array(json.dumps(meta)),
        )
    with open(target / files.IMAGES_FILE, "wb") as f:
        np.savez(f, files=np.array([f"img{r % images:02d}.png" for r in range(n)]))
    store.finish(engine, row.id, "ready")
    mine = np.flatnonzero(labels == 0)
    return row.id, int(mine[np.argmin(np.linalg.norm(xy[mine] - xy[mine].mean(axis=0), axis=1))])
