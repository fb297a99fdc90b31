"""Metric series (thinned on the server) and the live stream of new points (SSE)."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import EngineDep, JobId, job_or_404
from app.api.schemas import ErrorOut, MetricsOut, job_out
from app.store import jobs, metrics

router = APIRouter(prefix="/api/jobs", tags=["metrics"])
POLL_SECONDS = 0.25  # the stream reads the database, so points from any worker host arrive
KEEPALIVE_SECONDS = 15.0


@router.get("/{job_id}/metrics", response_model=MetricsOut, responses={404: {"model": ErrorOut}})
def get_metrics(
    job_id: JobId,
    engine: EngineDep,
    names: Annotated[str | None, Query(max_length=2000, description="Comma-separated metric names; all when empty")] = None,
    max_points: Annotated[int, Query(ge=10, le=100_000)] = metrics.DEFAULT_MAX_POINTS,
    step_min: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    step_max: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
) -> MetricsOut:
    job_or_404(engine, job_id)
    last_id = metrics.latest_id(engine, job_id)  # read first: the stream resumes after it without gaps
    wanted = [n.strip() for n in names.split(",") if n.strip()] if names else None
    series = metrics.series(engine, job_id, wanted, max_points=max_points, step_min=step_min, step_max=step_max)
    return MetricsOut(series=series, last_event_id=last_id)


def _sse(event: str, data: dict, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


@router.get("/{job_id}/stream", responses={200: {"content": {"text/event-stream": {}}}, 404: {"model": ErrorOut}})
async def stream_job(
    job_id: JobId,
    request: Request,
    engine: EngineDep,
    after: Annotated[int | None, Query(ge=0, le=2**62, description="Resume after this event id (as Last-Event-ID)")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-Sent Events: `metrics` (new points, id = last point's id), `status` (on change) and `end`."""
    await run_in_threadpool(job_or_404, engine, job_id)
    cursor = after or 0
    if last_event_id and last_event_id.isdigit():
        cursor = max(cursor, int(last_event_id))

    async def events() -> AsyncIterator[str]:
        nonlocal cursor
        last_status: dict | None = None
        idle = 0.0
        yield "retry: 1000\n\n"
        while not await request.is_disconnected():
            row = await run_in_threadpool(jobs.get, engine, job_id)
            points = await run_in_threadpool(metrics.since, engine, job_id, cursor)
            while points:
                cursor = points[-1]["id"]
                yield _sse("metrics", {"points": [{k: p[k] for k in ("name", "step", "value", "attempt")} for p in points]}, cursor)
                points = await run_in_threadpool(metrics.since, engine, job_id, cursor)
                idle = 0.0
            status = job_out(row).model_dump(mode="json", include={"status", "progress", "eta_seconds", "attempts", "error", "metrics", "device", "worker", "finished_at", "cancel_requested"})
            if status != last_status:
                yield _sse("status", status)
                last_status, idle = status, 0.0
            if row["status"] in jobs.TERMINAL:
                yield _sse("end", {"status": row["status"]}, cursor)
                return
            await asyncio.sleep(POLL_SECONDS)
            idle += POLL_SECONDS
            if idle >= KEEPALIVE_SECONDS:
                yield ": keepalive\n\n"
                idle = 0.0

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
