"""The search pages in Chromium: start a search from the form, then its trials, charts and budget."""

from __future__ import annotations

import json

from tests.e2e.conftest import screenshot


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
