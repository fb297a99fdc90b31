"""Searches: the row behind an Optuna study whose trials are jobs (app/search.py drives it)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, insert, or_, select, update

from app.spec import JobSpec
from app.store import jobs
from app.store.db import reading, writing
from app.store.models import Job, Search, utcnow
from app.store.rows import JobRow, JobStatus, SearchRow

LOCK_SECONDS = 60.0  # an advance that crashed holds its search at most this long


def create(engine: Engine, *, name: str, owner: str, spec: dict[str, Any], study_name: str) -> SearchRow:
    with writing(engine) as conn:
        search_id = conn.execute(
            insert(Search)
            .values(name=name, owner=owner, spec=spec, study_name=study_name, status="running", created_at=utcnow())
            .returning(Search.id)
        ).scalar_one()
        return SearchRow.of(conn.execute(select(Search.__table__).where(Search.id == search_id)).mappings().one())


def get(engine: Engine, search_id: int) -> SearchRow | None:
    with reading(engine) as conn:
        row = conn.execute(select(Search.__table__).where(Search.id == search_id)).mappings().first()
        return SearchRow.of(row) if row else None


def list_searches(engine: Engine, *, limit: int = 50, offset: int = 0) -> tuple[list[SearchRow], int]:
    with reading(engine) as conn:
        total = conn.execute(select(func.count()).select_from(Search)).scalar_one()
        rows = conn.execute(select(Search.__table__).order_by(Search.id.desc()).limit(limit).offset(offset)).mappings().all()
    return [SearchRow.of(r) for r in rows], total


def unsettled(engine: Engine) -> list[int]:
    """Searches the driver still has work on: running ones, and cancelled ones whose last trials are not told yet."""
    with reading(engine) as conn:
        return list(conn.execute(select(Search.id).where(Search.finished_at.is_(None)).order_by(Search.id)).scalars())


def lock(engine: Engine, search_id: int) -> bool:
    """Take the search's advance lock (one process asks the sampler at a time); False when someone holds it."""
    now = utcnow()
    free = or_(Search.advancing_until.is_(None), Search.advancing_until < now)
    with writing(engine) as conn:
        result = conn.execute(
            update(Search).where(and_(Search.id == search_id, free)).values(advancing_until=now + timedelta(seconds=LOCK_SECONDS))
        )
        return result.rowcount == 1


def unlock(engine: Engine, search_id: int) -> None:
    with writing(engine) as conn:
        conn.execute(update(Search).where(Search.id == search_id).values(advancing_until=None))


def settle(engine: Engine, search_id: int, status: str) -> None:
    with writing(engine) as conn:
        conn.execute(update(Search).where(Search.id == search_id).values(status=status, finished_at=utcnow()))


def trial_jobs(engine: Engine, search_id: int) -> list[JobRow]:
    with reading(engine) as conn:
        rows = conn.execute(select(Job.__table__).where(Job.search_id == search_id).order_by(Job.id)).mappings().all()
    return [JobRow.of(r) for r in rows]


def add_trial(engine: Engine, search_id: int, trial_number: int, specs: list[JobSpec], *, owner: str, max_attempts: int) -> list[int]:
    """One ordinary queued job per seed, tagged with the search and the trial."""
    with writing(engine) as conn:
        ids = [r.id for r in jobs.insert_jobs(conn, specs, owner=owner, max_attempts=max_attempts, sweep_id=None)]
        conn.execute(update(Job).where(Job.id.in_(ids)).values(search_id=search_id, trial_number=trial_number))
        return ids


def stop_jobs(engine: Engine, search_id: int, trial_number: int | None = None) -> None:
    """Queued jobs are cancelled, running ones asked to stop (the whole search, or one trial)."""
    condition = Job.search_id == search_id
    if trial_number is not None:
        condition = and_(condition, Job.trial_number == trial_number)
    with writing(engine) as conn:
        jobs.cancel_where(conn, condition)
    if trial_number is None:
        with writing(engine) as conn:
            conn.execute(update(Search).where(Search.id == search_id, Search.status == "running").values(status="cancelled"))


def status_counts(engine: Engine, search_ids: list[int]) -> dict[int, dict[JobStatus, int]]:
    counts: dict[int, dict[JobStatus, int]] = {i: {} for i in search_ids}
    with reading(engine) as conn:
        stmt = select(Job.search_id, Job.status, func.count()).where(Job.search_id.in_(search_ids)).group_by(Job.search_id, Job.status)
        for search_id, status, n in conn.execute(stmt):
            counts[search_id][status] = n
    return counts
