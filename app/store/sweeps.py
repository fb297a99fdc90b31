"""Sweeps: a named group of jobs created together from a grid."""

from __future__ import annotations

from sqlalchemy import Engine, func, insert, select

from app.spec import JobSpec, SweepSpec
from app.store import jobs
from app.store.db import reading, writing
from app.store.models import Job, Sweep, utcnow
from app.store.rows import JobStatus, SweepRow


def create(engine: Engine, sweep: SweepSpec, specs: list[JobSpec], *, owner: str, max_attempts: int) -> tuple[SweepRow, list[int]]:
    with writing(engine) as conn:
        sweep_id = conn.execute(
            insert(Sweep).values(name=sweep.name, owner=owner, spec=sweep.model_dump(mode="json"), created_at=utcnow()).returning(Sweep.id)
        ).scalar_one()
        rows = jobs.insert_jobs(conn, specs, owner=owner, max_attempts=max_attempts, sweep_id=sweep_id)
        return SweepRow.of(conn.execute(select(Sweep.__table__).where(Sweep.id == sweep_id)).mappings().one()), [r.id for r in rows]


def get(engine: Engine, sweep_id: int) -> SweepRow | None:
    with reading(engine) as conn:
        row = conn.execute(select(Sweep.__table__).where(Sweep.id == sweep_id)).mappings().first()
        return SweepRow.of(row) if row else None


def status_counts(engine: Engine, sweep_ids: list[int]) -> dict[int, dict[JobStatus, int]]:
    counts: dict[int, dict[JobStatus, int]] = {i: {} for i in sweep_ids}
    with reading(engine) as conn:
        stmt = select(Job.sweep_id, Job.status, func.count()).where(Job.sweep_id.in_(sweep_ids)).group_by(Job.sweep_id, Job.status)
        for sweep_id, status, n in conn.execute(stmt):
            counts[sweep_id][status] = n
    return counts


def list_sweeps(engine: Engine, *, limit: int = 50, offset: int = 0) -> tuple[list[SweepRow], int]:
    with reading(engine) as conn:
        total = conn.execute(select(func.count()).select_from(Sweep)).scalar_one()
        rows = conn.execute(select(Sweep.__table__).order_by(Sweep.id.desc()).limit(limit).offset(offset)).mappings().all()
    return [SweepRow.of(r) for r in rows], total


def cancel(engine: Engine, sweep_id: int) -> None:
    """Queued jobs are cancelled, running ones asked to stop."""
    with writing(engine) as conn:
        jobs.cancel_where(conn, Job.sweep_id == sweep_id)
