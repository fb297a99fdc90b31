"""The embedding explorer in a browser: a finished job's scatter, a click, its neighbours."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import screenshot, wait_js

# The live server's worker inherits this: umap's compiled kernels are reused between runs.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "embedlab-tests" / "numba"))

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def finished_job(live) -> dict:
    job = live.submit(name="explorer <b>e2e</b>", dataset="digits", steps=20, eval_every=10, classes_per_batch=4, samples_per_class=8)
    live.ensure_worker()
    wait_for(lambda: live.job(job["id"])["status"] in ("succeeded", "failed"), 300, 0.5, "the job to finish")
    assert live.job(job["id"])["status"] == "succeeded"
    return job


def point_on_screen(page) -> tuple[float, float, int]:
    """Page coordinates of the first point of the first class trace, and its dataset index."""
    return tuple(page.evaluate("""() => {
        const gd = document.getElementById("plot");
        const t = gd.data[0], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const box = gd.getBoundingClientRect();
        return [box.left + xa._offset + xa.l2p(t.x[0]), box.top + ya._offset + ya.l2p(t.y[0]), t.customdata[0]];
    }"""))


def test_click_a_point_shows_its_neighbours(live, page, finished_job):
    page.goto(f"{live.url}/jobs/{finished_job['id']}/explore")
    wait_js(page, "document.querySelectorAll('#classes tbody tr').length > 0")
    wait_js(page, "(() => { const gd = document.getElementById('plot'); return !!(gd && gd._fullLayout && gd.data && gd.data.length > 10); })()")
    assert page.locator(".name").first.inner_text() == "explorer <b>e2e</b>"  # shown as text
    assert "recall@10" in page.locator("#preservation").inner_text()
    x, y, _ = point_on_screen(page)
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    wait_js(page, "document.querySelectorAll('#neighbors li').length === 10")
    assert page.locator("#panel").is_visible()
    thumbs = page.locator("#neighbors li img")
    assert thumbs.count() == 10
    wait_js(page, "[...document.querySelectorAll('#neighbors li img')].every((i) => i.complete && i.naturalWidth > 0)")
    distances = [float(t) for t in page.locator("#neighbors .ex-neighbor-dist").all_inner_texts()]
    assert distances == sorted(distances)
    # k is adjustable
    page.fill("#k", "4")
    page.locator("#k").dispatch_event("change")
    wait_js(page, "document.querySelectorAll('#neighbors li').length === 4")
    screenshot(page, "explorer")
    assert not page.errors, page.errors
