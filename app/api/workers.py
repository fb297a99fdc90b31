"""Workers: who is alive, on which device, running what."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic.dataclasses import dataclass as pydantic_dataclass

from app.api.deps import EngineDep, SettingsDep
from app.files import DiskSpace, disk_space
from app.store import workers
from app.store.models import utcnow
from app.store.rows import RunningJob, WorkerRow

router = APIRouter(prefix="/api/workers", tags=["workers"])


@pydantic_dataclass(frozen=True)
class WorkerOut(WorkerRow):
    """The stored row, whether the worker is alive, and the jobs it runs now with the devices each holds."""

    alive: bool
    running: list[RunningJob]


@router.get("", response_model=list[WorkerOut])
def list_workers(engine: EngineDep, settings: SettingsDep) -> list[WorkerOut]:
    """A worker is alive while it has not stopped and beat within a lease."""
    now = utcnow()
    running = workers.running_jobs(engine)
    return [
        WorkerOut(
            **w.as_dict(),
            alive=w.stopped_at is None and (now - w.last_heartbeat).total_seconds() < settings.lease_seconds,
            running=running.get(w.id, []),
        )
        for w in workers.list_workers(engine)
    ]


@router.get("/disk", response_model=DiskSpace)
def home_disk(settings: SettingsDep) -> DiskSpace:
    """The room left where workers write (EMBEDLAB_HOME: checkpoints, embeddings, the image cache, the SQLite file)."""
    return disk_space(settings.home_path)
