"""The explorer's composited pan and zoom (static/explore_gesture.js) in Chromium, forced on a small fabricated collection
with ?composite-from=1: mid-gesture the picture moves and the camera does not; once settled the points are drawn where the
picture showed them (a drag moves a point by the drag, a wheel zoom keeps the point under the cursor), hover finds them
there, a drag is no click on a point, and a lasso drag does not pan."""

from __future__ import annotations

import math

import pytest

from tests.e2e.conftest import screenshot, wait_js
from tests.e2e.fabricate import fabricate_collection

pytestmark = pytest.mark.e2e
PLOT = "document.getElementById('plot').explorer"


def at(page, row: int) -> tuple[float, float]:
    return tuple(page.evaluate(f"{PLOT}.screenOfRow({row})"))


def hovered(page, x: float, y: float) -> str:
    """The hover label of the point under (x, y), reached from a few pixels away (the library raycasts on moves)."""
    page.mouse.move(x - 6, y - 6)
    page.mouse.move(x, y, steps=3)
    wait_js(page, "!document.getElementById('hover').hidden")
    return page.locator("#hover span").inner_text()


def close(a, b, tol: float = 1.0) -> bool:
    return math.dist(a, b) <= tol


@pytest.fixture(scope="module")
def collection(live) -> tuple[int, int]:
    return fabricate_collection(live.procs.env["EMBEDLAB_HOME"], 3000, seed=5)


def test_a_drag_moves_the_picture_then_draws_the_points_where_it_showed_them(live, page, collection):
    collection_id, centre_row = collection
    page.goto(f"{live.url}/collections/{collection_id}/explore?composite-from=1")
    wait_js(page, "document.getElementById('explorer').dataset.ready === 'true'", 60)
    assert page.evaluate(f"{PLOT}.composited")
    p = at(page, centre_row)
    before = hovered(page, *p)

    dx, dy = 120, -70
    page.mouse.move(p[0] + 3, p[1] + 3)
    page.mouse.down()
    page.mouse.move(p[0] + 3 + dx / 2, p[1] + 3 + dy / 2, steps=5)
    # Mid-gesture: the canvas is moved by the drag so far, the camera (and so the points' drawn positions) not yet.
    assert page.evaluate("document.getElementById('plot-canvas').style.transform") == f"translate({dx // 2}px, {dy // 2}px) scale(1)"
    assert close(at(page, centre_row), p)
    assert page.locator("#hover").is_hidden()  # the hover of the press point, which moved with the picture
    screenshot(page, "explorer-gesture-mid-drag")
    page.mouse.move(p[0] + 3 + dx, p[1] + 3 + dy, steps=5)
    page.mouse.up()
    page.evaluate(f"{PLOT}.settled()")
    screenshot(page, "explorer-gesture-settled")
    assert page.evaluate("document.getElementById('plot-canvas').style.transform") == ""
    assert close(at(page, centre_row), (p[0] + dx, p[1] + dy))
    assert hovered(page, p[0] + dx, p[1] + dy) == before
    assert page.locator("#panel").is_hidden()  # the drag's release on a point was no click on it
    assert page.evaluate(f"{PLOT}.settles().length") == 1

    # A wheel zoom about the cursor: the point under it stays, another moves away from it by the zoom factor.
    q = at(page, centre_row)
    far = at(page, 0)
    page.mouse.move(*q)
    for _ in range(3):
        page.mouse.wheel(0, -100)
    page.evaluate(f"{PLOT}.settled()")
    assert close(at(page, centre_row), q)
    height = page.evaluate("document.getElementById('plot-canvas').clientHeight")
    factor = math.exp(300 / height)
    moved = at(page, 0)
    assert abs(math.dist(moved, q) / math.dist(far, q) - factor) < 0.01 * factor
    assert hovered(page, *q) == before
    assert page.evaluate(f"{PLOT}.settles().length") == 2

    # A drag pressed while a wheel zoom still shows as a transform (its settle drawn mid-drag): both land, once each.
    r, o = at(page, centre_row), at(page, 0)
    page.mouse.move(*r)
    page.mouse.wheel(0, 100)
    page.mouse.down()
    page.mouse.move(r[0] + 40, r[1] + 30, steps=8)
    page.mouse.up()
    page.evaluate(f"{PLOT}.settled()")
    f = math.exp(-100 / height)
    assert close(at(page, centre_row), (r[0] + 40, r[1] + 30))
    assert close(at(page, 0), (r[0] + f * (o[0] - r[0]) + 40, r[1] + f * (o[1] - r[1]) + 30))
    assert page.evaluate("document.getElementById('plot-canvas').style.transform") == ""

    # A click (no drag) on the point still selects it.
    q = at(page, centre_row)
    page.mouse.click(*q)
    wait_js(page, "!document.getElementById('panel').hidden", 30)
    assert not page.errors, page.errors


def test_a_lasso_drag_does_not_pan(live, page, collection):
    collection_id, centre_row = collection
    page.goto(f"{live.url}/collections/{collection_id}/explore?composite-from=1")
    wait_js(page, "document.getElementById('explorer').dataset.ready === 'true'", 60)
    cx, cy = at(page, centre_row)
    page.click("#lasso")
    page.mouse.move(cx - 30, cy - 30)
    page.mouse.down()
    for px, py in [(cx + 30, cy - 30), (cx + 30, cy + 30), (cx - 30, cy + 30), (cx - 30, cy - 18)]:
        page.mouse.move(px, py, steps=6)
        assert page.evaluate("document.getElementById('plot-canvas').style.transform") == ""
    page.mouse.up()
    wait_js(page, "/P@1/.test(document.getElementById('sel-count').textContent)", 60)
    assert centre_row in page.evaluate(f"{PLOT}.selectedRows()")
    assert page.evaluate(f"{PLOT}.settles().length") == 0
    assert not page.errors, page.errors
