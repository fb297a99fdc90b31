"""The embedding explorer in a browser: a finished job's scatter, a click, its neighbours."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import screenshot, wait_js

# The live server's worker inherits this: umap's compiled kernels are reused between runs.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "embedlab-tests" / "numba"))

pytestmark = pytest.mark.e2e
PLOT = "document.getElementById('plot').explorer"


@pytest.fixture(scope="module")
def finished_job(live) -> dict:
    job = live.submit(name="explorer <b>e2e</b>", dataset="digits", steps=20, eval_every=10, classes_per_batch=4, samples_per_class=8)
    live.ensure_worker()
    wait_for(lambda: live.job(job["id"])["status"] in ("succeeded", "failed"), 300, 0.5, "the job to finish")
    assert live.job(job["id"])["status"] == "succeeded"
    return job


def point_on_screen(page, row: int = 0) -> tuple[float, float, int]:
    """Page coordinates of a row of the scatter, and its dataset index (the page's own camera mapping)."""
    return tuple(
        page.evaluate(f"""() => {{
        const ex = document.getElementById("plot").explorer;
        return [...ex.screenOfRow({row}), ex.indexOf({row})];
    }}""")
    )


def near(page, index: int, x: float, y: float, pixels: float = 6) -> bool:
    """Whether image `index` is drawn within a few pixels of (x, y): points of a tight cluster overlap."""
    px, py = page.evaluate(f"document.getElementById('plot').explorer.screenOfIndex({index})")
    return abs(px - x) < pixels and abs(py - y) < pixels


def open_explorer(live, page, job_id: int) -> None:
    page.goto(f"{live.url}/jobs/{job_id}/explore")
    wait_js(page, "document.getElementById('explorer').dataset.ready === 'true'")
    wait_js(page, "document.querySelectorAll('#classes tbody tr').length > 0")


def test_click_a_point_shows_its_neighbours(live, page, finished_job):
    open_explorer(live, page, finished_job["id"])
    assert page.locator(".name").first.inner_text() == "explorer <b>e2e</b>"  # shown as text
    assert "recall@10" in page.locator("#preservation").inner_text()
    # What the layout cost is stated with it, phase by phase (the job's own stored timings).
    cost = live.get(f"/api/jobs/{finished_job['id']}/embedding/summary")["seconds"]
    assert set(cost) == {"embed_train_sample", "umap", "quality"}
    info = page.locator("#layout-info").inner_text()
    secs = lambda v: f"{v:.1f} s" if v < 10 else f"{round(v):,} s"  # noqa: E731 - the page's rounding
    assert (
        f"Laid out in {secs(sum(cost.values()))}: embed train sample {secs(cost['embed_train_sample'])}, umap {secs(cost['umap'])}" in info
    )
    # Hover: the thumbnail and label of the point under the cursor (row 0's, or one drawn on the same spot)
    x, y, index = point_on_screen(page)
    page.mouse.move(x - 30, y - 30)
    page.mouse.move(x, y, steps=3)
    wait_js(page, "!document.getElementById('hover').hidden")
    time.sleep(0.3)  # the last of the points passed on the way
    shown = int(page.locator("#hover span").inner_text().split("#")[1].split(" ")[0])
    assert near(page, shown, x, y)
    wait_js(page, "(() => { const i = document.querySelector('#hover img'); return i.complete && i.naturalWidth > 0; })()")
    page.mouse.click(x, y)
    wait_js(page, "document.querySelectorAll('#neighbors li').length === 10")
    assert page.locator("#panel").is_visible()
    clicked = int(page.locator("#query .ex-query-label").inner_text().split(" ")[0][1:])
    selected = page.evaluate("document.getElementById('plot').explorer.selectedRows()")
    assert page.evaluate(f"document.getElementById('plot').explorer.indexOf({selected[0]})") == clicked
    thumbs = page.locator("#neighbors li img")
    assert thumbs.count() == 10
    wait_js(page, "[...document.querySelectorAll('#neighbors li img')].every((i) => i.complete && i.naturalWidth > 0)")
    distances = [float(t) for t in page.locator("#neighbors .ex-neighbor-dist").all_inner_texts()]
    assert distances == sorted(distances)
    assert len(selected) == 11  # the query and its neighbours are what the scatter highlights
    # k is adjustable
    page.fill("#k", "4")
    page.locator("#k").dispatch_event("change")
    wait_js(page, "document.querySelectorAll('#neighbors li').length === 4")
    # Colouring by split and by nearest neighbour keeps the page alive
    page.select_option("#color-by", "nn")
    assert "nearest neighbour" in page.locator("#ex-status").inner_text()
    page.select_option("#color-by", "split")
    # ...and by each point's AP@R (the validation split scored) and its distance to the clicked point
    page.select_option("#color-by", "ap")
    wait_js(page, "/AP@R of [0-9,]+ scored points/.test(document.getElementById('ex-status').textContent)")
    page.select_option("#color-by", "distance")
    wait_js(page, f"document.getElementById('ex-status').textContent.startsWith('Distance to #{clicked} ')")
    screenshot(page, "explorer")
    assert not page.errors, page.errors


def test_lasso_selection_is_summarised_and_exported(live, page, finished_job):
    job_id = finished_job["id"]
    open_explorer(live, page, job_id)
    box = page.locator("#plot").bounding_box()
    cx, cy, w, h = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box["width"] * 0.3, box["height"] * 0.3
    page.click("#lasso")
    page.mouse.move(cx - w, cy - h)
    page.mouse.down()
    for px, py in [(cx + w, cy - h), (cx + w, cy + h), (cx - w, cy + h), (cx - w, cy - h)]:
        page.mouse.move(px, py, steps=8)
    page.mouse.up()
    wait_js(page, "/P@1/.test(document.getElementById('sel-count').textContent)")
    rows = page.evaluate("document.getElementById('plot').explorer.selectedRows()")
    assert len(rows) > 1
    count = int(page.locator("#sel-count").inner_text().split(" points")[0].replace(",", ""))
    assert count == len(rows)
    shares = [int(t) for t in page.locator("#sel-classes tbody td:nth-child(2)").all_inner_texts()]
    assert sum(shares) == count
    wait_js(page, "document.querySelectorAll('#sel-central img').length > 0")
    with page.expect_download() as download:
        page.click(".sel-export[data-format=csv]")
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == "index,label,class_name,split" and len(lines) == count + 1
    indices = {int(line.split(",")[0]) for line in lines[1:]}
    assert indices == {page.evaluate(f"document.getElementById('plot').explorer.indexOf({r})") for r in rows}
    # Their embeddings, row for row: the job's full export's rows of those indices.
    with page.expect_download() as download:
        page.click(".sel-export[data-format=npy]")
    assert download.value.suggested_filename == f"job{job_id}-selection.npy"
    vectors = np.load(download.value.path(), allow_pickle=False)
    points = live.get(f"/api/jobs/{job_id}/embedding")["points"]
    every = np.load(io.BytesIO(httpx.get(f"{live.url}/api/jobs/{job_id}/embedding/export?format=npy").content), allow_pickle=False)
    row_of = {p["index"]: r for r, p in enumerate(points)}
    np.testing.assert_array_equal(vectors, every[[row_of[int(line.split(",")[0])] for line in lines[1:]]])
    assert not page.errors, page.errors


def test_binary_columns_decode_in_the_browser(live, page, finished_job):
    """static/columns.js's decoder (the explorer's), run in Chromium, gives the values the JSON endpoint states."""
    job_id = finished_job["id"]
    open_explorer(live, page, job_id)
    decoded = page.evaluate(f"""async () => {{
        const {{ decodeColumns }} = await import("/static/columns.js");
        const r = await fetch("/api/jobs/{job_id}/embedding/columns");
        const c = decodeColumns(await r.arrayBuffer());
        return {{ n: c.n, index: Array.from(c.index), x: Array.from(c.x), label: Array.from(c.label), split: Array.from(c.split),
                  nn: Array.from(c.nn_same_label), class_names: c.class_names }};
    }}""")
    cols = live.get(f"/api/jobs/{job_id}/embedding?format=columns")
    assert decoded["n"] == len(cols["index"])
    assert decoded["index"] == cols["index"] and decoded["label"] == cols["label"] and decoded["split"] == cols["split"]
    assert decoded["nn"] == cols["nn_same_label"] and decoded["class_names"] == cols["class_names"]
    assert decoded["x"] == pytest.approx(cols["x"], abs=1e-4)  # the JSON rounds to 4 decimals; the binary column is the float32
    assert not page.errors, page.errors


def test_the_upload_marker_moves_with_a_composited_drag(live, page, finished_job, tmp_path):
    """An uploaded image's marker stays on its place in the layout when the neighbour panel narrows the plot, while a drag moves the picture (?composite-from=1:
    the drawn canvas moves, the points are drawn once it settles) and after the points are drawn again."""
    import math

    import numpy as np
    from PIL import Image

    image = tmp_path / "seven.png"
    pixels = np.zeros((8, 8), np.uint8)
    pixels[1, 1:7] = 255
    pixels[2:7, 5] = 255
    Image.fromarray(pixels).save(image)
    page.goto(f"{live.url}/jobs/{finished_job['id']}/explore?composite-from=1")
    wait_js(page, "document.getElementById('explorer').dataset.ready === 'true'")
    page.set_input_files("#upload", str(image))
    wait_js(page, "!document.getElementById('upload-marker').hidden", 60)
    wait_js(page, "!document.getElementById('panel').hidden", 60)

    def marker() -> tuple[float, float]:
        b = page.locator("#upload-marker").bounding_box()
        return b["x"] + b["width"] / 2, b["y"] + b["height"] / 2

    # The panel opening narrowed the plot: the marker is where the layout now draws the upload, not where it first was.
    wait_js(
        page,
        f"(() => {{ const p = {PLOT}.uploadScreen(); const b = document.getElementById('upload-marker').getBoundingClientRect();"
        " return Math.hypot(b.x + b.width / 2 - p[0], b.y + b.height / 2 - p[1]) < 1; })()",
        10,
    )
    m = marker()
    box = page.locator("#plot-canvas").bounding_box()
    start = (box["x"] + 40, box["y"] + box["height"] - 40)  # a corner, away from the marker
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + 30, start[1] - 20, steps=4)
    assert math.dist(marker(), (m[0] + 30, m[1] - 20)) < 1.5  # mid-drag: with the moved picture
    page.mouse.move(start[0] + 60, start[1] - 40, steps=4)
    page.mouse.up()
    page.evaluate("document.getElementById('plot').explorer.settled()")
    assert page.evaluate("document.getElementById('plot-canvas').style.transform") == ""
    assert math.dist(marker(), (m[0] + 60, m[1] - 40)) < 1.5  # drawn again: where the drag left it
    assert page.locator("#panel").is_visible()  # the drag was no click: the upload's neighbours stay
    assert not page.errors, page.errors
