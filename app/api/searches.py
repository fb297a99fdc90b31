"""Searches: an Optuna study whose trials are ordinary queued jobs (app/search.py drives it)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app import search
from app.api.deps import EngineDep, IdentityDep, SettingsDep, may_change
from app.api.schemas import BODY_ERRORS, ErrorOut
from app.api.sweeps import recommendations
from app.devices import check_device_count, check_devices
from app.search_spec import SearchSpec, check_search
from app.store import searches
from app.store.rows import JobStatus, SearchRow

router = APIRouter(prefix="/api/searches", tags=["searches"])
SearchId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Search id")]


class SearchCreated(BaseModel):
    id: int
    name: str
    job_ids: list[int] = Field(description="The trials queued at once (up to `parallel`); later ones follow as trials end")


class SearchSummary(BaseModel):
    id: int
    name: str
    owner: str
    status: str = Field(description="running, finished (budget spent, every trial told) or cancelled")
    created_at: datetime
    finished_at: datetime | None
    space: list[str]
    sampler: str
    pruner: str
    trials: int
    parallel: int
    status_counts: dict[JobStatus, int]


class TrialOut(BaseModel):
    number: int
    state: str = Field(description="The study's state: running, complete, pruned, fail")
    params: dict[str, Any]
    value: float | None = Field(description="Selection metric on validation at the best step (mean over the trial's seeds)")
    best_step: int | None
    steps: int = Field(description="Training steps this trial spent (all its seeds)")
    pruned_at: int | None = Field(description="The step at which the pruner stopped it")
    job_ids: list[int]
    statuses: list[JobStatus]
    intermediate: dict[int, float] = Field(description="Step -> value reported to the pruner")


class Budget(BaseModel):
    steps_spent: int
    grid_steps: int | None = Field(
        description="Training steps the same number of trials would spend trained to the end (a grid of the same resolution)"
    )
    fraction: float | None


class BestTrial(BaseModel):
    number: int
    value: float
    params: dict[str, Any]


class SearchDetail(SearchSummary):
    spec: dict[str, Any]
    select_metric: str
    trial_list: list[TrialOut]
    best: BestTrial | None
    budget: Budget
    recommendations: list[dict[str, Any]] = Field(description="The sweep recommender's rules applied to the completed trials")
    importance: dict[str, float] | None = Field(
        description="fANOVA importance of each parameter (Optuna), when more than one varies and at least 3 trials completed"
    )


class SearchList(BaseModel):
    searches: list[SearchSummary]
    total: int


def _summary(row: SearchRow, counts: dict[JobStatus, int]) -> dict:
    spec = row.spec
    return dict(
        id=row.id,
        name=row.name,
        owner=row.owner,
        status=row.status,
        created_at=row.created_at,
        finished_at=row.finished_at,
        space=list(spec["space"]),
        sampler=spec["sampler"],
        pruner=spec["pruner"],
        trials=spec["trials"],
        parallel=spec["parallel"],
        status_counts=counts,
    )


def _search_or_404(engine, search_id: int) -> SearchRow:
    row = searches.get(engine, search_id)
    if row is None:
        raise HTTPException(404, f"search {search_id} does not exist")
    return row


@router.post("", status_code=201, response_model=SearchCreated, responses=BODY_ERRORS)
async def create_search(spec: SearchSpec, settings: SettingsDep, engine: EngineDep, identity: IdentityDep) -> SearchCreated:
    corners = await run_in_threadpool(check_search, spec, settings)  # every trial lies between them
    axis = lambda name: f"space.{name}" if name in spec.space else f"base.{name}"  # noqa: E731
    await run_in_threadpool(check_devices, engine, {s.device for s in corners}, axis("device"))
    await run_in_threadpool(check_device_count, engine, max(s.devices for s in corners), axis("devices"))
    row = await run_in_threadpool(search.create, engine, spec, owner=identity.name, settings=settings)
    job_ids = [j.id for j in await run_in_threadpool(searches.trial_jobs, engine, row.id)]
    return SearchCreated(id=row.id, name=row.name, job_ids=job_ids)


@router.get("", response_model=SearchList)
def list_searches(
    engine: EngineDep, limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0, le=10**9)] = 0
) -> SearchList:
    rows, total = searches.list_searches(engine, limit=limit, offset=offset)
    counts = searches.status_counts(engine, [r.id for r in rows])
    return SearchList(searches=[SearchSummary(**_summary(r, counts[r.id])) for r in rows], total=total)


@router.get("/{search_id}", response_model=SearchDetail, responses={404: {"model": ErrorOut}})
def get_search(search_id: SearchId, engine: EngineDep, settings: SettingsDep) -> SearchDetail:
    row = _search_or_404(engine, search_id)
    spec = SearchSpec.model_validate(row.spec)
    views = search.trial_views(engine, row)
    jobs = searches.trial_jobs(engine, search_id)
    counts: dict[JobStatus, int] = {}
    for j in jobs:
        counts[j.status] = counts.get(j.status, 0) + 1
    done = [v for v in views if v.state == "complete" and v.value is not None]
    top = max(done, key=lambda v: v.value) if done else None  # type: ignore[arg-type, return-value]
    completed = {j for v in done for j in v.job_ids}
    # A sweep's rules over the completed trials' jobs: the same per-query paired bootstrap, selection metric and locked test.
    recs = recommendations(settings, [j for j in jobs if j.id in completed], list(spec.space))
    return SearchDetail(
        **_summary(row, counts),
        spec=row.spec,
        select_metric=spec.select_metric,
        trial_list=[TrialOut(**vars(v)) for v in views],
        best=BestTrial(number=top.number, value=top.value, params=top.params) if top else None,  # type: ignore[arg-type]
        budget=Budget(**search.budget(spec, views)),
        recommendations=recs,
        importance=search.importance(engine, row),
    )


@router.post("/{search_id}/cancel", response_model=SearchSummary, responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}})
def cancel_search(search_id: SearchId, engine: EngineDep, identity: IdentityDep, settings: SettingsDep) -> SearchSummary:
    """Queued trials are cancelled, running ones asked to stop; no new trial is asked for."""
    row = _search_or_404(engine, search_id)
    may_change(identity, row.owner, "search")
    search.cancel(engine, search_id, settings)
    row = _search_or_404(engine, search_id)
    return SearchSummary(**_summary(row, searches.status_counts(engine, [search_id])[search_id]))
