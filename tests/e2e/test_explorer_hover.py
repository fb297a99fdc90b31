"""The explorer's hover on plots too big to redraw (static/explore_hover.js) in Chromium, forced on a small fabricated
collection with ?composite-from=1: the card names the point under the cursor and a ring marks it, without drawing a single
point; what is hovered is what a click there selects, as far out as a click picks; the card goes when the cursor leaves the
point or the canvas, and nothing is hovered off the canvas."""

from __future__ import annotations

import math

import pytest

from tests.e2e.conftest import screenshot, wait_js
from tests.e2e.fabricate import fabricate_collection

pytestmark = pytest.mark.e2e
PLOT = "document.getElementById('plot').explorer"


@pytest.fixture(scope="module")
def collection(live) -> tuple[int, int]:
    return fabricate_collection(live.procs.env["EMBEDLAB_HOME"], 3000, seed=11)


def open_big(page, live, collection_id: int) -> None:
    page.goto(f"{live.url}/collections/{collection_id}/explore?composite-from=1")
    wait_js(page, "document.getElementById('explorer').dataset.ready === 'true'", 60)
    assert page.evaluate(f"{PLOT}.pickedHover")


def ring_centre(page) -> tuple[float, float]:
    box = page.locator("#hover-ring").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_a_hover_names_the_point_and_rings_it_without_drawing(live, page, collection):
    collection_id, centre_row = collection
    open_big(page, live, collection_id)
    # In a crowded cluster the pick is whichever point is nearest the cursor, not necessarily the one aimed at.
    x, y = (round(v) for v in page.evaluate(f"{PLOT}.screenOfRow({centre_row})"))  # a mouse event's position is whole pixels
    page.mouse.move(x - 40, y - 40)
    draws = page.evaluate(f"{PLOT}.draws()")
    page.mouse.move(x, y, steps=4)
    wait_js(page, "!document.getElementById('hover').hidden")
    row = page.evaluate(f"{PLOT}.hoverRowAt({x}, {y})")
    assert row >= 0
    shown = page.evaluate(f"{PLOT}.indexOf({row})")
    assert f"#{shown}" in page.locator("#hover span").inner_text()
    assert page.locator("#hover-ring").is_visible()
    assert math.dist(ring_centre(page), page.evaluate(f"{PLOT}.screenOfRow({row})")) < 1.0
    assert math.dist(page.evaluate(f"{PLOT}.screenOfRow({row})"), (x, y)) < 8  # the nearest point, a few pixels at most
    wait_js(page, "document.querySelector('#hover img').complete && document.querySelector('#hover img').naturalWidth > 0")
    screenshot(page, "explorer-picked-hover")
    assert page.evaluate(f"{PLOT}.draws()") == draws  # no point was drawn for the hover

    # What is hovered is what a click there selects (the library's own pick, with its radius).
    page.mouse.click(x, y)
    wait_js(page, "!document.getElementById('panel').hidden", 30)
    assert page.locator("#query .ex-query-label").inner_text().startswith(f"#{shown} ")
    # The panel narrows the plot and its points move: the ring does not stay where the point was.
    assert page.locator("#hover-ring").is_hidden() or math.dist(ring_centre(page), page.evaluate(f"{PLOT}.screenOfRow({row})")) < 1.0
    assert not page.errors, page.errors


ISOLATED_JS = """(r) => {
  // The row farthest from every other (page pixels), and a direction from it with nothing else near a probe at r + 1.
  const p = document.getElementById('plot').explorer, n = p.rows, at = [];
  for (let i = 0; i < n; i++) at.push(p.screenOfRow(i));
  let best = null;
  for (let i = 0; i < n; i++) {
    let near = Infinity;
    for (let j = 0; j < n; j++) if (j !== i) near = Math.min(near, Math.hypot(at[j][0] - at[i][0], at[j][1] - at[i][1]));
    if (!best || near > best.near) best = { row: i, near };
  }
  for (let k = 0; k < 8; k++) {
    const a = (k * Math.PI) / 4, dx = Math.cos(a), dy = Math.sin(a);
    const px = at[best.row][0] + (r + 1) * dx, py = at[best.row][1] + (r + 1) * dy;
    let clear = true;
    for (let j = 0; j < n; j++) if (j !== best.row && Math.hypot(at[j][0] - px, at[j][1] - py) < r + 2) clear = false;
    if (clear) return { row: best.row, x: at[best.row][0], y: at[best.row][1], dx, dy };
  }
  return null;
}"""


