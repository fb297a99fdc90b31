"""Job state: submit, list, get, cancel, and the worker's claim / heartbeat / finish.

The worker never writes SQL itself. Every write a worker makes carries the lease token
it got when claiming, and is refused once the lease was taken over, so a paused or
partitioned worker can never overwrite the outcome of the attempt that replaced it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Float, and_, case, cast, func, or_, select, update

from app.spec import JobSpec
from app.store.db import reading, writing
from app.store.models import Job, utcnow
from app.store.rows import STATUSES, TERMINAL, JobRow, JobStatus, TerminalStatus  # noqa: F401 - STATUSES, TERMINAL: read here by callers


def submit(engine: Engine, spec: JobSpec, *, owner: str = "local", max_attempts: int = 3, sweep_id: int | None = None) -> JobRow:
    return submit_many(engine, [spec], owner=owner, max_attempts=max_attempts, sweep_id=sweep_id)[0]


def submit_many(engine: Engine, specs: list[JobSpec], *, owner: str, max_attempts: int, sweep_id: int | None = None) -> list[JobRow]:
    with writing(engine) as conn:
        return insert_jobs(conn, specs, owner=owner, max_attempts=max_attempts, sweep_id=sweep_id)


def insert_jobs(conn: Connection, specs: list[JobSpec], *, owner: str, max_attempts: int, sweep_id: int | None) -> list[JobRow]:
    """Insert jobs inside the caller's write transaction (a sweep and its jobs are all or nothing)."""
    now = utcnow()
    rows = [
        dict(
            name=s.name,
            owner=owner,
            sweep_id=sweep_id,
            spec=s.model_dump(mode="json"),
            dataset=s.dataset,
            loss=s.loss,
            margin=s.margin,
            device=s.device,
            devices=s.devices,
            priority=s.priority,
            status="queued",
            attempts=0,
            max_attempts=max_attempts,
            cancel_requested=False,
            step=0,
            total_steps=s.steps,
            summary={},
            created_at=now,
            updated_at=now,
        )
        for s in specs
    ]
    # Bound parameters (not .values(**row)) so SQLAlchemy reuses one compiled statement.
    ids = list(conn.execute(Job.__table__.insert().returning(Job.id, sort_by_parameter_order=True), rows).scalars())
    by_id = {r["id"]: JobRow.of(r) for r in conn.execute(select(Job.__table__).where(Job.id.in_(ids))).mappings()}
    return [by_id[i] for i in ids]


def get(engine: Engine, job_id: int) -> JobRow | None:
    with reading(engine) as conn:
        row = conn.execute(select(Job.__table__).where(Job.id == job_id)).mappings().first()
        return JobRow.of(row) if row else None


# The jobs list's columns a client may sort by ("-name": descending); metrics are the latest evaluation's.
SORT_KEYS: dict[str, Any] = {
    "id": Job.id,
    "name": Job.name,
    "dataset": Job.dataset,
    "loss": Job.loss,
    "margin": Job.margin,
    "status": Job.status,
    "priority": Job.priority,
    "owner": Job.owner,
    "created_at": Job.created_at,
    "started_at": Job.started_at,
    "finished_at": Job.finished_at,
    "progress": cast(Job.step, Float) / func.nullif(Job.total_steps, 0),
    "sweep_id": Job.sweep_id,
    # The value at the best checkpoint, as the jobs list shows it (the latest evaluation until there is a best).
    **{
        f"metrics.{m}": func.coalesce(Job.summary[("best", "metrics", m.removeprefix("val/"))].as_float(), Job.summary[m].as_float())
        for m in ("val/mean_average_precision_at_r", "val/precision_at_1", "val/r_precision")
    },
    "metrics.val/loss": Job.summary["val/loss"].as_float(),
}
SORTS = tuple(k for key in SORT_KEYS for k in (key, f"-{key}"))


def order_by(sort: str) -> list[Any]:
    """ORDER BY for a SORTS value: jobs without a value (not finished, not evaluated) last either way, then newest first."""
    column = SORT_KEYS[sort.lstrip("-")]
    return [(column.desc() if sort.startswith("-") else column.asc()).nulls_last(), Job.id.desc()]


