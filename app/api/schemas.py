"""Response models: the documented shapes REST clients rely on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from app.store.rows import JobRow, JobStatus


class Progress(BaseModel):
    step: int
    total: int


class Scored(BaseModel):
    step: int
    metrics: dict[str, float | None]  # metric, metric_low, metric_high (95% bootstrap interval over query images)


class TestScores(BaseModel):
    best: Scored
    final: Scored


class StoppedEarly(BaseModel):
    step: int
    reason: str


class JobOut(BaseModel):
    id: int
    name: str
    owner: str
    status: JobStatus
    spec: dict[str, Any]
    dataset: str
    loss: str
    margin: float
    priority: int
    sweep_id: int | None
    progress: Progress
    steps_per_second: float | None
    eta_seconds: float | None
    phase: str | None = None  # a running job's work after its last step, e.g. "laying out embeddings: 40%"
    queue_position: int | None = None  # a queued job's place in line (1 = next), in GET /api/jobs and /api/jobs/{id}
    metrics: dict[str, float | None]
    select_metric: str | None = None
    best: Scored | None = None
    baseline: Scored | None = None
    test: TestScores | None = None
    no_gain: str | None = None
    stopped_early: StoppedEarly | None = None
    attempts: int
    max_attempts: int
    device: str | None
    worker: str | None
    error: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobList(BaseModel):
    jobs: list[JobOut]
    total: int
    limit: int
    offset: int


class Series(BaseModel):
    step: list[int]
    value: list[float | None]


class MetricsOut(BaseModel):
    series: dict[str, Series]
    last_event_id: int


class LogLine(BaseModel):
    attempt: int
    level: str
    message: str
    created_at: datetime


class DatasetOut(BaseModel):
    name: str
    description: str
    classes: int | None
    images: int | None
    image_size: int | None


class DatasetList(BaseModel):
    datasets: list[DatasetOut]
    roots: list[str]
    folders: list[DatasetOut]


class FieldError(BaseModel):
    field: str
    reason: str
    loc: list[str | int] = []
    msg: str = ""
    type: str = ""


class ErrorOut(BaseModel):
    detail: list[FieldError] | str


EVIDENCE_KEYS = ("select_metric", "best", "baseline", "test", "no_gain", "stopped_early")


def summary_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """The job summary as JobOut fields: latest `val/` values under `metrics`, the evidence keys beside them."""
    return {"metrics": {k: v for k, v in summary.items() if k not in EVIDENCE_KEYS}, **{k: summary.get(k) for k in EVIDENCE_KEYS}}


def job_out(row: JobRow, queue_position: int | None = None) -> JobOut:
    sps, step, total = row.steps_per_second, row.step, row.total_steps
    eta = (total - step) / sps if row.status == "running" and sps else None
    return JobOut(
        id=row.id,
        name=row.name,
        owner=row.owner,
        status=row.status,
        spec=row.spec,
        dataset=row.dataset,
        loss=row.loss,
        margin=row.margin,
        priority=row.priority,
        sweep_id=row.sweep_id,
        progress=Progress(step=step, total=total),
        steps_per_second=sps,
        eta_seconds=eta,
        phase=row.phase,
        queue_position=queue_position,
        **summary_fields(row.summary or {}),
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        device=row.run_device,
        worker=row.worker_id,
        error=row.error,
        cancel_requested=row.cancel_requested,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


# A JSON body can be refused as not JSON (400), not sent as JSON (415) or invalid (422).
BODY_ERRORS: dict[int | str, dict] = {400: {"model": ErrorOut}, 415: {"model": ErrorOut}, 422: {"model": ErrorOut}}
