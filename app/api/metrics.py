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
from app.live import Feeds
from app.store import metrics
from app.text import Text

router = APIRouter(prefix="/api/jobs", tags=["metrics"])
KEEPALIVE_SECONDS = 15.0
MAX_EVENT_ID = 2**62
STATUS_FIELDS = {
    "status",
    "progress",
    "steps_per_second",
    "eta_seconds",
    "attempts",
    "error",
    "metrics",
    "device",
    "worker",
    "started_at",
    "finished_at",
    "cancel_requested",
    "phase",
}


@router.get("/{job_id}/metrics", response_model=MetricsOut, responses={404: {"model": ErrorOut}})
def get_metrics(
    job_id: JobId,
    engine: EngineDep,
    names: Annotated[Text | None, Query(max_length=2000, description="Comma-separated metric names; all when empty")] = None,
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
    after: Annotated[int | None, Query(ge=0, le=MAX_EVENT_ID, description="Resume after this event id (as Last-Event-ID)")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-Sent Events: `metrics` (new points, id = last point's id), `status` (on change) and `end`."""
    await run_in_threadpool(job_or_404, engine, job_id)
    cursor = after or 0
    # A short run of ASCII digits ("²".isdigit() is true and int("²") raises), bounded like `after`; anything else is ignored.
    if last_event_id and len(last_event_id) <= 20 and last_event_id.isascii() and last_event_id.isdigit():
        cursor = max(cursor, min(int(last_event_id), MAX_EVENT_ID))

    feeds: Feeds = request.app.state.feeds

    async def events() -> AsyncIterator[str]:
        nonlocal cursor
        feed = await feeds.join(job_id)
        last_status: dict | None = None
        try:
            yield "retry: 1000\n\n"
            while not await request.is_disconnected():
                ticked = feed.tick
                points = feed.points_after(cursor)
                if points is None:  # behind the feed: catch up from the database
                    points = await run_in_threadpool(metrics.since, engine, job_id, cursor)
                if points:
                    cursor = points[-1]["id"]
                    yield _sse("metrics", {"points": [{k: p[k] for k in ("name", "step", "value", "attempt")} for p in points]}, cursor)
                    continue
                row = feed.job
                if row is not None:
                    status = job_out(row).model_dump(mode="json", include=STATUS_FIELDS)
                    if status != last_status:
                        yield _sse("status", status)
                        last_status = status
                    if row.ended and cursor >= feed.cursor:
                        yield _sse("end", {"status": row.status}, cursor)
                        return
                try:
                    await asyncio.wait_for(ticked.wait(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keepalive\n\n"
        finally:
            feeds.leave(feed)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
