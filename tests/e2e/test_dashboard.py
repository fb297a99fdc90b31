"""The dashboard in a real browser against a real server and worker: submit, watch, cancel, escape."""

from __future__ import annotations

import re
import time

import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import screenshot, wait_js

pytestmark = pytest.mark.e2e

XSS = "<img src=x onerror=alert(1)>"
SMALL = {"dataset": "digits", "steps": 150, "eval_every": 50, "classes_per_batch": 4, "samples_per_class": 8}


def real_errors(page) -> list[str]:
    # A refused submission (4xx) is logged by Chromium as a failed resource: expected, not a bug.
    return [e for e in page.errors if "Failed to load resource" not in e]


def fill_form(page, values: dict) -> None:
    for name, value in values.items():
        field = page.locator(f"#f-{name}")
        if field.evaluate("n => n.tagName") == "SELECT":
            field.select_option(str(value))
        else:
            field.fill(str(value))


def loss_points(page) -> int:
    """Points on the loss chart's first trace; the chart has no traces until the first points arrive."""
    return page.evaluate(
        "(() => { const c = document.getElementById('loss-chart'); return c && c.data && c.data[0] ? c.data[0].x.length : 0; })()"
    )


def test_validation_error_shows_next_to_its_field(live, page):
    page.goto(f"{live.url}/jobs/new")
    fill_form(page, {**SMALL, "name": "bad margin", "margin": "-1"})
    page.click("#submit")
    error = page.locator('[data-error-for="margin"]')
    error.wait_for(state="visible")
    assert "greater than or equal to 0" in error.inner_text()
    assert page.locator("#row-margin").get_attribute("class").split().count("invalid") == 1
    assert "/jobs/new" in page.url  # nothing was submitted
    screenshot(page, "job-new-error")
    # Editing the field clears its error; a second refusal comes from the server's dataset check.
    fill_form(page, {"margin": "0.2", "classes_per_batch": "9", "samples_per_class": "1000"})
    assert error.is_hidden()
    page.click("#submit")
    page.locator('[data-error-for="classes_per_batch"]').wait_for(state="visible")
    assert "training classes" in page.locator('[data-error-for="classes_per_batch"]').inner_text()
    assert not real_errors(page)


def test_job_name_is_shown_as_text(live, page):
    job = live.submit(name=XSS, dataset="digits", steps=5, priority=-100)
    live.cancel(job["id"])  # the worker has better things to do; the name is what counts here
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(live.url + "/")
    link = page.locator(f'a[href="/jobs/{job["id"]}"]').first
    link.wait_for()
    assert link.inner_text() == XSS
    assert page.locator("#jobs-body img").count() == 0
    page.goto(f"{live.url}/jobs/{job['id']}")
    assert page.locator("#job-name").inner_text() == XSS
    assert page.title().startswith(f"Job {job['id']}: {XSS}")
    wait_js(page, "document.getElementById('loss-chart').data !== undefined")
    page.goto(f"{live.url}/jobs/new?clone={job['id']}")
    page.locator(".notice").wait_for()
    assert XSS in page.locator(".notice").inner_text()
    assert page.locator("main img").count() == 0
    assert dialogs == []
    assert not real_errors(page)


def test_cancel_a_running_job_from_its_page(live, page):
    job = live.submit(
        name="long one", dataset="digits", steps=1_000_000, eval_every=1_000_000, classes_per_batch=4, samples_per_class=8, priority=50
    )
    live.ensure_worker()
    page.on("dialog", lambda d: d.accept())
    page.goto(f"{live.url}/jobs/{job['id']}")
    try:
        wait_js(page, "document.getElementById('status').textContent === 'running'", 60)
        wait_for(lambda: loss_points(page) > 5, 30, 0.1, "more than 5 loss points")
        assert page.locator("#cancel").is_visible()
        page.click("#cancel")
        wait_js(page, "document.getElementById('status').textContent === 'cancelled'", 30)
    finally:  # a million steps would hold the module's one worker for the tests after this one
        live.cancel(job["id"])
    assert page.locator("#cancel").is_hidden()
    # It keeps its last evaluation (step 0 here): the explorer opens it, and the log says where it stopped.
    assert page.locator("#explore").is_visible()
    wait_js(page, "document.getElementById('log').textContent.includes('cancelled at step')")
    assert live.job(job["id"])["status"] == "cancelled"
    screenshot(page, "job-cancelled")
    assert not real_errors(page)


