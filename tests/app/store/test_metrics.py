"""Metric series: batch writes, latest attempt per step, server-side thinning."""

from __future__ import annotations

import math
import time

import numpy as np

from app.spec import JobSpec
from app.store import jobs, metrics
from app.store.metrics import Point, downsample


def running_job(engine):
    job_id = jobs.submit(engine, JobSpec(dataset="digits")).id
    c = jobs.claim(engine, "w", devices=("auto",), lease_seconds=30, run_device="cpu")
    return job_id, c


def test_downsample_keeps_first_last_and_extremes():
    rng = np.random.default_rng(0)
    values = rng.normal(size=100_000)
    values[12_345] = 50.0
    values[77_777] = -50.0
    keep = downsample(values, 2500)
    assert len(keep) <= 2500
    assert keep[0] == 0 and keep[-1] == len(values) - 1
    assert 12_345 in keep and 77_777 in keep
    assert np.all(np.diff(keep) > 0)
    assert list(downsample(values[:100], 2500)) == list(range(100))


def test_series_is_thinned_on_the_server_with_first_and_last(engine):
    job_id, c = running_job(engine)
    points = [Point("train/loss", s, 1.0 / s, time.time()) for s in range(1, 10_001)]
    assert metrics.append(engine, job_id, c.attempt, c.token, points)
    s = metrics.series(engine, job_id, ["train/loss"], max_points=500)["train/loss"]
    assert len(s["step"]) <= 500
    assert s["step"][0] == 1 and s["step"][-1] == 10_000
    assert s["value"][0] == 1.0 and math.isclose(s["value"][-1], 1e-4)
    zoom = metrics.series(engine, job_id, ["train/loss"], max_points=500, step_min=100, step_max=199)["train/loss"]
    assert zoom["step"] == list(range(100, 200))


def test_latest_attempt_wins_and_points_are_not_duplicated(engine):
    job_id, first = running_job(engine)
    metrics.append(engine, job_id, first.attempt, first.token, [Point("train/loss", s, 1.0, 0) for s in (1, 2, 3)])
    metrics.append(engine, job_id, first.attempt, first.token, [Point("train/loss", 3, 1.0, 0)])  # a retried batch
    jobs.release(engine, job_id, first.token, step=3)
    second = jobs.claim(engine, "w2", devices=("auto",), lease_seconds=30, run_device="cpu")
    metrics.append(engine, job_id, second.attempt, second.token, [Point("train/loss", s, 2.0, 0) for s in (2, 3, 4)])
    s = metrics.series(engine, job_id)["train/loss"]
    assert s == {"step": [1, 2, 3, 4], "value": [1.0, 2.0, 2.0, 2.0]}
    assert len(metrics.since(engine, job_id, 0)) == 6  # once per attempt


def test_non_finite_values_are_stored_as_gaps_and_val_metrics_summarised(engine):
    job_id, c = running_job(engine)
    metrics.append(engine, job_id, c.attempt, c.token, [Point("val/loss", 1, float("nan"), 0), Point("val/precision_at_1", 1, 0.75, 0)])
    assert metrics.series(engine, job_id, ["val/loss"])["val/loss"]["value"] == [None]
    assert jobs.get(engine, job_id).summary == {"val/loss": None, "val/precision_at_1": 0.75}


def _write_points(url: str, job_id: int, attempt: int, token: str, n: int) -> None:
    from app.store.db import get_engine

    engine = get_engine(url)
    for start in range(1, n + 1, 50):
        assert metrics.append(
            engine, job_id, attempt, token, [Point("train/loss", s, float(s), 0) for s in range(start, min(start + 50, n + 1))]
        )


def test_four_writers_and_readers_lose_no_point(engine, settings):
    import multiprocessing as mp

    claims = []
    for _ in range(4):
        jobs.submit(engine, JobSpec(dataset="digits"))
        claims.append(jobs.claim(engine, "w", devices=("auto",), lease_seconds=60, run_device="cpu"))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_points, args=(settings.db_url, c.job_id, c.attempt, c.token, 3000)) for c in claims]
    for p in procs:
        p.start()
    while any(p.is_alive() for p in procs):  # the dashboard reading meanwhile
        for c in claims:
            metrics.series(engine, c.job_id, ["train/loss"])
            metrics.since(engine, c.job_id, 0, limit=100)
    assert all(p.exitcode == 0 for p in procs)
    for c in claims:
        s = metrics.series(engine, c.job_id, ["train/loss"], max_points=10_000)["train/loss"]
        assert s["step"] == list(range(1, 3001))
