"""Dependencies shared by the routers, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app import auth
from app.config import Settings
from app.store import jobs
from app.store.rows import JobRow


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


SettingsDep = Annotated[Settings, Depends(get_settings)]
# Ids in paths: bounded, so an absurd number is a 422, not a database overflow.
JobId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Job id")]
SweepId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Sweep id")]
EngineDep = Annotated[Engine, Depends(get_engine)]


class SignInRequired(Exception):
    """No valid identity: the API answers 401, a page redirects to the sign-in form."""


async def require_identity(request: Request) -> None:
    """Applied to every route of the app (see create_app); the few public paths pass through."""
    if auth.is_public(request.url.path):
        return
    settings: Settings = request.app.state.settings
    identity = await run_in_threadpool(auth.identify, request, request.app.state.engine, settings.auth == "on")
    if identity is None:
        raise SignInRequired()
    auth.check_csrf(request, identity)
    request.state.identity = identity


def get_identity(request: Request) -> auth.Identity:
    return request.state.identity


IdentityDep = Annotated[auth.Identity, Depends(get_identity)]


def may_change(identity: auth.Identity, owner: str, what: str) -> None:
    if not identity.may_change(owner):
        raise HTTPException(403, f"only {owner} (the owner) or an admin can change this {what}")


def job_or_404(engine: Engine, job_id: int) -> JobRow:
    job = jobs.get(engine, job_id)
    if job is None:
        raise HTTPException(404, f"job {job_id} does not exist")
    return job