STEPS = 1500


def test_submit_through_the_form_and_watch_it_train(live, page):
    page.goto(f"{live.url}/jobs/new")
    wait_js(page, "document.querySelector('#f-dataset option[value=digits]').textContent.includes('classes')")
    # Long enough to be watched mid-run: an idle 2-core machine trains these digits batches at a few hundred steps/s.
    fill_form(page, {**SMALL, "steps": STEPS, "eval_every": STEPS // 3, "name": "e2e digits"})
    page.click("#submit")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    job = live.job(job_id)
    assert job["spec"]["steps"] == STEPS and job["spec"]["classes_per_batch"] == 4 and job["spec"]["image_size"] is None
    assert page.locator("#status").inner_text() in ("queued", "running")
    wait_js(page, "document.getElementById('loss-chart').data !== undefined")

    # The jobs list shows it (in another tab, polled).
    listing = page.context.new_page()
    listing.goto(live.url + "/")
    listing.locator(f'#jobs-body a[href="/jobs/{job_id}"]').wait_for()
    row = listing.locator(f'#jobs-body tr[data-job-id="{job_id}"]')

    # A worker trains it; the chart grows from the stream while the page stays open.
    live.ensure_worker()
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and loss_points(page) < STEPS - 10:
        seen.add(loss_points(page))
        if len(seen) == 3:
            screenshot(page, "job-running")
            screenshot(listing, "jobs-running")
        time.sleep(0.2)
    # Points arrive in the stream's batches (every ~0.5 s): at least one partial chart was drawn before the last step.
    assert any(0 < n < STEPS - 10 for n in seen), f"the chart did not grow while the job ran: {sorted(seen)}"
    # After the last step the worker writes the embeddings and the explorer's layout: that can take a while.
    wait_js(page, "document.getElementById('status').textContent === 'succeeded'", 300)
    wait_for(lambda: loss_points(page) == STEPS, 10, 0.1, f"all {STEPS} loss points")
    retrieval = page.evaluate(
        "document.getElementById('retrieval-chart').data.filter(t => t.mode === 'lines+markers').map(t => t.x.length)"
    )
    assert retrieval == [4, 4, 4]  # steps 0, 1/3, 2/3 and the end
    assert page.locator("#explore").is_visible()
    assert page.locator("#download-checkpoint").get_attribute("href") == f"/api/jobs/{job_id}/download/checkpoint"
    assert page.locator("#download-embeddings").is_visible()
    page.locator("#log .log-line").first.wait_for()
    screenshot(page, "job-succeeded")

    # Margin diagnostics: hardness shares per step, the last evaluation's histograms with the margin line, no echoed margin.
    hardness = page.evaluate("document.getElementById('hardness-chart').data.map(t => [t.name, t.x.length])")
    assert hardness == [["easy", STEPS], ["semi-hard", STEPS], ["hard", STEPS]]
    distances = live.get(f"/api/jobs/{job_id}/distances")
    last = distances["evaluations"][-1]
    wait_js(page, "document.getElementById('distance-step').max === '3'")  # four evaluations
    assert page.locator("#distance-step-value").inner_text() == f"step {STEPS} (4 of 4)"
    assert page.locator("#distance-overlap").inner_text() == f"{last['overlap']:.3f}"
    line_x = page.evaluate("document.getElementById('distance-chart').layout.shapes.map(s => s.x0)")
    assert line_x == pytest.approx([last["positive_median"] + 0.2])  # triplet: the median positive distance + the margin
    assert (
        "Suggested margin" not in page.content() and page.locator("#margin-advice a").get_attribute("href") == f"/sweeps?from_job={job_id}"
    )
    page.fill("#distance-step", "0")
    page.locator("#distance-step").dispatch_event("input")
    assert page.locator("#distance-step-value").inner_text() == "step 0 (1 of 4)"
    screenshot(page, "job-margin")

    # The list catches up by polling: badge and metrics.
    wait_for(lambda: row.locator(".badge").inner_text() == "succeeded", 10, 0.2, "the list to show succeeded")
    assert re.fullmatch(r"0\.\d{3}", row.locator("td.map").inner_text())
    screenshot(listing, "jobs")
    assert not real_errors(page)
