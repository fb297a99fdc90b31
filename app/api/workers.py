"""Workers: who is alive, on which device, running what."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from app.api.deps import EngineDep, SettingsDep
from app.files import DiskSpace, disk_space
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


@router.get("", response_model=list[WorkerOut])
def list_workers(engine: EngineDep, settings: SettingsDep) -> list[WorkerOut]:
    """A worker is alive while it has not stopped and beat within a lease."""
    now = utcnow()
    return [
        WorkerOut(**w, alive=w["stopped_at"] is None and (now - w["last_heartbeat"]).total_seconds() < settings.lease_seconds)
        for w in workers.list_workers(engine)
    ]


@router.get("/disk", response_model=DiskSpace)
def home_disk(settings: SettingsDep) -> DiskSpace:
    """The room left where workers write (EMBEDLAB_HOME: checkpoints, embeddings, the image cache, the SQLite file)."""
    return disk_space(settings.home_path)
