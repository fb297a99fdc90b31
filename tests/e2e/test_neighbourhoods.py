"""The neighbourhood comparison page in Chromium: two fabricated collections of the same items (no training, no UMAP), the
changed-most table, and both layouts side by side with a linked selection."""

from __future__ import annotations

import pytest

from tests.app.explorer.test_aligned import turned
from tests.e2e.conftest import box_select_first_panel, screenshot, wait_js
from tests.e2e.fabricate import fabricate_collection

pytestmark = pytest.mark.e2e


def test_neighbourhood_changes_are_a_sortable_list_with_thumbnails(live, page):
    home = live.procs.env["EMBEDLAB_HOME"]
    a, _ = fabricate_collection(home, 600, seed=1)
    b, _ = fabricate_collection(home, 600, seed=2)  # the same item ids, other vectors: other neighbourhoods
    page.goto(f"{live.url}/compare/neighbourhoods?a=collection:{a}&b=collection:{b}")
    wait_js(page, "document.getElementById('changed').dataset.ready === 'true'", 60)
    assert page.locator("#nb-table tbody tr").count() == 600
    changes = [float(t) for t in page.locator("#nb-table tbody td:nth-child(4)").all_inner_texts()]
    assert changes == sorted(changes, reverse=True) and changes[0] > 0.5
    page.click("[data-sort=index]")
    indices = [int(t) for t in page.locator("#nb-table tbody td:nth-child(2)").all_inner_texts()]
    assert indices == list(range(600))
    wait_js(page, "(() => { const i = document.querySelector('#nb-table tbody img'); return i.complete && i.naturalWidth === 48; })()")
    assert page.locator("#nb-table tbody tr").first.locator("a").first.get_attribute("href") == f"/collections/{a}/explore#index=0"
    assert not page.errors, page.errors


SELECTED = "document.getElementById('pair').data.map(t => (t.selectedpoints || []).map(r => t.customdata[r]).sort((a, b) => a - b))"


def test_both_layouts_side_by_side_with_a_linked_selection(live, page):
    home = live.procs.env["EMBEDLAB_HOME"]
    a, _ = fabricate_collection(home, 600, seed=1)
    b, _ = fabricate_collection(home, 600, seed=1, xy_map=lambda xy: turned(xy, 120, 2.0, (30, 5), mirror=True))
    page.goto(f"{live.url}/compare/neighbourhoods?a=collection:{a}&b=collection:{b}")
    wait_js(page, "document.getElementById('pair').dataset.ready === 'true'", 60)
    panels = page.evaluate("document.getElementById('pair').data.map(t => [t.x, t.y])")
    assert len(panels) == 2 and len(panels[0][0]) == 600
    for got, want in zip(panels[1], panels[0]):  # B turned back onto A: the same picture
        assert max(abs(p - q) for p, q in zip(got, want)) < 0.01
    assert "mirrored" in page.evaluate("document.getElementById('pair').layout.annotations[1].text")
    assert "All 600 shared items" in page.locator("#pair-status").inner_text()

    # A box drag in A's panel, around its middle: the same items highlighted in B's, and in the table.
    box_select_first_panel(page, "pair", 1 / 5)
    in_a, in_b = page.evaluate(SELECTED)
    assert 0 < len(in_a) < 600 and in_b == in_a
    assert page.evaluate("document.getElementById('pair').dataset.selected.split(',').length") == len(in_a)
    picked = sorted(int(t) for t in page.locator("#nb-table tbody tr.picked td:nth-child(2)").all_inner_texts())
    assert picked == in_a
    assert page.locator("#pair-selection").inner_text().startswith(f"{len(in_a)} items selected, highlighted in both panels")
    screenshot(page, "neighbourhoods-side-by-side")

    # A row of the table: that one item, in both panels.
    row = page.locator("#nb-table tbody tr").nth(7)
    index = int(row.locator("td:nth-child(2)").inner_text())
    row.locator("td:nth-child(3)").click()
    wait_js(page, "document.getElementById('pair').data.every(t => t.selectedpoints && t.selectedpoints.length === 1)")
    assert page.evaluate(SELECTED) == [[index], [index]]
    assert page.locator("#nb-table tbody tr.picked").count() == 1

    page.click("#pair-clear")
    wait_js(page, "document.getElementById('pair').data.every(t => !t.selectedpoints)")
    assert page.locator("#pair-clear").is_disabled() and page.locator("#nb-table tbody tr.picked").count() == 0
    assert not page.errors, page.errors
