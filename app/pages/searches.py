"""HTML pages for searches: the list with a form, and one search's trials (rendered through app.pages.render.render)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse

from app.api.deps import EngineDep
from app.pages.render import render
from app.store import searches

router = APIRouter(include_in_schema=False)


@router.get("/searches", response_class=HTMLResponse)
def searches_page(request: Request) -> HTMLResponse:
    return render(request, "searches.html", {"nav": "searches"})


@router.get("/searches/{search_id}", response_class=HTMLResponse)
def search_page(request: Request, search_id: Annotated[int, Path(ge=1, le=2**31 - 1)], engine: EngineDep) -> HTMLResponse:
    row = searches.get(engine, search_id)
    if row is None:
        raise HTTPException(404, f"search {search_id} does not exist")
    return render(request, "search.html", {"nav": "searches", "search": row})
