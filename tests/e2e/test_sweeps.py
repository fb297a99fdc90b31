"""The sweep comparison page in Chromium: one curve per run, one point per margin."""
from __future__ import annotations

import httpx

from trainer.worker import Worker

BASE = {"dataset": "digits", "steps": 20, "eval_every": 10, "classes_per_batch": 4, "samples_per_class": 8}


def test_sweep_comparison_page(procs, settings, page):
    url = procs.server()
    made = httpx.post(f"{url}/api/sweeps", json={"name": "cmp", "base": BASE, "grid": {"margin": [0.1, 0.6], "loss": ["triplet", "contrastive"]}}).json()
    Worker(settings, threads=2).run(max_jobs=4, exit_when_idle=True)  # same EMBEDLAB_HOME as the server

    page.goto(f"{url}/sweeps/{made['id']}")
    page.wait_for_function("() => document.getElementById('loss-overlay').data && document.querySelectorAll('#runs tbody tr').length === 4")
    curves = page.evaluate("document.getElementById('loss-overlay').data.filter(t => t.mode === 'lines').length")
    assert curves == 4
    per_loss = page.evaluate("document.getElementById('metric-vs-margin').data.filter(t => t.xaxis === 'x').map(t => [t.name, t.x.length])")
    assert sorted(per_loss) == [["contrastive", 2], ["triplet", 2]]
    assert page.locator("#recommendations strong").count() == 2
    assert page.locator("#runs tbody tr.best").count() == 2
    page.locator("#runs thead th", has_text="MAP@R").click()  # sortable
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
