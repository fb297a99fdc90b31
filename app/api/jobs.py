"""Jobs: submit, list, read, cancel, log and artifact downloads."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app.api.deps import EngineDep, IdentityDep, JobId, SettingsDep, job_or_404, may_change
from app.api.schemas import BODY_ERRORS, ErrorOut, JobList, JobOut, LogLine, job_out
from app.devices import check_device_count, check_devices
from app.files import BEST_CHECKPOINT_FILE, CHECKPOINT_FILE, EMBEDDINGS_FILE, PER_QUERY_FILE
from app.spec import JobSpec, check_spec
from app.store import joblogs, jobs
from app.store.rows import JobRow, JobStatus
from app.text import Text

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

# Downloadable artifacts: a fixed list, so no request can name another file.
DOWNLOADS = {
    "checkpoint": (CHECKPOINT_FILE, "application/octet-stream"),
    "best": (BEST_CHECKPOINT_FILE, "application/octet-stream"),
    "embeddings": (EMBEDDINGS_FILE, "application/octet-stream"),
    "per_query": (PER_QUERY_FILE, "application/octet-stream"),
}


@router.post("", status_code=201, response_model=JobOut, responses=BODY_ERRORS)
async def create_job(spec: JobSpec, settings: SettingsDep, engine: EngineDep, identity: IdentityDep) -> JobOut:
    await run_in_threadpool(check_spec, spec, settings)
    await run_in_threadpool(check_devices, engine, {spec.device}, "device")
    await run_in_threadpool(check_device_count, engine, spec.devices, "devices")
    row = await run_in_threadpool(jobs.submit, engine, spec, owner=identity.name, max_attempts=settings.max_attempts)
    return job_out(row)


@router.get("", response_model=JobList)
def list_jobs(
    engine: EngineDep,
    status: Annotated[JobStatus | None, Query()] = None,
    q: Annotated[Text | None, Query(max_length=200, description="Search in job names")] = None,
    sweep_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    sort: Annotated[
        Literal[jobs.SORTS], Query(description="Column to sort by, '-' first for descending; jobs without a value come last")
    ] = "-id",  # type: ignore[valid-type]
) -> JobList:
    rows, total = jobs.list_jobs(engine, status=status, q=q, sweep_id=sweep_id, limit=limit, offset=offset, sort=sort)
    return JobList(jobs=with_queue_positions(engine, rows), total=total, limit=limit, offset=offset)


def with_queue_positions(engine: Engine, rows: list[JobRow]) -> list[JobOut]:
    """JobOut of each row, a queued job's with its place in the queue (one query for the page)."""
    places = jobs.queue_positions(engine, [r.id for r in rows if r.status == "queued"])
    return [job_out(r, places.get(r.id)) for r in rows]


@router.get("/{job_id}", response_model=JobOut, responses={404: {"model": ErrorOut}})
def get_job(job_id: JobId, engine: EngineDep) -> JobOut:
    return with_queue_positions(engine, [job_or_404(engine, job_id)])[0]


@router.post(
    "/{job_id}/cancel", response_model=JobOut, responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 409: {"model": ErrorOut}}
)
def cancel_job(job_id: JobId, engine: EngineDep, identity: IdentityDep) -> JobOut:
    job = job_or_404(engine, job_id)
    may_change(identity, job.owner, "job")
    if job.ended:
        raise HTTPException(409, f"job {job_id} has already ended ({job.status})")
    return job_out(jobs.cancel(engine, job_id))


@router.get("/{job_id}/logs", response_model=list[LogLine], responses={404: {"model": ErrorOut}})
def get_job_logs(job_id: JobId, engine: EngineDep) -> list[LogLine]:
    job_or_404(engine, job_id)
    return [LogLine(**line) for line in joblogs.lines(engine, job_id)]


@router.get("/{job_id}/download/{artifact}", response_class=FileResponse, responses={404: {"model": ErrorOut}})
def download_artifact(
    job_id: JobId, artifact: Literal["checkpoint", "best", "embeddings", "per_query"], engine: EngineDep, settings: SettingsDep
) -> FileResponse:
    job_or_404(engine, job_id)
    filename, media_type = DOWNLOADS[artifact]
    path = settings.job_dir(job_id) / filename
    if not path.is_file():
        raise HTTPException(404, f"job {job_id} has no {artifact} yet")
    return FileResponse(path, media_type=media_type, filename=f"job{job_id}-{filename}")
