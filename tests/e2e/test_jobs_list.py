"""The jobs list with 1,000 jobs, in Chromium: pages of 50, filters, and rows that change without a reload."""

from __future__ import annotations

import time

import pytest

from app.spec import JobSpec
from app.store import jobs
from tests.e2e.conftest import screenshot, wait_js
from tests.e2e.test_dashboard import real_errors

pytestmark = pytest.mark.e2e
N = 1000


def rows(page) -> list[str]:
    return page.locator("#jobs-body tr").evaluate_all("trs => trs.map(tr => tr.dataset.jobId)")


def test_a_thousand_jobs_page_filter_and_live_badges(procs, engine, page):
    # Written through the store on the server's EMBEDLAB_HOME: a thousand API calls would only slow the test.
    jobs.submit_many(
        engine, [JobSpec(name=f"run {i:04d}", steps=100, margin=round(0.1 * (i % 5), 1)) for i in range(N)], owner="local", max_attempts=1
    )
    url = procs.server(workers=0)

    t0 = time.monotonic()
    page.goto(url + "/")
    wait_js(page, "document.querySelectorAll('#jobs-body tr').length === 50")
    first_paint = time.monotonic() - t0
    assert first_paint < 5, f"the first page of 50 took {first_paint:.1f} s"
    assert rows(page)[0] == str(N) and rows(page)[-1] == str(N - 49)  # newest first
    assert page.locator("#page-info").inner_text() == "1–50 of 1,000"
    assert page.locator("#prev").is_disabled()
    screenshot(page, "jobs-1000")

    page.click("#next")
    wait_js(page, f"document.querySelector('#jobs-body tr').dataset.jobId === '{N - 50}'")
    assert page.locator("#page-info").inner_text() == "51–100 of 1,000"
    assert "offset=50" in page.url  # a reload or a shared link shows the same page

    page.fill("#filter-q", "run 012")
    wait_js(page, "document.querySelectorAll('#jobs-body tr').length === 10")
    assert page.locator("#page-info").inner_text() == "1–10 of 10"  # a new search starts on the first page
    assert sorted(page.locator("#jobs-body td.name-cell").all_inner_texts()) == [f"run 012{i}" for i in range(10)]

    # A change made elsewhere shows within a poll or two, without a reload.
    target = page.locator('#jobs-body tr[data-job-id="122"] .badge')
    assert target.inner_text() == "queued"
    jobs.cancel(engine, 122)
    wait_js(page, "document.querySelector('#jobs-body tr[data-job-id=\"122\"] .badge').textContent === 'cancelled'", 10)

    page.fill("#filter-q", "")
    page.select_option("#filter-status", "cancelled")
    wait_js(page, "document.querySelectorAll('#jobs-body tr').length === 1")
    assert rows(page) == ["122"]
    page.select_option("#filter-status", "succeeded")
    page.locator("#empty").wait_for(state="visible")
    assert page.locator("#empty").inner_text() == "No job matches these filters."
    assert not real_errors(page)
