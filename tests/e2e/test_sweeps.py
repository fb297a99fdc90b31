"""The sweep comparison page in Chromium: one curve per run, one point per margin."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import box_select_first_panel, screenshot, wait_js
from trainer.worker import Worker

# explorer off: these pages read the runs' metrics and stored validation embeddings, not the per-job UMAP layout.
BASE = {"dataset": "digits", "steps": 20, "eval_every": 10, "classes_per_batch": 4, "samples_per_class": 8, "explorer": False}


def test_sweep_comparison_page(procs, settings, page):
    url = procs.server()
    made = httpx.post(
        f"{url}/api/sweeps", json={"name": "cmp", "base": BASE, "grid": {"margin": [0.1, 0.6], "loss": ["triplet", "contrastive"]}}
    ).json()
    Worker(settings, threads=2).run(max_jobs=4, exit_when_idle=True)  # same EMBEDLAB_HOME as the server

    page.goto(f"{url}/sweeps/{made['id']}")
    page.wait_for_function("() => document.getElementById('loss-overlay').data && document.querySelectorAll('#runs tbody tr').length === 4")
    curves = page.evaluate("document.getElementById('loss-overlay').data.filter(t => t.mode === 'lines').length")
    assert curves == 4
    page.wait_for_function("() => (document.getElementById('metric-vs-margin').data || []).length > 0")
    per_panel = page.evaluate(
        "document.getElementById('metric-vs-margin').data.filter(t => t.mode === 'lines+markers').map(t => [t.xaxis, t.x.length])"
    )
    assert sorted(per_panel) == [["x", 2], ["x2", 2]]  # one panel per loss, two margins each
    assert page.locator("#recommendations .recommendation").count() == 2
    marked = page.locator("#runs tbody tr.starred").count() + page.locator("#runs tbody tr.best").count()
    assert marked == 2  # each loss's highest point, starred only when it is beyond the noise
    page.locator("#runs thead th", has_text="MAP@R (best)").click()  # sortable
    assert page.locator("#runs thead th[aria-sort='descending']").count() == 1
    assert page.errors == []


def test_sweep_form_range_entry(procs, page):
    url = procs.server()
    page.goto(f"{url}/sweeps")
    page.fill(".axis-values", "0.4 to 1.0 step 0.1")
    page.fill("#sweep-seeds", "0, 1")
    page.wait_for_function("() => document.getElementById('sweep-count').textContent === '14 jobs'")
    page.click("#sweep-form button[type=submit]")
    page.wait_for_url("**/sweeps/*")
    sweep_id = page.url.rsplit("/", 1)[-1]
    detail = httpx.get(f"{url}/api/sweeps/{sweep_id}").json()
    assert sorted({j["spec"]["margin"] for j in detail["job_list"]}) == [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert page.errors == []


def test_sweep_small_multiples_with_linked_selection(procs, settings, page):
    url = procs.server()
    base = {**BASE, "eval_every": 20}
    made = httpx.post(f"{url}/api/sweeps", json={"name": "aligned", "base": base, "grid": {"margin": [0.1, 0.4, 0.8]}}).json()
    Worker(settings, threads=2).run(max_jobs=3, exit_when_idle=True)

    page.goto(f"{url}/sweeps/{made['id']}")
    wait_js(page, "(document.getElementById('layouts').data || []).length === 3", timeout=240)  # the aligned fit runs meanwhile
    layouts = httpx.get(f"{url}/api/sweeps/{made['id']}/layouts").json()
    n = len(layouts["points"]["index"])
    panels = page.evaluate("document.getElementById('layouts').data.map(t => [t.x.length, t.customdata.length])")
    assert panels == [[n, n]] * 3 and n == 542
    titles = page.evaluate("document.getElementById('layouts').layout.annotations.map(a => a.text)")
    assert titles == ["margin=0.1 seed=0", "margin=0.4 seed=0", "margin=0.8 seed=0"]
    assert page.locator("#layouts-legend .legend-item").count() == 3  # digits 5-7 (validation), one colour map for all panels
    screenshot(page, "sweep-small-multiples")

    # A box drag in the first panel, around its middle.
    box_select_first_panel(page, "layouts", 1 / 6)
    selected = page.evaluate(
        "document.getElementById('layouts').data.map(t => t.selectedpoints.map(r => t.customdata[r]).sort((a, b) => a - b))"
    )
    assert 0 < len(selected[0]) < n
    assert selected[1] == selected[0] and selected[2] == selected[0]  # the same images, highlighted in every panel
    assert page.locator("#selection-status").inner_text() == f"{len(selected[0])} images selected, highlighted in every panel."
    screenshot(page, "sweep-linked-selection")

    page.click("#clear-selection")
    wait_js(page, "document.getElementById('layouts').data.every(t => !t.selectedpoints)")
    assert page.locator("#clear-selection").is_disabled()
    assert page.errors == []
