"""The embedding explorer's page (its data comes from app/api/embeddings.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.api.deps import EngineDep, JobId, job_or_404
from app.api.embeddings import MAX_K
from app.pages.render import render

router = APIRouter(include_in_schema=False)


@router.get("/jobs/{job_id}/explore", response_class=HTMLResponse)
def explore_page(job_id: JobId, request: Request, engine: EngineDep) -> HTMLResponse:
    job = job_or_404(engine, job_id)
    # The scatter (regl-scatterplot on regl) compiles its draw commands with `Function` (tried without: Chromium refuses
    # them under script-src 'self'), so this page alone allows eval; its spatial index runs without a blob: worker.
    return render(request, "explore.html", {"job": job, "max_k": MAX_K, "nav": "jobs"}, eval_scripts=True)