def test_the_hover_reaches_as_far_as_a_click_picks(live, page, collection):
    collection_id, _ = collection
    open_big(page, live, collection_id)
    r = page.evaluate(f"{PLOT}.hoverRadius()")
    assert r > 1
    p = page.evaluate(ISOLATED_JS, r)
    assert p, "no point stands apart from the others"
    inside = (p["x"] + (r - 1) * p["dx"], p["y"] + (r - 1) * p["dy"])
    outside = (p["x"] + (r + 1) * p["dx"], p["y"] + (r + 1) * p["dy"])
    assert page.evaluate(f"{PLOT}.hoverRowAt({inside[0]}, {inside[1]})") == p["row"]
    assert page.evaluate(f"{PLOT}.hoverRowAt({outside[0]}, {outside[1]})") == -1
    # The library's own pick agrees: a click a pixel outside selects nothing, one a pixel inside selects the point.
    page.mouse.click(*outside)
    page.wait_for_timeout(400)
    assert page.evaluate(f"{PLOT}.selectedRows()") == []
    page.mouse.click(*inside)
    # The click's point is asked about: the panel names it (its neighbours join the highlight once they are answered).
    shown = page.evaluate(f"{PLOT}.indexOf({p['row']})")
    wait_js(page, "!document.getElementById('panel').hidden", 30)
    assert page.locator("#query .ex-query-label").inner_text().startswith(f"#{shown} ")
    assert page.evaluate(f"{PLOT}.selectedRows()")[0] == p["row"]
    assert not page.errors, page.errors


def test_the_card_goes_off_a_point_and_off_the_canvas(live, page, collection):
    collection_id, centre_row = collection
    open_big(page, live, collection_id)
    x, y = page.evaluate(f"{PLOT}.screenOfRow({centre_row})")
    page.mouse.move(x, y, steps=3)
    wait_js(page, "!document.getElementById('hover').hidden")
    # Empty space: the plot's top-left corner (the layout is scaled into 95% of the square, clusters apart).
    box = page.locator("#plot-canvas").bounding_box()
    corner = (box["x"] + 3, box["y"] + 3)
    assert page.evaluate(f"{PLOT}.hoverRowAt({corner[0]}, {corner[1]})") == -1
    page.mouse.move(*corner, steps=3)
    wait_js(page, "document.getElementById('hover').hidden && document.getElementById('hover-ring').hidden")

    page.mouse.move(x, y, steps=3)
    wait_js(page, "!document.getElementById('hover').hidden")
    draws = page.evaluate(f"{PLOT}.draws()")
    page.mouse.move(box["x"] - 20, box["y"] + 40)  # off the canvas
    wait_js(page, "document.getElementById('hover').hidden && document.getElementById('hover-ring').hidden")
    assert page.evaluate(f"{PLOT}.draws()") == draws  # leaving draws nothing either

    # During a drag the hover waits: the picture moves, and the card and ring are not left behind on it.
    page.mouse.move(x, y, steps=3)
    wait_js(page, "!document.getElementById('hover').hidden")
    page.mouse.down()
    page.mouse.move(x + 60, y + 10, steps=5)
    assert page.locator("#hover").is_hidden() and page.locator("#hover-ring").is_hidden()
    page.mouse.up()
    page.evaluate(f"{PLOT}.settled()")
    assert not page.errors, page.errors


def test_moves_off_the_canvas_hover_nothing_over_a_zoomed_plot(live, page, collection):
    # Zoomed in, the layout runs on past the canvas's edges, under the toolbar: a move there is no hover of the point
    # the library would find under it.
    collection_id, centre_row = collection
    open_big(page, live, collection_id)
    x, y = page.evaluate(f"{PLOT}.screenOfRow({centre_row})")
    page.mouse.move(x, y)
    for _ in range(6):
        page.mouse.wheel(0, -200)
    page.evaluate(f"{PLOT}.settled()")
    draws = page.evaluate(f"{PLOT}.draws()")
    box = page.locator("#plot-canvas").bounding_box()
    top = page.locator("header").bounding_box()
    page.mouse.move(x, box["y"] + 5, steps=5)  # up to the canvas's top edge, then out over the page header
    page.mouse.move(box["x"] + 10, top["y"] + top["height"] / 2, steps=20)
    page.mouse.move(box["x"] + box["width"] - 10, top["y"] + top["height"] / 2, steps=20)
    page.wait_for_timeout(300)
    assert page.locator("#hover").is_hidden() and page.locator("#hover-ring").is_hidden()
    assert page.evaluate(f"{PLOT}.draws()") == draws
    assert not page.errors, page.errors
