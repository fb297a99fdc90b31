"""Metric points: one batch write path, series read back thinned on the server.

A step written by two attempts (a job requeued after its worker died) is stored once per
attempt; readers see, for each step, the value of the latest attempt.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.store.db import fetch_tuples, reading, writing
from app.store.models import Job, Metric

DEFAULT_MAX_POINTS = 2500


class Point(NamedTuple):
    name: str
    step: int
    value: float
    wall_time: float


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def append(engine: Engine, job_id: int, attempt: int, token: str, points: Sequence[Point]) -> bool:
    """Write a batch of points for the attempt holding `token`; False (nothing written) when the lease is lost.

    The latest `val/` values are copied onto the job row so the jobs page reads no series.
    """
    if not points:
        return True
    rows = [
        dict(job_id=job_id, attempt=attempt, name=p.name, step=int(p.step), value=_finite_or_none(p.value), wall_time=p.wall_time)
        for p in points
    ]
    insert = (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(Metric)
    with writing(engine) as conn:
        owner = conn.execute(
            select(Job.summary).where(Job.id == job_id, Job.lease_token == token, Job.status == "running").with_for_update()
        ).first()
        if owner is None:
            return False
        conn.execute(insert.on_conflict_do_nothing(), rows)
        latest = {r["name"]: r["value"] for r in rows if r["name"].startswith("val/")}
        if latest:
            conn.execute(update(Job).where(Job.id == job_id).values(summary={**(owner.summary or {}), **latest}))
    return True


def names(engine: Engine, job_id: int) -> list[str]:
    with reading(engine) as conn:
        return list(conn.execute(select(Metric.name).where(Metric.job_id == job_id).distinct().order_by(Metric.name)).scalars())


def latest_id(engine: Engine, job_id: int) -> int:
    with reading(engine) as conn:
        rows = conn.execute(select(Metric.id).where(Metric.job_id == job_id).order_by(Metric.id.desc()).limit(1)).scalars().all()
        return rows[0] if rows else 0


def since(engine: Engine, job_id: int, after_id: int, limit: int = 5000) -> list[dict]:
    """Points written after event id `after_id`, in write order (for the live stream)."""
    stmt = (
        select(Metric.id, Metric.name, Metric.step, Metric.value, Metric.attempt)
        .where(Metric.job_id == job_id, Metric.id > after_id)
        .order_by(Metric.id)
        .limit(limit)
    )
    with reading(engine) as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def series(
    engine: Engine,
    job_id: int,
    wanted: Iterable[str] | None = None,
    *,
    max_points: int = DEFAULT_MAX_POINTS,
    step_min: int | None = None,
    step_max: int | None = None,
) -> dict[str, dict[str, list]]:
    """Each series as {"step": [...], "value": [...]}, latest attempt per step, thinned to `max_points`."""
    wanted = list(wanted) if wanted is not None else names(engine, job_id)
    out: dict[str, dict[str, list]] = {}
    with reading(engine) as conn:
        for name in wanted:
            where = [Metric.job_id == job_id, Metric.name == name]
            if step_min is not None:
                where.append(Metric.step >= step_min)
            if step_max is not None:
                where.append(Metric.step <= step_max)
            stmt = select(Metric.step, Metric.attempt, Metric.value).where(*where).order_by(Metric.step, Metric.attempt)
            steps, values = latest_attempt(fetch_tuples(conn, stmt))
            keep = downsample(values, max_points)
            out[name] = {"step": steps[keep].tolist(), "value": [None if math.isnan(v) else v for v in values[keep].tolist()]}
    return out


def latest_attempt(rows: Sequence[tuple[int, int, float | None]]) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by (step, attempt) -> one value per step, from the highest attempt."""
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    table = np.array(rows, dtype=np.float64)  # NULL (a NaN or inf written) becomes NaN
    steps, values = table[:, 0].astype(np.int64), table[:, 2]
    last_of_step = np.append(steps[1:] != steps[:-1], True)
    return steps[last_of_step], values[last_of_step]


def downsample(values: np.ndarray, max_points: int) -> np.ndarray:
    """Indices to keep: the min and max of each of max_points/2 buckets, plus first and last.

    Keeping both extremes of every bucket means a spike never disappears from the chart.
    """
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, (max_points - 2) // 2)
    bucket = np.arange(n) * buckets // n
    filled = np.where(np.isnan(values), np.inf, values)
    order = np.lexsort((filled, bucket))  # by bucket, then value
    starts = np.searchsorted(bucket[order], np.arange(buckets))
    ends = np.append(starts[1:], n) - 1
    lows = order[starts]
    highs = np.where(np.isinf(filled[order[ends]]), order[np.maximum(ends - 1, starts)], order[ends])
    return np.unique(np.concatenate(([0, n - 1], lows, highs)))
