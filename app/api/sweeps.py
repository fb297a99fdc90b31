"""Sweeps: create one job per grid point and seed, compare them, recommend a margin."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app import job_evidence as evidence
from app.advisor import DEFAULT_SELECT, recommend_from_sweep
from app.api.deps import EngineDep, IdentityDep, SettingsDep, SweepId, may_change
from app.api.schemas import BODY_ERRORS, ErrorOut, JobOut, job_out
from app.devices import check_device_count, check_devices
from app.explorer import aligned
from app.spec import SweepSpec, check_sweep
from app.store import jobs, sweeps
from app.store.rows import JobRow, JobStatus, SweepRow

router = APIRouter(prefix="/api/sweeps", tags=["sweeps"])


class SweepCreated(BaseModel):
    id: int
    name: str
    job_ids: list[int]


class SweepSummary(BaseModel):
    id: int
    name: str
    owner: str
    created_at: datetime
    axes: list[str]
    seeds: list[int]
    jobs: int
    status_counts: dict[JobStatus, int]


class Interval(BaseModel):
    mean: float
    low: float
    high: float
    runs: int


class PointOut(BaseModel):
    point: dict[str, Any] = Field(description="The grid point: every axis but the seed and the loss")
    margin: float | None
    mean: float = Field(description="Selection metric at each run's best checkpoint, averaged over seeds")
    low: float
    high: float
    interval: str = Field(description="How the 95% interval was made")
    runs: int
    seeds: list[int]
    job_ids: list[int]
    steps: list[int | None] = Field(description="Each run's best step")
    at_best: bool = Field(description="False when a run recorded no best checkpoint (its last evaluation stands in)")
    test: Interval | None = Field(description="The locked test at the best checkpoints (read by no selection)")


class Recommendation(BaseModel):
    loss: str
    select_metric: str
    margin: float | None = Field(description="The margin of the best point by the selection metric")
    point: dict[str, Any]
    best: PointOut
    starred: bool = Field(description="True only when the best point is better than every other point of its loss beyond the noise")
    tied: list[dict[str, Any]] = Field(description="Points not distinguishable from the best")
    comparisons: list[dict[str, Any]] = Field(description="Every other point against the best, with the test used")
    statement: str
    test_used: str
    validation_classes: int | None
    validation_queries: int | None
    points: list[PointOut]
    locked_test: Interval | None = Field(description="The recommended point's locked test score, reported once")
    rule: str


class SweepDetail(SweepSummary):
    spec: dict[str, Any]
    job_list: list[JobOut]
    recommendations: list[Recommendation]


class LayoutPoints(BaseModel):
    index: list[int] = Field(description="Dataset index of each point: row i is the same image in every job's layout")
    label: list[int]


class JobLayout(BaseModel):
    x: list[float]
    y: list[float]


class SweepLayouts(BaseModel):
    status: Literal["ready"]
    job_ids: list[int] = Field(description="The succeeded jobs laid out, by id")
    points: LayoutPoints
    layouts: dict[int, JobLayout] = Field(description="Per job id, the 2-D position of every point")
    class_names: list[str] = Field(description="Name of each label")
    common_points: int = Field(
        description=f"Validation images all these jobs share; `points` is a seeded sample of at most "
        f"{aligned.MAX_POINTS} of them (fewer in a sweep of many jobs)"
    )
    skipped: list[int] = Field(description="Succeeded jobs left out: they stored no embeddings")
    seconds: float = Field(description="How long the aligned layout took")


class LayoutsComputing(BaseModel):
    status: Literal["computing"]


class SweepList(BaseModel):
    sweeps: list[SweepSummary]
    total: int


def _summary(row: SweepRow, counts: dict[JobStatus, int]) -> dict:
    spec = row.spec
    return dict(
        id=row.id,
        name=row.name,
        owner=row.owner,
        created_at=row.created_at,
        axes=list(spec.get("grid", {})),
        seeds=spec.get("seeds", [0]),
        jobs=sum(counts.values()),
        status_counts=counts,
    )


@router.post("", status_code=201, response_model=SweepCreated, responses=BODY_ERRORS)
async def create_sweep(sweep: SweepSpec, settings: SettingsDep, engine: EngineDep, identity: IdentityDep) -> SweepCreated:
    specs = await run_in_threadpool(check_sweep, sweep, settings)
    await run_in_threadpool(check_devices, engine, {s.device for s in specs}, "grid.device" if "device" in sweep.grid else "base.device")
    await run_in_threadpool(
        check_device_count, engine, max(s.devices for s in specs), "grid.devices" if "devices" in sweep.grid else "base.devices"
    )
    row, job_ids = await run_in_threadpool(sweeps.create, engine, sweep, specs, owner=identity.name, max_attempts=settings.max_attempts)
    return SweepCreated(id=row.id, name=row.name, job_ids=job_ids)


@router.get("", response_model=SweepList)
def list_sweeps(
    engine: EngineDep, limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0, le=10**9)] = 0
) -> SweepList:
    rows, total = sweeps.list_sweeps(engine, limit=limit, offset=offset)
    counts = sweeps.status_counts(engine, [r.id for r in rows])
    return SweepList(sweeps=[SweepSummary(**_summary(r, counts[r.id])) for r in rows], total=total)


def _sweep_or_404(engine, sweep_id: int) -> SweepRow:
    row = sweeps.get(engine, sweep_id)
    if row is None:
        raise HTTPException(404, f"sweep {sweep_id} does not exist")
    return row


@router.get("/{sweep_id}", response_model=SweepDetail, responses={404: {"model": ErrorOut}})
def get_sweep(sweep_id: SweepId, engine: EngineDep, settings: SettingsDep) -> SweepDetail:
    row = _sweep_or_404(engine, sweep_id)
    rows, _ = jobs.list_jobs(engine, sweep_id=sweep_id, limit=10_000)
    job_list = [job_out(r) for r in reversed(rows)]  # in creation order
    counts: dict[JobStatus, int] = {}
    for j in job_list:
        counts[j.status] = counts.get(j.status, 0) + 1
    summary = _summary(row, counts)
    recs = recommendations(settings, rows, summary["axes"])
    return SweepDetail(**summary, spec=row.spec, job_list=job_list, recommendations=[Recommendation(**r) for r in recs])


_RECOMMENDED: OrderedDict[tuple, list[dict]] = OrderedDict()  # a live sweep's page asks every 3 s: bootstrap once per set of finished runs


def recommendations(settings, rows: list[JobRow], axes: list[str]) -> list[dict]:
    """The advisor's reading of the sweep, with every succeeded run's per-query values where it wrote them."""
    done = [r for r in rows if r.status == "succeeded"]
    key = (str(settings.home), tuple(axes), tuple((r.id, str(r.finished_at)) for r in done))
    if key not in _RECOMMENDED:
        _RECOMMENDED[key] = _recommend(settings, done, axes)
        while len(_RECOMMENDED) > 32:
            _RECOMMENDED.popitem(last=False)
    return _RECOMMENDED[key]


def _recommend(settings, done: list[JobRow], axes: list[str]) -> list[dict]:
    arrays = {r.id: evidence.per_query(settings.job_dir(r.id)) for r in done}
    metric = next(((r.summary or {}).get("select_metric") for r in done if (r.summary or {}).get("select_metric")), None)
    metric = metric or next((r.spec.get("select_metric") for r in done if r.spec.get("select_metric")), None) or DEFAULT_SELECT
    first = next((r for r in done if arrays[r.id] is not None), done[0] if done else None)
    classes = None
    if first is not None:
        found = arrays[first.id]
        classes = evidence.validation_classes(settings.job_dir(first.id), found["indices"] if found and "indices" in found else None)
    return recommend_from_sweep([r.as_dict() for r in done], axes, arrays, select_metric=metric, validation_classes=classes)


@router.post("/{sweep_id}/cancel", response_model=SweepSummary, responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}})
def cancel_sweep(sweep_id: SweepId, engine: EngineDep, identity: IdentityDep) -> SweepSummary:
    row = _sweep_or_404(engine, sweep_id)
    may_change(identity, row.owner, "sweep")
    sweeps.cancel(engine, sweep_id)
    return SweepSummary(**_summary(row, sweeps.status_counts(engine, [sweep_id])[sweep_id]))


@router.get(
    "/{sweep_id}/layouts",
    response_model=SweepLayouts,
    responses={
        202: {"model": LayoutsComputing, "description": "The layouts are being computed (in the background): ask again in a few seconds"},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut, "description": "Fewer than 2 succeeded jobs with embeddings, or jobs that share no images"},
        500: {"model": ErrorOut, "description": "The last computation failed (reported once; the next call tries again)"},
    },
)
def get_layouts(sweep_id: SweepId, engine: EngineDep, settings: SettingsDep) -> SweepLayouts | JSONResponse:
    """The succeeded jobs' validation embeddings in 2-D, aligned (umap's AlignedUMAP) so that an image sits in about the
    same place in every job's layout. Computed once per set of succeeded jobs and kept under the sweep's folder."""
    _sweep_or_404(engine, sweep_id)
    rows, _ = jobs.list_jobs(engine, sweep_id=sweep_id, limit=10_000)
    try:
        payload, found = aligned.layouts(settings, sweep_id, rows)
    except aligned.NotComparable as e:
        raise HTTPException(409, str(e)) from None
    except aligned.LayoutFailed as e:
        raise HTTPException(e.status, str(e)) from None
    if payload is None:
        return JSONResponse({"status": "computing"}, status_code=202)
    return SweepLayouts(**{**payload, "status": "ready", "skipped": found.skipped})
