"""The evidence pages in Chromium, on fabricated finished jobs: the sweep's recommendation, the comparison page,
the job page without an echoed margin, and the jobs list's selection."""

from __future__ import annotations

import httpx

from app.store.db import get_engine, init_db
from tests.e2e.conftest import screenshot
from tests.e2e.fabricate import finish_next

BASE = {"dataset": "digits", "steps": 20, "eval_every": 10, "classes_per_batch": 4, "samples_per_class": 8}


def test_sweep_recommendation_stars_only_a_clear_winner(procs, settings, page):
    url = procs.server()
    engine = get_engine(settings.db_url)
    init_db(engine)
    made = httpx.post(
        f"{url}/api/sweeps",
        json={
            "name": "<i>evidence</i>",
            "base": BASE,
            "seeds": [0, 1],
            "grid": {"loss": ["triplet", "contrastive"], "margin": [0.1, 0.2, 0.4]},
        },
    ).json()
    # Jobs are made loss-major, margin-minor, then seed: triplet 0.2 clearly best; contrastive all alike.
    levels = {
        ("triplet", 0.1): 0.40,
        ("triplet", 0.2): 0.55,
        ("triplet", 0.4): 0.41,
        ("contrastive", 0.1): 0.45,
        ("contrastive", 0.2): 0.451,
        ("contrastive", 0.4): 0.452,
    }
    detail = httpx.get(f"{url}/api/sweeps/{made['id']}").json()
    for job in sorted(detail["job_list"], key=lambda j: j["id"]):
        finish_next(engine, settings.home, levels[(job["spec"]["loss"], job["spec"]["margin"])])

    page.goto(f"{url}/sweeps/{made['id']}")
    page.locator(".recommendation").nth(1).wait_for()
    triplet = page.locator(".recommendation[data-loss='triplet']")
    contrastive = page.locator(".recommendation[data-loss='contrastive']")
    assert triplet.locator(".star").count() == 1
    assert (
        triplet.locator(".statement").inner_text()
        == "Margin 0.2 is better than every other triplet setting beyond the noise on this validation split."
    )
    assert contrastive.locator(".star").count() == 0
    statement = contrastive.locator(".statement").inner_text()
    assert statement.startswith("Margins 0.1-0.4 are within noise of each other") and "None is starred" in statement
    for box in (triplet, contrastive):
        assert box.locator(".locked-test").count() == 1 and "Locked test" in box.locator(".locked-test").inner_text()
        assert "paired bootstrap" in box.locator(".test-used").inner_text()
    assert page.locator("#runs tbody tr.starred").count() == 2  # triplet 0.2's two seeds
    assert page.locator("#runs tbody tr.tied").count() == 4 and page.locator("#runs tbody tr.best").count() == 2

    chart = "document.getElementById('metric-vs-margin')"
    page.wait_for_function(f"() => {chart}.data && {chart}.data.length > 0")
    panels = page.evaluate(f"{chart}.layout.annotations.map(a => a.text)")
    assert panels == ["<b>contrastive</b>", "<b>triplet</b>"]  # one panel per loss
    titles = page.evaluate(f"[{chart}.layout.xaxis.title.text, {chart}.layout.xaxis2.title.text]")
    assert titles == ["contrastive negative margin", "triplet margin"]
    ranges = page.evaluate(f"[{chart}.layout.yaxis.range, {chart}.layout.yaxis2.range]")
    assert all(0 <= lo < hi <= 1 for lo, hi in ranges)  # fitted to the data, never below 0
    legend = page.evaluate(f"{chart}.data.filter(t => t.showlegend !== false).map(t => t.name)")
    assert sorted(legend) == sorted(set(legend)) and len(legend) == 3  # each entry once, true for every panel
    colours = page.evaluate(f"{chart}.data.filter(t => t.mode === 'lines+markers').map(t => t.line.color)")
    assert len(set(colours)) == 1
    assert page.evaluate("document.getElementById('validation-overlay').data.length") > 0
    page.wait_for_function("() => (document.getElementById('distance-overlay').data || []).length === 24")
    screenshot(page, "sweep-evidence")
    assert [e for e in page.errors if "409" not in e] == []  # 409: fabricated jobs stored no embeddings to lay out


