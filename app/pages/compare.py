"""The comparison page: any jobs side by side (its data comes from GET /api/compare)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.pages.render import render

router = APIRouter(include_in_schema=False)


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request, jobs: Annotated[str, Query(max_length=400)] = "") -> HTMLResponse:
    return render(request, "compare.html", {"nav": "jobs", "job_ids": jobs})
