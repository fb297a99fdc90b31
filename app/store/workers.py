"""Worker registry: who is alive, on which device, running what."""

from __future__ import annotations

from sqlalchemy import Engine, delete, insert, select, update

from app.store.db import reading, writing
from app.store.models import Worker, utcnow
from app.store.rows import WorkerRow


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


def busy_on_host(engine: Engine, host: str, within_seconds: float) -> int:
    """Workers on `host` running a job now: they share its cores."""
    from datetime import timedelta

    from sqlalchemy import func

    since = utcnow() - timedelta(seconds=within_seconds)
    stmt = (
        select(func.count())
        .select_from(Worker)
        .where(Worker.host == host, Worker.current_job_id.is_not(None), Worker.stopped_at.is_(None), Worker.last_heartbeat > since)
    )
    with reading(engine) as conn:
        return conn.execute(stmt).scalar_one()


def devices_seen(engine: Engine, within_seconds: float) -> list[str]:
    """Devices of the workers that beat within `within_seconds`, stopped since or not: what this installation runs on."""
    from datetime import timedelta

    since = utcnow() - timedelta(seconds=within_seconds)
    with reading(engine) as conn:
        return list(conn.execute(select(Worker.device).where(Worker.last_heartbeat > since).distinct()).scalars())


def alive_on_host(engine: Engine, host: str, within_seconds: float) -> int:
    """Live workers on `host`, busy or idle: they share its memory (app.costs.ceiling)."""
    from datetime import timedelta

    from sqlalchemy import func

    since = utcnow() - timedelta(seconds=within_seconds)
    stmt = select(func.count()).select_from(Worker).where(Worker.host == host, Worker.stopped_at.is_(None), Worker.last_heartbeat > since)
    with reading(engine) as conn:
        return conn.execute(stmt).scalar_one()


def most_devices_seen(engine: Engine, within_seconds: float) -> int | None:
    """The most devices one worker that beat within `within_seconds` offers (None: no worker seen)."""
    from datetime import timedelta

    from sqlalchemy import func

    since = utcnow() - timedelta(seconds=within_seconds)
    with reading(engine) as conn:
        return conn.execute(select(func.max(Worker.devices)).where(Worker.last_heartbeat > since)).scalar_one()
