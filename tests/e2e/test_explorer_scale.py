"""The explorer at 200,000 points in Chromium: a fabricated collection (no training, no UMAP), every point drawn, a hover
thumbnail from its image folder, a lasso selection summarised by the server, colour by AP@R."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import wait_js
from tests.e2e.fabricate import fabricate_collection

pytestmark = pytest.mark.e2e
N = 200_000


@pytest.fixture(scope="module")
def fabricated(live) -> tuple[int, int]:
    return fabricate_collection(live.procs.env["EMBEDLAB_HOME"], N)


def test_two_hundred_thousand_points_hover_and_lasso(live, page, fabricated):
    collection_id, centre_row = fabricated
    page.goto(f"{live.url}/collections/{collection_id}/explore")
    wait_js(page, "document.getElementById('explorer').dataset.ready === 'true'", 60)
    assert page.evaluate("document.getElementById('plot').explorer.rows") == N
    assert page.locator("#upload").count() == 0  # a collection has no network to embed an upload with

    # Hover: the thumbnail of the point under the cursor, from the collection's image folder.
    x, y = page.evaluate("document.getElementById('plot').explorer.screenOfRow(0)")
    page.mouse.move(x - 20, y - 20)
    page.mouse.move(x, y, steps=3)
    wait_js(page, "!document.getElementById('hover').hidden")
    time.sleep(0.3)
    wait_js(page, "(() => { const i = document.querySelector('#hover img'); return i.complete && i.naturalWidth === 48; })()")

    # Lasso around the middle of one class's cluster: the server counts what the page selected.
    page.mouse.move(5, 5)
    wait_js(page, "document.getElementById('hover').hidden")
    cx, cy = page.evaluate(f"document.getElementById('plot').explorer.screenOfRow({centre_row})")
    w = h = 40
    page.click("#lasso")
    page.mouse.move(cx - w, cy - h)
    page.mouse.down()
    # ending off the start: regl-scatterplot takes a release where the press was for a click on a point
    for px, py in [(cx + w, cy - h), (cx + w, cy + h), (cx - w, cy + h), (cx - w, cy - h + 12)]:
        page.mouse.move(px, py, steps=8)
    page.mouse.up()
    wait_js(page, "/P@1/.test(document.getElementById('sel-count').textContent)", 60)
    rows = page.evaluate("document.getElementById('plot').explorer.selectedRows().length")
    assert rows > 100
    assert int(page.locator("#sel-count").inner_text().split(" points")[0].replace(",", "")) == rows
    assert sum(int(t) for t in page.locator("#sel-classes tbody td:nth-child(2)").all_inner_texts()) == rows
    wait_js(page, "[...document.querySelectorAll('#sel-central img')].some((i) => i.complete && i.naturalWidth === 48)")

    page.select_option("#color-by", "ap")
    wait_js(page, "/AP@R of 200,000 scored points/.test(document.getElementById('ex-status').textContent)", 60)
    assert not page.errors, page.errors
