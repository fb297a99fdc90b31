"""The explorer with accounts on (EMBEDLAB_AUTH=on), in Chromium: an upload from a signed-in browser carries the
session's CSRF token."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.auth import create_user
from app.config import Settings
from app.store.db import get_engine, init_db
from tests.conftest import TEST_ENV, Processes, free_port, wait_for
from tests.e2e.conftest import wait_js
from tests.e2e.test_sign_in import PASSWORD, sign_in

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def signed_in_job(tmp_path_factory) -> Iterator[tuple[str, int, Path]]:
    """A server with accounts and one worker, ada's finished job, and an image to upload."""
    root = tmp_path_factory.mktemp("e2e-explorer-auth")
    home = root / "home"
    home.mkdir()
    engine = get_engine(Settings(home=home).db_url)
    init_db(engine)
    _, token = create_user(engine, "ada", password=PASSWORD, is_admin=False)
    engine.dispose()
    env = {**os.environ, **TEST_ENV, "EMBEDLAB_HOME": str(home), "EMBEDLAB_AUTH": "on", "PYTHONUNBUFFERED": "1"}
    env.pop("EMBEDLAB_DATABASE_URL", None)
    procs = Processes(env, root)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}"}
    try:
        procs.start("serve", "--port", str(port), "--workers", "0")
        procs.worker()
        wait_for(lambda: _answers(url), 60, 0.2, "the server to answer")
        spec = {"name": "upload here", "dataset": "digits", "steps": 20, "eval_every": 10, "classes_per_batch": 4, "samples_per_class": 8}
        job = httpx.post(f"{url}/api/jobs", json=spec, headers=auth, timeout=30).json()
        done = wait_for(
            lambda: (
                (j := httpx.get(f"{url}/api/jobs/{job['id']}", headers=auth, timeout=30).json())["status"] in ("succeeded", "failed") and j
            ),
            300,
            0.5,
            "the job to finish",
        )
        assert done["status"] == "succeeded", done["error"]
        image = root / "seven.png"
        pixels = np.zeros((8, 8), np.uint8)
        pixels[1, 1:7] = 255
        pixels[2:7, 5] = 255
        Image.fromarray(pixels).save(image)
        yield url, job["id"], image
    finally:
        procs.stop_all()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/login", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def open_explorer(page, url: str, job_id: int) -> None:
    page.goto(f"{url}/login?next=/jobs/{job_id}/explore")
    sign_in(page, "ada", PASSWORD)
    page.wait_for_url(f"{url}/jobs/{job_id}/explore")
    wait_js(page, "document.getElementById('explorer').dataset.ready === 'true'", 60)


def test_an_upload_from_a_signed_in_browser_carries_its_csrf_token(signed_in_job, page):
    url, job_id, image = signed_in_job
    open_explorer(page, url, job_id)
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(r.headers) if r.method == "POST" and "/neighbors" in r.url else None)
    page.set_input_files("#upload", str(image))
    wait_js(page, "document.querySelectorAll('#neighbors li').length === 10", 60)
    assert "Uploaded image placed at" in page.locator("#ex-status").inner_text()
    assert len(sent) == 1 and len(sent[0].get("x-csrf-token", "")) >= 16
    assert page.errors == []
