"""create_app(settings) -> FastAPI: database, routers, static files, templates."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from app import search
from app.api import backbones as backbones_api
from app.api import collections as collections_api
from app.api import compare as compare_api
from app.api import datasets as datasets_api
from app.api import deps, errors
from app.api import diagnostics as diagnostics_api
from app.api import embeddings as embeddings_api
from app.api import jobs as jobs_api
from app.api import metrics as metrics_api
from app.api import neighbourhoods as neighbourhoods_api
from app.api import searches as searches_api
from app.api import selection as selection_api
from app.api import session as session_api
from app.api import sweeps as sweeps_api
from app.api import workers as workers_api
from app.config import Settings
from app.datasets import BUNDLED, load_catalog
from app.explorer import collections as collections_layouts
from app.live import Feeds
from app.middleware import BodyLimit, MiB
from app.store import jobs
from app.store.db import get_engine, init_db

ROOT = Path(__file__).resolve().parent.parent


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    engine = get_engine(settings.db_url)
    init_db(engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Requeue jobs whose worker vanished even when no worker is polling.
        async def sweep_expired() -> None:
            while True:
                await run_in_threadpool(jobs.requeue_expired, engine)
                await run_in_threadpool(search.advance_all, engine, settings)  # searches ask for their next trials
                await asyncio.sleep(max(1.0, settings.lease_seconds / 3))

        task = asyncio.create_task(sweep_expired())
        # Read the bundled datasets now, so the first submission does not wait for them.
        warm = asyncio.create_task(run_in_threadpool(lambda: [load_catalog(name, None, []) for name in BUNDLED]))
        await run_in_threadpool(collections_api.resume, engine, settings)  # layouts a stopped server left unfinished
        yield
        task.cancel()
        warm.cancel()
        collections_layouts.stop_all()  # a layout child must not outlive its server (the next start resumes it)

    app = FastAPI(
        title="embedlab",
        version="0.1.0",
        lifespan=lifespan,
        description="Training server and dashboard for deep metric learning.",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(deps.require_identity)],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.feeds = Feeds(engine)
    errors.install(app)
    app.add_middleware(
        BodyLimit,
        larger={
            "/neighbors": embeddings_api.MAX_UPLOAD_BYTES + MiB,  # + room for the multipart framing
            "/embedding/distances": embeddings_api.MAX_UPLOAD_BYTES + MiB,
            "/embedding/selection": selection_api.SELECTION_BODY_BYTES,
            "/api/neighbourhoods/selection": selection_api.SELECTION_BODY_BYTES,
            "/api/collections": collections_api.MAX_IMPORT_BYTES,
        },
    )
    for module in (
        jobs_api,
        metrics_api,
        datasets_api,
        sweeps_api,
        searches_api,
        diagnostics_api,
        session_api,
        workers_api,
        embeddings_api,
        selection_api,
        compare_api,
        collections_api,
        neighbourhoods_api,
    ):
        app.include_router(module.router)
    app.include_router(backbones_api.router)
    from app.pages import compare as compare_pages
    from app.pages import docs as docs_pages
    from app.pages import explorer as explorer_pages
    from app.pages import jobs as job_pages
    from app.pages import searches as search_pages
    from app.pages import sweeps as sweep_pages

    for module in (job_pages, sweep_pages, search_pages, explorer_pages, compare_pages):
        app.include_router(module.router)
    docs_pages.install(app)  # /docs and /redoc with their scripts from here, not a CDN
    app.mount("/static", StaticFiles(directory=ROOT / "static"), name="static")
    return app
