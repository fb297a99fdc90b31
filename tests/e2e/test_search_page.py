"""The search pages in Chromium: start a search from the form, then its trials, charts and budget."""

from __future__ import annotations

import json

import httpx

from app.store.db import get_engine, init_db
from tests.e2e.conftest import screenshot
from tests.e2e.fabricate import finish_next


def test_search_form_and_page(procs, page):
    url = procs.server()
    procs.worker()
    page.goto(f"{url}/searches")
    bad = {"base": {"dataset": "digits"}, "space": {"margin": {"low": 0.0, "high": 1.0, "log": True}}}
    page.fill("#search-spec", json.dumps(bad))
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#search-error:not([hidden])")
    assert "space.margin.low" in page.text_content("#search-error")
    assert [e for e in page.errors if "422" not in e] == []  # Chromium logs the refused request itself
    page.errors.clear()

    # 128-d embeddings train to the end; 2-d ones are pruned at the first evaluation (see tests/app/test_search.py).
    spec = {
        "name": "dims",
        "base": {"dataset": "digits", "explorer": False, "classes_per_batch": 3, "samples_per_class": 8, "steps": 30, "eval_every": 5},
        "space": {"embedding_dim": [128, 2, 3]},
        "sampler": "grid",
        "sampler_seed": 5,
        "trials": 2,
        "parallel": 1,
        "pruner": "asha",
    }
    page.fill("#search-spec", json.dumps(spec))
    page.click("#search-form button[type=submit]")
    page.wait_for_url("**/searches/*")
    page.wait_for_function("() => document.getElementById('search-status').textContent.startsWith('finished')", timeout=180_000)
    rows = page.locator("#trials tbody tr")
    assert rows.count() == 2
    assert "complete" in rows.nth(0).text_content() and "pruned" in rows.nth(1).text_content()
    assert rows.nth(1).locator("td").nth(6).text_content() == "5"  # pruned at step 5
    assert page.text_content("#best").startswith("Trial 0 (embedding_dim=128)")
    only = page.locator(".recommendation[data-loss='triplet']")  # the sweep's rules over the one completed trial
    assert "Only embedding_dim=128 finished for triplet" in only.locator(".statement").inner_text()
    assert only.locator(".locked-test").count() == 1
    assert page.text_content("#budget").startswith("35 training steps spent, 58% of the 60")
    page.wait_for_function(
        "() => document.getElementById('trial-curves').data && document.getElementById('trial-curves').data.length === 2"
    )
    dashes = page.evaluate("document.getElementById('trial-curves').data.map(t => t.line.dash)")
    assert dashes == ["solid", "dash"]
    marked = page.evaluate("document.getElementById('param-vs-value').data.map(t => [t.name, t.x])")
    assert marked == [["complete", [128]], ["pruned", [2]]]
    screenshot(page, "search")
    page.goto(f"{url}/searches")
    page.wait_for_selector("#searches-table tbody tr")
    assert page.locator("#searches-table tbody tr").count() == 1
    assert page.errors == []


def test_sweeps_page_offers_a_search_instead_of_a_grid(procs, page):
    url = procs.server()
    page.goto(f"{url}/sweeps")
    assert not page.is_visible("#search-spec")  # folded away until asked for
    page.click("#search-instead > summary")
    bad = {"base": {"dataset": "digits", "steps": 50, "eval_every": 50}, "space": {"margin": {"low": 0.1, "high": 0.9}}}
    page.fill("#search-spec", json.dumps(bad))
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#search-error:not([hidden])")
    assert "base.eval_every" in page.text_content("#search-error")  # the same form and checks as on /searches
    page.errors.clear()
    good = {"name": "from sweeps", "base": {"dataset": "digits", "steps": 40, "eval_every": 10}, "space": bad["space"], "trials": 3}
    page.fill("#search-spec", json.dumps(good))
    page.click("#search-form button[type=submit]")
    page.wait_for_url("**/searches/*")
    page.wait_for_function("() => document.getElementById('search-status').textContent.startsWith('running: 2 of 3 trials')")
    assert page.locator("#trials tbody tr").count() == 2  # parallel 2 (the default): two trials queued at once
    made = httpx.get(f"{url}/api/searches").json()["searches"]
    assert [(s["name"], s["sampler"], s["pruner"]) for s in made] == [("from sweeps", "tpe", "asha")]
    assert page.errors == []


def test_search_page_recommendation_and_importance(procs, settings, page):
    """Four finished trials over two parameters (fabricated evaluations, no training): the sweep's recommendation with
    its locked test score, the within-noise set, and each parameter's importance."""
    url = procs.server()
    engine = get_engine(settings.db_url)
    init_db(engine)
    body = {
        "name": "two parameters",
        "base": {"dataset": "digits", "steps": 20, "eval_every": 10},
        "space": {"margin": {"low": 0.1, "high": 0.4, "points": 2}, "embedding_dim": [32, 64]},
        "sampler": "grid",
        "trials": 4,
        "parallel": 4,
        "pruner": "none",
    }
    made = httpx.post(f"{url}/api/searches", json=body).json()
    queued = sorted(made["job_ids"])
    assert len(queued) == 4
    # margin decides (0.4 far better); embedding_dim does not matter (the same level, only the queries' noise differs).
    for job_id in queued:
        spec = httpx.get(f"{url}/api/jobs/{job_id}").json()["spec"]
        finish_next(engine, settings.home, 0.7 if spec["margin"] > 0.2 else 0.4)
    page.goto(f"{url}/searches/{made['id']}")
    page.wait_for_function("() => document.getElementById('search-status').textContent.startsWith('finished')", timeout=30_000)
    rec = page.locator(".recommendation[data-loss='triplet']")
    rec.wait_for()
    assert "Highest mean validation MAP@R: margin 0.4, embedding_dim " in rec.inner_text()
    assert rec.locator(".tied").inner_text().startswith("Within noise of it: margin 0.4, embedding_dim ")  # the other dimension
    assert rec.locator(".star").count() == 0  # tied: nothing starred
    assert rec.locator(".locked-test").count() == 1 and "Locked test" in rec.locator(".locked-test").inner_text()
    assert "paired bootstrap" in rec.locator(".test-used").inner_text()  # the sweep's rules, per-query values included
    page.wait_for_selector("#importance:not([hidden])")
    importance = page.text_content("#importance")
    assert importance.startswith("Parameter importance (fANOVA over the completed trials): ")
    shares = dict(part.rsplit(" ", 1) for part in importance.split(": ", 1)[1].split(", "))
    assert set(shares) == {"margin", "embedding_dim"} and int(shares["margin"].rstrip("%")) > int(shares["embedding_dim"].rstrip("%"))
    assert page.text_content("#budget").startswith("80 training steps spent, 100% of the 80")  # nothing pruned: the whole grid
    screenshot(page, "search-recommendation")
    assert page.errors == []