def list_jobs(
    engine: Engine,
    *,
    status: JobStatus | None = None,
    q: str | None = None,
    sweep_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
    sort: str = "-id",
) -> tuple[list[JobRow], int]:
    """One page in `sort` order (newest first by default), with the total count for pagination."""
    where = []
    if status:
        where.append(Job.status == status)
    if q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(Job.name.ilike(f"%{escaped}%", escape="\\"))
    if sweep_id is not None:
        where.append(Job.sweep_id == sweep_id)
    with reading(engine) as conn:
        total = conn.execute(select(func.count()).select_from(Job).where(*where)).scalar_one()
        rows = conn.execute(select(Job.__table__).where(*where).order_by(*order_by(sort)).limit(limit).offset(offset)).mappings().all()
    return [JobRow.of(r) for r in rows], total


def queue_positions(engine: Engine, job_ids: list[int]) -> dict[int, int]:
    """Place in the queue (1 = next) of those jobs that are queued, in claim order: priority, then age.
    Jobs a worker for another device would take, or waiting out a retry backoff, still count: an estimate."""
    if not job_ids:
        return {}
    queued = (
        select(Job.id, func.row_number().over(order_by=(Job.priority.desc(), Job.id.asc())).label("place"))
        .where(Job.status == "queued")
        .subquery()
    )
    with reading(engine) as conn:
        return {row.id: row.place for row in conn.execute(select(queued).where(queued.c.id.in_(job_ids)))}


def cancel(engine: Engine, job_id: int) -> JobRow | None:
    """A queued job is cancelled at once; a running one is asked to stop (its worker ends it)."""
    with writing(engine) as conn:
        cancel_where(conn, Job.id == job_id)
        row = conn.execute(select(Job.__table__).where(Job.id == job_id)).mappings().first()
        return JobRow.of(row) if row else None


def cancel_where(conn: Connection, condition: Any) -> None:
    now = utcnow()
    conn.execute(
        update(Job).where(condition, Job.status == "queued").values(status="cancelled", finished_at=now, updated_at=now, not_before=None)
    )
    conn.execute(update(Job).where(condition, Job.status == "running").values(cancel_requested=True, updated_at=now))


@dataclass(frozen=True)
class Claim:
    job_id: int
    attempt: int
    token: str
    spec: dict
    step: int  # the step the job had reached (0 unless a previous attempt checkpointed)


