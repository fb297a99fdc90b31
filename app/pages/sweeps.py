"""HTML pages for sweeps and workers (rendered like every page, through app.pages.render.render)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from app.api.deps import EngineDep, SweepId
from app.pages.render import render
from app.spec import NOT_AXES, JobSpec
from app.store import sweeps

router = APIRouter(include_in_schema=False)


@router.get("/sweeps", response_class=HTMLResponse)
def sweeps_page(request: Request) -> HTMLResponse:
    axes = sorted(set(JobSpec.model_fields) - NOT_AXES)
    return render(request, "sweeps.html", {"nav": "sweeps", "axes": axes})


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse)
def sweep_page(request: Request, sweep_id: SweepId, engine: EngineDep) -> HTMLResponse:
    sweep = sweeps.get(engine, sweep_id)
    if sweep is None:
        raise HTTPException(404, f"sweep {sweep_id} does not exist")
    return render(request, "sweep.html", {"nav": "sweeps", "sweep": sweep})


@router.get("/workers", response_class=HTMLResponse)
def workers_page(request: Request) -> HTMLResponse:
    return render(request, "workers.html", {"nav": "workers"})
