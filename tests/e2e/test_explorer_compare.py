"""A selection in the explorer opened as a comparison (static/selection_handover.js): the neighbourhood page lists the
selection's items, says whether they changed more than the other shared items, and highlights them in both layouts."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import screenshot, wait_js
from tests.e2e.fabricate import fabricate_collection

pytestmark = pytest.mark.e2e
PLOT = "document.getElementById('plot').explorer"
ROWS = "#nb-table tbody tr"


def listed(page) -> list[int]:
    """Every row's item index, page by page."""
    indices: list[int] = []
    while True:
        indices += [int(t) for t in page.locator(f"{ROWS} td:nth-child(2)").all_inner_texts()]
        nxt = page.locator(".nb-pager [data-step='1']").first
        if not nxt.is_enabled():
            return indices
        nxt.click()


def test_a_class_selected_in_the_explorer_opens_as_a_comparison(live, page, browser):
    home = live.procs.env["EMBEDLAB_HOME"]
    a, _ = fabricate_collection(home, 600, seed=1)
    b, _ = fabricate_collection(home, 600, seed=1, x_map=lambda X: X + np.random.default_rng(5).normal(scale=0.25, size=X.shape))
    page.goto(f"{live.url}/collections/{a}/explore")
    wait_js(page, "document.getElementById('explorer').dataset.ready === 'true'", 60)
    page.locator("#classes tbody tr[data-label='3']").click()
    wait_js(page, "/P@1/.test(document.getElementById('sel-count').textContent)")
    chosen = sorted(page.evaluate(f"{PLOT}.selectedRows().map((r) => {PLOT}.indexOf(r))"))
    assert 10 < len(chosen) < 100
    wait_js(page, f"!!document.querySelector('#compare-candidates option[value=\"collection:{b}\"]')")
    assert not page.locator(f"#compare-candidates option[value='collection:{a}']").count()  # not itself
    screenshot(page, "explorer-selection")

    page.fill("#sel-compare-with", f"collection:{a}")
    page.click("#sel-compare button[type=submit]")
    assert "That is this embedding" in page.locator("#sel-compare-status").inner_text()
    page.fill("#sel-compare-with", f"collection:{b}")
    page.click("#sel-compare button[type=submit]")
    page.wait_for_url(f"**/compare/neighbourhoods?a=collection%3A{a}&b=collection%3A{b}&selection=*")
    wait_js(page, "document.getElementById('pair').dataset.ready === 'true'", 60)

    # The table is the selection's items; the summary states the server's verdict and its intervals.
    assert sorted(listed(page)) == chosen
    answer = httpx.post(
        f"{live.url}/api/neighbourhoods/selection",
        params={"a": f"collection:{a}", "b": f"collection:{b}", "k": 10},
        json={"indices": chosen},
    ).json()["selection"]
    text = page.locator("#nb-selection").inner_text()
    assert f"The selection from collection:{a}'s explorer: {len(chosen)} items, all held by both" in text
    assert answer["verdict"] in text and f"{answer['selection']['mean_change']:.3f}" in text and "95% of random selections of" in text
    assert page.locator("#nb-summary").inner_text().startswith("All 600 shared items")
    # Both panels highlight the same items (all 600 are drawn here).
    selected = page.evaluate("document.getElementById('pair').data.map((t) => t.selectedpoints)")
    assert len(selected) == 2 and selected[0] == selected[1] and len(selected[0]) == len(chosen)
    assert page.locator("#pair-selection").inner_text().startswith(f"{len(chosen)} items selected")
    screenshot(page, "neighbourhoods-from-selection")
    # Another k: the selection's items are compared again, and still alone in the table.
    page.fill("#k", "4")
    page.locator("#k").dispatch_event("change")
    wait_js(page, "/same 4 neighbours/.test(document.getElementById('nb-summary').textContent)", 60)
    wait_js(page, "document.getElementById('pair').dataset.ready === 'true'", 60)
    assert sorted(listed(page)) == chosen
    assert page.locator("#pair-selection").inner_text().startswith(f"{len(chosen)} items selected")
    assert not page.errors, page.errors

    # The same link in another browser (a fresh context: no selection handed over there): it says so, compares every item.
    other = browser.new_context().new_page()
    other.goto(page.url)
    wait_js(other, "document.getElementById('changed').dataset.ready === 'true'", 60)
    assert "no longer held here" in other.locator("#nb-selection").inner_text()
    assert other.locator(".nb-pager .nb-range").first.inner_text() == "Rows 1–50 of 600"
    other.context.close()


def test_a_selection_of_two_million_items_is_handed_over_whole(live, page):
    page.goto(f"{live.url}/collections")
    got = page.evaluate("""async () => {
        const { handOver, takeOver } = await import("/static/selection_handover.js");
        const indices = Array.from({ length: 2000000 }, (_, i) => i * 3 + 7);
        const token = await handOver("collection:1", indices);
        const back = await takeOver(token);
        const stale = await takeOver("another");
        return { from: back.from, n: back.indices.length, same: back.indices.every((v, i) => v === indices[i]), stale };
    }""")
    assert got == {"from": "collection:1", "n": 2_000_000, "same": True, "stale": None}