def claim(
    engine: Engine,
    worker_id: str,
    *,
    devices: tuple[str, ...],
    lease_seconds: float,
    run_device: str | Mapping[int, str],
    max_running_per_user: int = 0,
    free_devices: int = 1,
    all_devices: int | None = None,
) -> Claim | None:
    """Take the next queued job (priority, then age) that needs at most `free_devices` ranks, in one atomic statement.

    `run_device` is what the job runs on, or by the job's device count ({1: "cuda:1", 2: "cuda:1,2"}).
    A worker with `all_devices` and some of them busy takes nothing while the next job it could run with
    all of them needs more than are free: it waits for its attempts to end, so a many-device job is not
    passed over for ever by the one-device jobs queued after it.

    On PostgreSQL the subquery locks with FOR UPDATE SKIP LOCKED so concurrent claims
    pick different rows; SQLite drops FOR UPDATE, and there the single UPDATE runs under
    the database write lock, with `status = 'queued'` re-checked, which is as atomic.
    """
    now = utcnow()
    token = secrets.token_hex(16)
    eligible = [
        Job.status == "queued",
        Job.device.in_(devices),
        Job.devices <= (free_devices if all_devices is None else all_devices),
        or_(Job.not_before.is_(None), Job.not_before <= now),
    ]
    if max_running_per_user > 0:  # owners already at their limit wait
        busy = select(Job.owner).where(Job.status == "running").group_by(Job.owner).having(func.count() >= max_running_per_user)
        eligible.append(Job.owner.not_in(busy))
    next_id = (
        select(Job.id)
        .where(*eligible)
        .order_by(Job.priority.desc(), Job.id.asc())
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    stmt = (
        update(Job)
        .where(Job.id == next_id, Job.status == "queued", Job.devices <= free_devices)
        .values(
            status="running",
            attempts=Job.attempts + 1,
            lease_token=token,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            worker_id=worker_id,
            run_device=run_device if isinstance(run_device, str) else case(dict(run_device), value=Job.devices),
            started_at=func.coalesce(Job.started_at, now),
            updated_at=now,
            not_before=None,
            error=None,
        )
        .returning(Job.id, Job.attempts, Job.spec, Job.step)
    )
    with writing(engine) as conn:
        row = conn.execute(stmt).first()
    return Claim(row.id, row.attempts, token, row.spec, row.step) if row else None


def _owned(job_id: int, token: str) -> Any:
    return and_(Job.id == job_id, Job.lease_token == token, Job.status == "running")


HeartbeatAnswer = Literal["ok", "cancel", "lost"]


def heartbeat(
    engine: Engine, job_id: int, token: str, *, step: int, steps_per_second: float | None, lease_seconds: float, phase: str | None = None
) -> HeartbeatAnswer:
    """Renew the lease and report progress (and the phase after the steps); tells the worker whether to go on."""
    now = utcnow()
    with writing(engine) as conn:
        row = conn.execute(
            update(Job)
            .where(_owned(job_id, token))
            .values(
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                step=step,
                steps_per_second=steps_per_second,
                updated_at=now,
                phase=phase,
            )
            .returning(Job.cancel_requested)
        ).first()
    if row is None:
        return "lost"
    return "cancel" if row.cancel_requested else "ok"


def owns(engine: Engine, job_id: int, token: str) -> bool:
    with reading(engine) as conn:
        return conn.execute(select(Job.id).where(_owned(job_id, token))).first() is not None


def finish(engine: Engine, job_id: int, token: str, status: TerminalStatus, *, error: str | None = None, step: int | None = None) -> bool:
    """Record the outcome of the attempt holding `token`; False when the lease was lost."""
    now = utcnow()
    values: dict[str, Any] = dict(
        status=status, error=error, finished_at=now, updated_at=now, lease_token=None, lease_expires_at=None, phase=None
    )
    if step is not None:
        values["step"] = step
    with writing(engine) as conn:
        return conn.execute(update(Job).where(_owned(job_id, token)).values(**values)).rowcount == 1


def update_summary(engine: Engine, job_id: int, token: str, entries: dict[str, Any]) -> bool:
    """Merge `entries` (the best / baseline / test evidence) into the job's summary; False when the lease was lost."""
    with writing(engine) as conn:
        row = conn.execute(select(Job.summary).where(_owned(job_id, token)).with_for_update()).first()
        if row is None:
            return False
        conn.execute(update(Job).where(_owned(job_id, token)).values(summary={**(row.summary or {}), **entries}))
        return True


def release(engine: Engine, job_id: int, token: str, *, step: int) -> bool:
    """Give a job back to the queue (the worker is shutting down); not counted as a failure."""
    now = utcnow()
    with writing(engine) as conn:
        result = conn.execute(
            update(Job)
            .where(_owned(job_id, token))
            .values(status="queued", lease_token=None, lease_expires_at=None, worker_id=None, step=step, updated_at=now, phase=None)
        )
        return result.rowcount == 1


def retry_or_fail(engine: Engine, job_id: int, token: str, *, error: str, backoff_seconds: float) -> Literal["queued", "failed"] | None:
    """After an unexpected error: queue again after a backoff that doubles, or fail when attempts are used up."""
    now = utcnow()
    with writing(engine) as conn:
        row = conn.execute(select(Job.attempts, Job.max_attempts).where(_owned(job_id, token))).first()
        if row is None:
            return None
        if row.attempts >= row.max_attempts:
            values: dict[str, Any] = dict(status="failed", error=f"{error} (failed on all {row.attempts} attempts)", finished_at=now)
        else:
            delay = backoff_seconds * 2 ** (row.attempts - 1)
            values = dict(
                status="queued", error=f"attempt {row.attempts} failed: {error}", not_before=now + timedelta(seconds=delay), worker_id=None
            )
        conn.execute(
            update(Job).where(_owned(job_id, token)).values(lease_token=None, lease_expires_at=None, updated_at=now, phase=None, **values)
        )
        return values["status"]


def requeue_expired(engine: Engine, now: datetime | None = None) -> list[int]:
    """Jobs whose worker stopped renewing its lease go back to the queue, or fail when out of attempts."""
    now = now or utcnow()
    expired = and_(Job.status == "running", Job.lease_expires_at < now)
    with writing(engine) as conn:
        ids = list(conn.execute(select(Job.id).where(expired)).scalars())
        if not ids:
            return []
        lost = "worker lost (lease expired)"
        common = dict(lease_token=None, lease_expires_at=None, worker_id=None, updated_at=now, phase=None)
        conn.execute(update(Job).where(expired, Job.cancel_requested).values(status="cancelled", finished_at=now, **common))
        conn.execute(
            update(Job)
            .where(expired, Job.attempts >= Job.max_attempts)
            .values(status="failed", error=f"{lost}, failed on all attempts", finished_at=now, **common)
        )
        conn.execute(update(Job).where(expired).values(status="queued", error=f"attempt lost: {lost}", **common))
        return ids
