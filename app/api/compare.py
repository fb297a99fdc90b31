"""Any jobs side by side: each against the best of them, with the test used (the comparison page's data)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from app import job_evidence as evidence
from app.advisor import DEFAULT_SELECT, compare_jobs
from app.api.deps import EngineDep, SettingsDep
from app.api.schemas import ErrorOut, JobOut, job_out
from app.spec import SpecError
from app.store import jobs

router = APIRouter(prefix="/api/compare", tags=["compare"])
MAX_JOBS = 20


class CompareRow(BaseModel):
    job_id: int
    mean: float = Field(description="The selection metric at the job's best checkpoint")
    low: float
    high: float
    steps: list[int | None] = Field(description="The best step")
    method: str | None = Field(
        description="How the job was compared with the best: paired bootstrap | interval overlap (null for the best)"
    )
    diff: float = Field(description="The best job's value minus this one's")
    diff_low: float | None
    diff_high: float | None
    distinguishable: bool
    queries: int | None = Field(description="Validation queries the paired test used")
    locked_test: dict[str, Any] | None = Field(description="The locked test at the best checkpoint: mean, low, high")


class CompareOut(BaseModel):
    jobs: list[JobOut]
    select_metric: str
    best_job: int | None
    rows: list[CompareRow]


def parse_ids(text: str) -> list[int]:
    try:
        ids = list(dict.fromkeys(int(part) for part in text.split(",") if part.strip()))
    except ValueError:
        raise SpecError("jobs", "a comma-separated list of job ids, e.g. 1,2,3") from None
    if not 1 <= len(ids) <= MAX_JOBS or any(not 1 <= i < 2**31 for i in ids):
        raise SpecError("jobs", f"from 1 to {MAX_JOBS} positive job ids")
    return ids


@router.get("", response_model=CompareOut, responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}})
def compare(
    engine: EngineDep,
    settings: SettingsDep,
    ids: Annotated[str, Query(alias="jobs", max_length=400, description="Job ids, comma-separated")],
) -> CompareOut:
    wanted = parse_ids(ids)
    rows = [jobs.get(engine, i) for i in wanted]
    missing = [i for i, r in zip(wanted, rows) if r is None]
    if missing:
        raise HTTPException(404, f"no job {', '.join(map(str, missing))}")
    done = [r.as_dict() for r in rows if r.status == "succeeded"]  # the advisor reads plain job dicts
    arrays = {r["id"]: evidence.per_query(settings.job_dir(r["id"])) for r in done}
    metric = (
        next(((r["summary"] or {}).get("select_metric") for r in done if (r["summary"] or {}).get("select_metric")), None) or DEFAULT_SELECT
    )
    result = compare_jobs(done, arrays, metric)
    return CompareOut(
        jobs=[job_out(r) for r in rows],
        select_metric=result["select_metric"],
        best_job=result["best_job"],
        rows=[CompareRow(**r) for r in result["rows"]],
    )
