"""The embedding explorer's page, for a job or an imported collection (their data: app/api/embeddings.py, app/api/collections.py)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from app.api.collections import CollectionId, base_of, collection_or_404, out
from app.api.deps import EngineDep, JobId, SettingsDep, job_or_404
from app.api.embeddings import MAX_K, job_base
from app.api.neighbourhoods import SOURCE, Source
from app.explorer import collections as files
from app.pages.render import render
from app.store import collections as store

router = APIRouter(include_in_schema=False)


def _explorer(request: Request, context: dict) -> HTMLResponse:
    # The scatter (regl-scatterplot on regl) compiles its draw commands with `Function` (tried without: Chromium refuses
    # them under script-src 'self'), so this page alone allows eval; its spatial index runs without a blob: worker.
    return render(request, "explore.html", {"max_k": MAX_K, **context}, eval_scripts=True)


@router.get("/jobs/{job_id}/explore", response_class=HTMLResponse)
def explore_page(job_id: JobId, request: Request, engine: EngineDep) -> HTMLResponse:
    job = job_or_404(engine, job_id)
    context = {"item": job, "what": "job", "base": job_base(job_id), "back": f"/jobs/{job_id}", "images": True, "uploads": True}
    return _explorer(request, {**context, "class_caption": "Validation split, per class", "nav": "jobs"})


@router.get("/collections/{collection_id}/explore", response_class=HTMLResponse)
def explore_collection(collection_id: CollectionId, request: Request, engine: EngineDep) -> HTMLResponse:
    row = collection_or_404(engine, collection_id)
    context = {"item": row, "what": "collection", "base": base_of(collection_id), "back": "/collections", "uploads": False}
    context |= {
        "images": row.images is not None,
        "class_caption": f"Per class, on a sample of up to {files.METRICS_SAMPLE:,} points",
        "nav": "collections",
    }
    return _explorer(request, context)


@router.get("/collections", response_class=HTMLResponse)
def collections_page(request: Request, engine: EngineDep, settings: SettingsDep) -> HTMLResponse:
    rows, total = store.list_collections(engine, limit=200)
    return render(request, "collections.html", {"collections": [out(r, settings) for r in rows], "total": total, "nav": "collections"})


def _explore_url(source: str) -> str:
    kind, _, number = source.partition(":")
    return f"/jobs/{number}/explore" if kind == "job" else f"/collections/{number}/explore"


def _nav(a: str, b: str) -> str:
    """The nav item a page belongs to follows what it shows, as the explorers' do: two jobs are a comparison of jobs (like
    /compare); with a collection on either side it is the Collections page's, whose form is where such a pair is named."""
    return "jobs" if a.startswith("job:") and b.startswith("job:") else "collections"


@router.get("/compare/neighbourhoods", response_class=HTMLResponse)
def neighbourhoods_page(request: Request, a: Source, b: Source) -> HTMLResponse:
    """Two embeddings of the same items (job:<id> or collection:<id> each): the items whose neighbours changed most."""
    for value in (a, b):
        if not SOURCE.match(value):
            raise HTTPException(404, f"{value!r} names no embedding: write job:<id> or collection:<id>")
    context = {"a": a, "b": b, "a_explore": _explore_url(a), "b_explore": _explore_url(b), "nav": _nav(a, b)}
    return render(request, "neighbourhoods.html", context)
