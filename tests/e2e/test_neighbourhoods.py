"""The neighbourhood comparison page in Chromium: two fabricated collections of the same items (no training, no UMAP), the
changed-most table, and both layouts side by side with a linked selection."""

from __future__ import annotations

import pytest

from tests.app.explorer.test_aligned import turned
from tests.e2e.conftest import box_select_first_panel, screenshot, wait_js
from tests.e2e.fabricate import fabricate_collection

pytestmark = pytest.mark.e2e


ROWS = "#nb-table tbody tr"
RANGE = ".nb-pager .nb-range"
NEXT, PREVIOUS = ".nb-pager [data-step='1']", ".nb-pager [data-step='-1']"


def shown(page, column: int = 2) -> list[int]:
    return [int(t) for t in page.locator(f"{ROWS} td:nth-child({column})").all_inner_texts()]


def every_page(page) -> list[int]:
    """The item indices of every page of the table, from the one shown to the last, in order."""
    indices = shown(page)
    while page.locator(NEXT).first.is_enabled():
        page.locator(NEXT).first.click()
        indices += shown(page)
    return indices


def test_neighbourhood_changes_are_a_paged_sortable_list_with_thumbnails(live, page):
    home = live.procs.env["EMBEDLAB_HOME"]
    a, _ = fabricate_collection(home, 600, seed=1)
    b, _ = fabricate_collection(home, 600, seed=2)  # the same item ids, other vectors: other neighbourhoods
    images: list[str] = []
    page.on("request", lambda r: images.append(r.url.split("/images/")[1]) if "/images/" in r.url else None)
    page.goto(f"{live.url}/compare/neighbourhoods?a=collection:{a}&b=collection:{b}")
    wait_js(page, "document.getElementById('pair').dataset.ready === 'true'", 60)  # after the table, which it redraws
    assert page.locator("nav[aria-label=Main] a[aria-current=page]").inner_text() == "Collections"
    listed = live.get(f"/api/neighbourhoods?a=collection:{a}&b=collection:{b}&k=10&limit=2000")["items"]
    by_change = [it["index"] for it in sorted(listed, key=lambda it: (-it["change"], it["index"]))]

    # 50 rows a page, the most changed first; the thumbnails of those rows alone, even scrolled to the last of them.
    assert page.locator(ROWS).count() == 50 and shown(page) == by_change[:50]
    assert page.locator(RANGE).all_inner_texts() == ["Rows 1–50 of 600"] * 2
    assert page.locator(PREVIOUS).first.is_disabled() and page.locator(NEXT).first.is_enabled()
    changes = [float(t) for t in page.locator(f"{ROWS} td:nth-child(4)").all_inner_texts()]
    assert changes == sorted(changes, reverse=True) and changes[0] > 0.5
    page.locator(ROWS).last.scroll_into_view_if_needed()
    wait_js(
        page,
        "(() => { const i = document.querySelector('#nb-table tbody tr:last-child img'); return i.complete && i.naturalWidth === 48; })()",
    )
    assert by_change[49] in map(int, images) and set(map(int, images)) <= set(by_change[:50])
    assert page.locator(ROWS).first.locator("a").first.get_attribute("href") == f"/collections/{a}/explore#index={by_change[0]}"
    screenshot(page, "neighbourhoods-paged")

    # Next, from the pager under the table: the next 50 in the same order, from the table's top; then back.
    images.clear()
    page.locator(NEXT).last.click()
    assert shown(page) == by_change[50:100] and page.locator(RANGE).first.inner_text() == "Rows 51–100 of 600"
    assert page.evaluate("document.getElementById('nb-table').getBoundingClientRect().top") >= 0
    wait_js(page, "document.querySelector('#nb-table tbody img').complete")
    assert images and set(map(int, images)) <= set(by_change[50:100])
    page.locator(PREVIOUS).first.click()
    assert shown(page) == by_change[:50]
    assert every_page(page) == by_change and page.locator(RANGE).first.inner_text() == "Rows 551–600 of 600"
    assert page.locator(NEXT).first.is_disabled()

    # Sorting starts the new order at its first page, and the pages go on in it.
    page.click("[data-sort=index]")
    assert page.locator(RANGE).first.inner_text() == "Rows 1–50 of 600" and shown(page) == list(range(50))
    assert every_page(page) == list(range(600))
    page.click("[data-sort=index]")
    assert every_page(page) == list(range(599, -1, -1))
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

    # Away from the first page, then a box drag in A's panel, around its middle: the same items highlighted in B's,
    # and the table lists those alone, from its first page.
    page.locator(NEXT).first.click()
    page.locator(NEXT).first.click()
    assert page.locator(RANGE).first.inner_text() == "Rows 101–150 of 600"
    box_select_first_panel(page, "pair", 1 / 4)
    in_a, in_b = page.evaluate(SELECTED)
    assert 50 < len(in_a) < 600 and in_b == in_a  # more than a page of them
    assert page.evaluate("document.getElementById('pair').dataset.selected.split(',').length") == len(in_a)
    assert page.locator(RANGE).first.inner_text() == f"Rows 1–50 of {len(in_a)}: the panel selection's items"
    assert page.locator(f"{ROWS}.picked").count() == 50
    assert sorted(every_page(page)) == in_a
    assert page.locator(".nb-pager .nb-all").first.is_visible()
    assert page.locator("#pair-selection").inner_text().startswith(f"{len(in_a)} items selected, highlighted in both panels")
    page.locator(PREVIOUS).first.click()

    # A row of the table: that one item, in both panels; the table keeps the list it was clicked in.
    row = page.locator(ROWS).nth(7)
    index = int(row.locator("td:nth-child(2)").inner_text())
    row.locator("td:nth-child(3)").click()
    wait_js(page, "document.getElementById('pair').data.every(t => t.selectedpoints && t.selectedpoints.length === 1)")
    assert page.evaluate(SELECTED) == [[index], [index]]
    assert page.locator(f"{ROWS}.picked").count() == 1 and page.locator(f"{ROWS}.picked td:nth-child(2)").inner_text() == str(index)
    assert page.locator(RANGE).first.inner_text().endswith(f" of {len(in_a)}: the panel selection's items")
    screenshot(page, "neighbourhoods-side-by-side")

    # Cleared: every row again, at the page the full list was left at.
    page.click("#pair-clear")
    wait_js(page, "document.getElementById('pair').data.every(t => !t.selectedpoints)")
    assert page.locator("#pair-clear").is_disabled() and page.locator(f"{ROWS}.picked").count() == 0
    assert page.locator(RANGE).first.inner_text() == "Rows 101–150 of 600" and not page.locator(".nb-pager .nb-all").first.is_visible()

    # "Show all rows" widens the table and keeps the selection highlighted where its rows fall.
    box_select_first_panel(page, "pair", 1 / 4)
    page.locator(".nb-pager .nb-all").first.click()
    assert page.locator(RANGE).first.inner_text() == "Rows 101–150 of 600"
    picked = [int(t) for t in page.locator(f"{ROWS}.picked td:nth-child(2)").all_inner_texts()]
    assert set(picked) == set(shown(page)) & set(in_a)
    assert not page.errors, page.errors