def test_compare_page_and_job_page(procs, settings, page):
    url = procs.server()
    engine = get_engine(settings.db_url)
    init_db(engine)
    ids = []
    for name, level in [("better", 0.6), ("<b>worse</b>", 0.3), ("untrained", 0.1)]:
        httpx.post(f"{url}/api/jobs", json={**BASE, "name": name}).raise_for_status()
        ids.append(finish_next(engine, settings.home, level))

    # The jobs list: tick two, then a third, and open the comparison.
    page.goto(url)
    page.locator("#jobs-body tr").nth(2).wait_for()
    assert page.locator("#compare-selected").is_disabled()
    for job_id in ids:
        page.locator(f"tr[data-job-id='{job_id}'] input.pick").check()
    assert page.locator("#compare-selected").inner_text() == "Compare selected (3)"
    assert page.locator(f"tr[data-job-id='{ids[2]}'] .no-gain").is_visible()  # its best is its untrained state
    assert not page.locator(f"tr[data-job-id='{ids[0]}'] .no-gain").is_visible()
    page.click("#compare-selected")
    page.wait_for_url(f"**/compare?jobs={ids[0]},{ids[1]},{ids[2]}")
    page.locator("#compare-table tbody tr").nth(2).wait_for()
    rows = page.locator("#compare-table tbody tr")
    assert rows.nth(0).get_attribute("class") == "best"
    assert "highest" in rows.nth(0).locator(".against").inner_text()
    assert rows.nth(1).locator(".against").inner_text().startswith("below, beyond the noise: difference")
    assert "paired bootstrap" in rows.nth(1).locator(".against").inner_text()
    assert rows.nth(1).locator("td").nth(1).inner_text().startswith("<b>worse</b>")  # a name is text, never markup
    assert rows.nth(0).locator(".locked-test").inner_text() != "–"
    overlay = "document.getElementById('validation-overlay').data"
    page.wait_for_function(f"() => ({overlay} || []).length > 0")
    names = page.evaluate(f"{overlay}.map(t => t.name)")
    assert "#2 &lt;b&gt;worse&lt;/b&gt;" in names  # escaped for Plotly
    assert sum(1 for n in names if n.endswith(": best step 20")) == 2  # rings at the best steps (the untrained job's is 0)
    page.wait_for_function("() => (document.getElementById('distance-overlay').data || []).length === 6")
    screenshot(page, "compare")
    assert httpx.get(f"{url}/api/compare", params={"jobs": "1,x"}).json()["detail"][0]["field"] == "jobs"
    assert httpx.get(f"{url}/api/compare", params={"jobs": "999"}).status_code == 404

    # The job page: no margin number read off its own distances; the evidence and the way to a sweep.
    page.goto(f"{url}/jobs/{ids[2]}")
    page.locator("#evidence div").first.wait_for()
    assert page.locator("#margin-suggestion").count() == 0 and "Suggested margin" not in page.content()
    assert page.locator("#no-gain").is_visible() and "untrained" in page.locator("#no-gain").inner_text()
    retrieval = "document.getElementById('retrieval-chart').data"
    page.wait_for_function(f"() => ({retrieval} || []).some(t => t.fill === 'tonexty')")
    refs = page.evaluate(f"{retrieval}.filter(t => t.name.endsWith('at step 0')).map(t => t.y[0])")
    assert len(refs) == 3
    screenshot(page, "job-evidence")
    page.click("#sweep-margin")
    page.wait_for_url("**/sweeps?from_job=*")
    page.wait_for_function("() => document.querySelector('.axis-values') && document.querySelector('.axis-values').value !== ''")
    assert page.locator(".axis-field").input_value() == "margin"
    assert page.locator(".axis-values").input_value() == "0.05, 0.1, 0.2, 0.4, 0.8"  # the job's 0.2, x0.25 to x4
    assert page.locator("#sweep-count").inner_text() == "10 jobs"
    screenshot(page, "sweep-from-job")
    assert page.errors == []
