"""The job log: lines a user reads on the job page (skipped files, classes left out, warnings)."""

from __future__ import annotations

from sqlalchemy import Engine, insert, select

from app.store.db import reading, writing
from app.store.models import Job, JobLog, utcnow


def add(engine: Engine, job_id: int, attempt: int, token: str, level: str, message: str) -> bool:
    with writing(engine) as conn:
        if conn.execute(select(Job.id).where(Job.id == job_id, Job.lease_token == token, Job.status == "running")).first() is None:
            return False
        conn.execute(insert(JobLog).values(job_id=job_id, attempt=attempt, level=level, message=message[:4000], created_at=utcnow()))
    return True


def lines(engine: Engine, job_id: int, limit: int = 1000) -> list[dict]:
    stmt = (
        select(JobLog.attempt, JobLog.level, JobLog.message, JobLog.created_at)
        .where(JobLog.job_id == job_id)
        .order_by(JobLog.id)
        .limit(limit)
    )
    with reading(engine) as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]
