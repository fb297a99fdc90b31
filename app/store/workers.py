"""Worker registry: who is alive, on which device, running what."""

from __future__ import annotations

from sqlalchemy import Engine, delete, insert, select, update

from app.store.db import reading, writing
from app.store.models import Job, Worker, utcnow
from app.store.rows import RunningJob, WorkerRow


def register(engine: Engine, worker_id: str, *, host: str, pid: int, device: str, version: str, devices: int = 1) -> None:
    now = utcnow()
    with writing(engine) as conn:
        conn.execute(delete(Worker).where(Worker.id == worker_id))
        conn.execute(
            insert(Worker).values(
                id=worker_id, host=host, pid=pid, device=device, devices=devices, version=version, started_at=now, last_heartbeat=now
            )
        )


def beat(engine: Engine, worker_id: str, current_job_id: int | None) -> None:
    """Alive; `current_job_id`: the first of the jobs it runs (all of them: `running_jobs`)."""
    with writing(engine) as conn:
        conn.execute(update(Worker).where(Worker.id == worker_id).values(last_heartbeat=utcnow(), current_job_id=current_job_id))


def stopped(engine: Engine, worker_id: str) -> None:
    with writing(engine) as conn:
        conn.execute(update(Worker).where(Worker.id == worker_id).values(stopped_at=utcnow(), current_job_id=None))


def list_workers(engine: Engine) -> list[WorkerRow]:
    with reading(engine) as conn:
        return [WorkerRow.of(r) for r in conn.execute(select(Worker.__table__).order_by(Worker.started_at.desc())).mappings()]


def other_hosts_alive(engine: Engine, host: str, within_seconds: float) -> list[str]:
    """Hosts other than `host` with a worker that beat recently (SQLite must stay on one host)."""
    from datetime import timedelta

    since = utcnow() - timedelta(seconds=within_seconds)
    stmt = select(Worker.host).where(Worker.host != host, Worker.stopped_at.is_(None), Worker.last_heartbeat > since).distinct()
    with reading(engine) as conn:
        return list(conn.execute(stmt).scalars())


def devices_busy_on_host(engine: Engine, host: str, within_seconds: float) -> int:
    """Devices (one per rank) that running jobs of live workers on `host` hold: they share its cores."""
    from datetime import timedelta

    from sqlalchemy import func

    since = utcnow() - timedelta(seconds=within_seconds)
    stmt = (
        select(func.coalesce(func.sum(Job.devices), 0))
        .select_from(Job)
        .join(Worker, Worker.id == Job.worker_id)
        .where(Job.status == "running", Worker.host == host, Worker.stopped_at.is_(None), Worker.last_heartbeat > since)
    )
    with reading(engine) as conn:
        return conn.execute(stmt).scalar_one()


def running_jobs(engine: Engine) -> dict[str, list[RunningJob]]:
    """Worker id -> the jobs it runs now and what each runs on ("cuda:0,1", "cpu x2"): a worker with several
    devices runs several jobs at once."""
    stmt = select(Job.worker_id, Job.id, Job.devices, Job.run_device).where(Job.status == "running").order_by(Job.id)
    out: dict[str, list[RunningJob]] = {}
    with reading(engine) as conn:
        for r in conn.execute(stmt):
            out.setdefault(r.worker_id, []).append(RunningJob(job_id=r.id, devices=r.devices, run_device=r.run_device))
    return out


def devices_seen(engine: Engine, within_seconds: float) -> list[str]:
    """Devices of the workers that beat within `within_seconds`, stopped since or not: what this installation runs on."""
    from datetime import timedelta

    since = utcnow() - timedelta(seconds=within_seconds)
    with reading(engine) as conn:
        return list(conn.execute(select(Worker.device).where(Worker.last_heartbeat > since).distinct()).scalars())


def slots_on_host(engine: Engine, host: str, within_seconds: float) -> int:
    """Devices the live workers on `host` offer, busy or idle: each is one attempt process at most, and they share
    its memory (app.costs.ceiling)."""
    from datetime import timedelta

    from sqlalchemy import func

    since = utcnow() - timedelta(seconds=within_seconds)
    stmt = select(func.coalesce(func.sum(Worker.devices), 0)).where(
        Worker.host == host, Worker.stopped_at.is_(None), Worker.last_heartbeat > since
    )
    with reading(engine) as conn:
        return conn.execute(stmt).scalar_one()


def most_devices_seen(engine: Engine, within_seconds: float) -> int | None:
    """The most devices one worker that beat within `within_seconds` offers (None: no worker seen)."""
    from datetime import timedelta

    from sqlalchemy import func

    since = utcnow() - timedelta(seconds=within_seconds)
    with reading(engine) as conn:
        return conn.execute(select(func.max(Worker.devices)).where(Worker.last_heartbeat > since)).scalar_one()
