"""In Chromium: the jobs list sorted by a column header, a queued job's place on its page, and the pages at phone width."""

from __future__ import annotations

import pytest

from app.spec import JobSpec
from app.store import jobs
from tests.e2e.conftest import screenshot, wait_js
from tests.e2e.test_dashboard import real_errors

pytestmark = pytest.mark.e2e

ROW_IDS = "[...document.querySelectorAll('#jobs-body tr')].map((tr) => tr.dataset.jobId).join(',')"


def test_sort_by_a_header_and_see_the_queue(procs, engine, page):
    made = jobs.submit_many(
        engine,
        [JobSpec(name=n, margin=m, priority=p) for n, m, p in (("b", 0.3, 0), ("c", 0.1, 0), ("a", 0.2, 1))],
        owner="local",
        max_attempts=1,
    )
    b, c, a = (r.id for r in made)
    url = procs.server(workers=0)
    page.goto(f"{url}/")
    wait_js(page, f"{ROW_IDS} === '{a},{c},{b}'")  # newest first

    page.get_by_role("button", name="Margin").click()
    wait_js(page, f"{ROW_IDS} === '{b},{a},{c}'")  # numbers: largest first on the first click
    assert "sort=-margin" in page.url
    assert page.locator("th[aria-sort=descending]").inner_text().startswith("Margin")
    page.get_by_role("button", name="Margin").click()
    wait_js(page, f"{ROW_IDS} === '{c},{a},{b}'")
    page.get_by_role("button", name="Name").click()
    wait_js(page, f"{ROW_IDS} === '{a},{b},{c}'")
    page.reload()  # the order is in the URL
    wait_js(page, f"{ROW_IDS} === '{a},{b},{c}'")
    assert page.locator(f"#jobs-body tr[data-job-id='{a}'] small").inner_text() == "0 / 300 · next in the queue"
    screenshot(page, "jobs-sorted")

    page.goto(f"{url}/jobs/{c}")
    wait_js(page, "document.getElementById('progress-text').textContent.includes('in the queue')")
    assert page.locator("#progress-text").inner_text() == "step 0 / 300 · 3rd in the queue"
    assert real_errors(page) == []  # (a queued job's distances answer 404: nothing evaluated yet)


@pytest.mark.parametrize("path", ["/", "/jobs/1", "/jobs/new", "/sweeps"])
def test_pages_fit_a_phone(procs, engine, page, path):
    jobs.submit(engine, JobSpec(name="a job with a rather long name to see how it wraps"))
    url = procs.server(workers=0)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{url}{path}")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing pushes the page sideways
    nav = page.locator("nav.nav").bounding_box()
    assert nav["x"] >= 0 and nav["x"] + nav["width"] <= 390
    screenshot(page, f"phone{path.replace('/', '-')}")
