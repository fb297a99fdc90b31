"""The explorer's lasso in Chromium, over a small fabricated collection: a lasso released where it was pressed is no click
on a point (regl-scatterplot alone would take it for one), and a tiny one keeps the selection."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import screenshot, wait_js
from tests.e2e.fabricate import fabricate_collection

pytestmark = pytest.mark.e2e
PLOT = "document.getElementById('plot').explorer"


def lasso(page, cx: float, cy: float, w: float) -> None:
    page.mouse.move(cx - w, cy - w)
    page.mouse.down()
    # ending off the start: a release where the press was is the tiny lasso under test
    for px, py in [(cx + w, cy - w), (cx + w, cy + w), (cx - w, cy + w), (cx - w, cy - w + 12)]:
        page.mouse.move(px, py, steps=6)
    page.mouse.up()


def test_a_lasso_released_where_it_was_pressed_is_no_click(live, page):
    collection_id, centre_row = fabricate_collection(live.procs.env["EMBEDLAB_HOME"], 2000, seed=4)
    page.goto(f"{live.url}/collections/{collection_id}/explore")
    wait_js(page, "document.getElementById('explorer').dataset.ready === 'true'", 60)
    cx, cy = page.evaluate(f"{PLOT}.screenOfRow({centre_row})")
    page.click("#lasso")
    lasso(page, cx, cy, 30)
    wait_js(page, "/P@1/.test(document.getElementById('sel-count').textContent)", 60)
    chosen = sorted(page.evaluate(f"{PLOT}.selectedRows()"))
    summary = page.locator("#sel-count").inner_text()
    assert len(chosen) > 20 and centre_row in chosen

    cx, cy = page.evaluate(f"{PLOT}.screenOfRow({centre_row})")  # the selection's panel narrowed the plot: the view moved
    for moved in (0, 2):  # pressed and released on a point of the selection: not moved at all, and a slip of 2 px
        page.mouse.move(cx, cy)
        page.mouse.down()
        if moved:
            page.mouse.move(cx + moved, cy + 1, steps=2)
        page.mouse.up()
        time.sleep(0.6)  # past the library's click handling (and its double-click wait)
        assert sorted(page.evaluate(f"{PLOT}.selectedRows()")) == chosen
        assert page.locator("#sel-count").inner_text() == summary
        assert page.locator("#panel").is_hidden()  # no point's neighbours opened: it was not a click
    screenshot(page, "explorer-tiny-lasso-kept")

    # A lasso closed where it began, on a point: the points inside it, not that point and its neighbours.
    page.mouse.move(cx, cy)
    page.mouse.down()
    for px, py in [(cx + 15, cy), (cx + 15, cy + 15), (cx, cy + 15), (cx, cy)]:
        page.mouse.move(px, py, steps=6)
    page.mouse.up()
    wait_js(page, f"{PLOT}.selectedRows().length !== {len(chosen)}")
    time.sleep(0.6)
    closed = page.evaluate(f"{PLOT}.selectedRows()")
    assert 1 < len(closed) < len(chosen) and set(closed) < set(chosen)
    assert page.locator("#panel").is_hidden()

    page.click("#lasso")  # out of lasso mode, a click on a point is a click again
    page.mouse.click(cx, cy)
    wait_js(page, "!document.getElementById('panel').hidden")  # the clicked point's neighbours
    assert sorted(page.evaluate(f"{PLOT}.selectedRows()")) != chosen
    assert not page.errors, page.errors


def test_the_hover_card_goes_when_a_lasso_starts(live, page):
    """The library hovers nothing while a lasso is drawn: the card of the point where it was pressed must not stay."""
    collection_id, centre_row = fabricate_collection(live.procs.env["EMBEDLAB_HOME"], 2000, seed=6)
    page.goto(f"{live.url}/collections/{collection_id}/explore")
    wait_js(page, "document.getElementById('explorer').dataset.ready === 'true'", 60)
    cx, cy = page.evaluate(f"{PLOT}.screenOfRow({centre_row})")
    page.click("#lasso")
    page.mouse.move(cx - 20, cy - 20)
    page.mouse.move(cx, cy, steps=3)
    wait_js(page, "!document.getElementById('hover').hidden")
    page.mouse.down()
    page.mouse.move(cx + 40, cy, steps=6)
    wait_js(page, "document.getElementById('hover').hidden", 5)
    page.mouse.move(cx + 40, cy + 40, steps=6)
    assert page.locator("#hover").is_hidden()
    page.mouse.up()
    assert not page.errors, page.errors
