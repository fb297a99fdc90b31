"""Dependencies shared by the routers, as Annotated aliases."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy import Engine

from app.config import Settings
from app.store import jobs


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]


def job_or_404(engine: Engine, job_id: int) -> dict:
    job = jobs.get(engine, job_id)
    if job is None:
        raise HTTPException(404, f"job {job_id} does not exist")
    return job
