"""Per-job margin diagnostics: validation distance distributions, with where the margin sits.

No margin is suggested from one job: its distances were shaped by its own margin (triplet training drives the
negative-positive gap toward it), so any rule read off them returns the setting. A sweep answers that question.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from app.advisor import margin_lines
from app.api.deps import EngineDep, JobId, SettingsDep, job_or_404
from app.api.schemas import ErrorOut
from app.distance import Measure
from app.files import DISTANCES_FILE

router = APIRouter(prefix="/api/jobs", tags=["diagnostics"])


class Evaluation(BaseModel):
    step: int
    kind: Measure
    edges: list[float]
    positive: list[int]
    negative: list[int]
    overlap: float
    positive_median: float | None
    negative_median: float | None
    positive_p90: float | None
    margin_lines: list[dict[str, Any]]


class DistancesOut(BaseModel):
    loss: str
    margin: float
    kind: Measure
    evaluations: list[Evaluation]


@router.get("/{job_id}/distances", response_model=DistancesOut, responses={404: {"model": ErrorOut}})
def get_distances(job_id: JobId, engine: EngineDep, settings: SettingsDep) -> DistancesOut:
    """Histograms of positive- and negative-pair distances on the validation split, at each evaluation."""
    job = job_or_404(engine, job_id)
    path = settings.job_dir(job_id) / DISTANCES_FILE
    if not path.is_file():
        raise HTTPException(404, f"job {job_id} has no evaluation yet")
    data = json.loads(path.read_text())
    loss, margin, params = data["loss"], data["margin"], job.spec.get("loss_params", {})
    evaluations = [
        Evaluation(**e, margin_lines=margin_lines(loss, margin, e.get("positive_median"), params, e["kind"])) for e in data["evaluations"]
    ]
    return DistancesOut(loss=loss, margin=margin, kind=data["kind"], evaluations=evaluations)
