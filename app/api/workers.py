"""Workers: who is alive, on which device, running what; and the room left on EMBEDLAB_HOME's disk."""
from __future__ import annotations

import shutil
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from app.api.deps import EngineDep, SettingsDep
from app.store import workers
from app.store.models import utcnow

router = APIRouter(prefix="/api/workers", tags=["workers"])


class WorkerOut(BaseModel):
    id: str
    host: str
    pid: int
    device: str
    version: str
    current_job_id: int | None
    started_at: datetime
    last_heartbeat: datetime
    stopped_at: datetime | None
    alive: bool


class DiskOut(BaseModel):
    free_bytes: int
    total_bytes: int
    low: bool  # under 10% or 1 GB free, whichever is less: jobs that write images or checkpoints may not fit


class WorkersOut(BaseModel):
    workers: list[WorkerOut]
    home_disk: DiskOut  # where jobs write checkpoints, embeddings, the image cache and (SQLite) the database


LOW_BYTES = 1_000_000_000


@router.get("", response_model=WorkersOut)
def list_workers(engine: EngineDep, settings: SettingsDep) -> WorkersOut:
    """A worker is alive while it has not stopped and beat within a lease."""
    now = utcnow()
    usage = shutil.disk_usage(settings.home_path)
    return WorkersOut(
        workers=[
            WorkerOut(**w, alive=w["stopped_at"] is None and (now - w["last_heartbeat"]).total_seconds() < settings.lease_seconds)
            for w in workers.list_workers(engine)
        ],
        home_disk=DiskOut(free_bytes=usage.free, total_bytes=usage.total, low=usage.free < min(LOW_BYTES, usage.total // 10)),
    )
