"""Explorer benchmarks: neighbour lookups through HTTP, exact vs HNSW, the UMAP projection, the page in Chromium.

    .venv/bin/python bench/explorer.py                       # everything (1,000,000 points for the ANN part)
    .venv/bin/python bench/explorer.py --ann-size 300000     # a smaller ANN part
    .venv/bin/python bench/explorer.py --only projection     # lookup | ann | projection | browser | import
    .venv/bin/python bench/explorer.py --only browser --browser-sizes 100000,1000000
    .venv/bin/python bench/explorer.py --only browser --browser-sizes 200000 --skip-index --performance-mode on
    .venv/bin/python bench/explorer.py --only hover --hover-sizes 200000,1000000

1. lookup: a job whose projection.npz holds 100,000 128-d embeddings, served by a real
   `embedlab serve` process; GET /api/jobs/{id}/neighbors?index=i&k=10 for random i,
   one at a time over a kept-alive connection: p50/p95/p99 (target p95 < 50 ms).
2. ann: exact flat search vs faiss HNSW (app.explorer.neighbors settings) on N points: build time,
   efSearch chosen for recall@10 >= 0.99, per-query latency (one query at a time, as the API
   asks), recall@10 on held-out queries.
3. projection: 10,000 points laid out by app.explorer.layout.fit, in fresh processes: cold (empty
   Numba cache) and warm (the cache from the cold run), against umap-learn's defaults
   (UMAP(metric="cosine", random_state=0)) in a fresh process with the same cache; both
   with kNN recall@10 (2-D vs full) and trustworthiness@10.
4. browser: the explorer page in headless Chromium (software GL; the backend is printed) over a
   stored layout of N synthetic points: navigation to every point drawn, then at the largest N a
   scripted drag-pan and wheel zoom (median and p95 frame interval from requestAnimationFrame) and
   the memory of the Chromium processes; then the same columns through Plotly scattergl (the
   package's plotly.min.js) in a fresh browser, the same script, and the ratios (a Plotly page that
   does not draw within --plotly-timeout, or crashes, is the result). --performance-mode on|off
   forces regl-scatterplot's performanceMode (squares, no blending; the page turns it on past
   500,000 points); --skip-index holds the summary back, so the 1,000,000-point HNSW build (minutes)
   neither runs nor is waited for. From 100,000 points (--composite-from N moves that line) a pan or zoom moves
   the drawn picture and draws the points once the gesture settles (static/explore_gesture.js): the frames of the drag
   alone are reported too, and each settle's redraw, the last one waited for after the script.

The data are embedding-like: unit vectors in clusters (one per class) that vary along a few
directions each, so neighbourhoods have structure for a layout to keep.

5. import: 1,000,000 x 128 float32 embeddings with labels imported by path into a real server (as
   `embedlab import --server-paths` does): time to checked, to laid out, to the explorer's columns and
   its neighbour index; the layout child's own phase times (UMAP, neighbour index, the nearest-same-label
   searches, the quality measures); the peak memory of the server and of the layout's child process.
6. hover: a fabricated N-point collection (tests/e2e/fabricate.py, no import) whose points share a few thousand image
   files (two of 4000 x 4000, the rest 64-640 px), its explorer in headless Chromium: on-screen points hovered one after
   another, from the mousemove to the hover card's thumbnail loaded (median, p95), split by what the image met: a decode
   (its file's first thumbnail), the server's thumbnail cache (another point on the same file), the browser's cache.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402


def embeddings(
    n: int, dim: int = 128, classes: int = 20, latent: int = 4, noise: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, dim))
    directions = rng.normal(size=(classes, latent, dim)) * 0.35
    X = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):  # chunks: the einsum temporary stays small at 1,000,000 points
        lab = labels[start : start + 100_000]
        z = rng.normal(size=(len(lab), latent))
        chunk = centres[lab] + np.einsum("nl,nld->nd", z, directions[lab]) + rng.normal(scale=noise, size=(len(lab), dim))
        X[start : start + len(lab)] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return X, labels.astype(np.int64)


def percentiles(ms: list[float]) -> str:
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms"


# -- 1. lookups through HTTP ----------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux): unlike wall time, barely moved by other load on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def stored_job_server(n: int) -> Iterator[tuple[str, int, int]]:
    """A real `embedlab serve` process over a job whose projection.npz holds n synthetic 128-d points; (url, job id, server pid)."""

    from app.config import Settings
    from app.explorer.layout import LayoutState
    from app.spec import JobSpec
    from app.store import jobs
    from app.store.db import get_engine, init_db
    from trainer.project import write_projection

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        settings = Settings(home=home, demo=False)
        engine = get_engine(settings.db_url)
        init_db(engine)
        job_id = jobs.submit(engine, JobSpec(dataset="digits")).id
        X, labels = embeddings(n)
        rng = np.random.default_rng(1)
        # 2-D positions with the classes' structure (a cluster per class), as a layout would have
        xy = (rng.normal(size=(20, 2)) * 6)[labels] + rng.normal(size=(n, 2))
        arrays = {
            "embeddings": X,
            "labels": labels,
            "indices": np.arange(n, dtype=np.int64),
            "split": (np.arange(n) % 5 == 4).astype(np.int8),
            "xy": xy.astype(np.float32),
            "fitted": np.ones(n, bool),
            "nn_same_label": rng.random(n) < 0.9,
        }
        meta = {
            "version": 1,
            "space": "cosine",
            "class_names": [str(c) for c in range(20)],
            "points": n,
            "splits": {"val": int((arrays["split"] == 0).sum()), "train": int(arrays["split"].sum())},
            "fitted_points": n,
            "umap": {"n_neighbors": 15, "min_dist": 0.1, "seed": 0},
            "layout": LayoutState("cosine", 10, 1.0, 1.0, 1.0, 1.0, 1.0, 5.0, 200, 0, 2.0).to_json(),
            "preservation": {"knn_recall_at_10": 0.0, "trustworthiness_at_10": 0.0},
            "per_class": [],
            "seconds": {},
        }
        write_projection(settings.job_dir(job_id), arrays, meta)
        del X, arrays

        with served(home) as (url, pid):
            yield url, job_id, pid


@contextlib.contextmanager
def served(home: Path) -> Iterator[tuple[str, int]]:
    """A real `embedlab serve` process (no workers) over `home`, until the block ends; (url, pid)."""
    with common.served({**os.environ, "EMBEDLAB_HOME": str(home), "EMBEDLAB_DEMO": "false"}) as (url, server):
        yield url, server.pid


def bench_lookup(n: int, requests: int) -> None:
    import httpx

    rng = np.random.default_rng(1)
    with stored_job_server(n) as (url, job_id, pid):
        with httpx.Client(base_url=url, timeout=120) as client:
            t = time.perf_counter()
            assert client.get(f"/api/jobs/{job_id}/neighbors", params={"index": 0, "k": 10}).status_code == 200
            first = (time.perf_counter() - t) * 1000
            ms = []
            cpu_before = cpu_seconds(pid)
            for i in rng.integers(0, n, requests).tolist():
                t = time.perf_counter()
                r = client.get(f"/api/jobs/{job_id}/neighbors", params={"index": i, "k": 10})
                ms.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200 and len(r.json()["neighbors"]) == 10
            cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000 / requests
    print(
        f"lookup: {n:,} x 128-d, exact index; first request (read + index build) {first:.0f} ms; "
        f"{requests} requests k=10 through HTTP: {percentiles(ms)}; server CPU {cpu_ms:.1f} ms/request"
    )


# -- 4. the page in a browser ------------------------------------------------------


def _chromium_rss_mb(pid: int) -> float:
    """Resident memory of the Chromium processes (browser, GPU, renderers) started under process `pid`."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            if "chrom" in Path(f"/proc/{p}/comm").read_text():
                total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
    return total / 2**20


FRAMES_JS = """() => { window.__frames = []; const tick = (t) => { window.__frames.push(t); if (!window.__stop) requestAnimationFrame(tick); };
    requestAnimationFrame(tick); }"""
GL_JS = """() => { const g = document.createElement('canvas').getContext('webgl');
    const i = g && g.getExtension('WEBGL_debug_renderer_info'); return i ? g.getParameter(i.UNMASKED_RENDERER_WEBGL) : 'unknown'; }"""
PERFORMANCE_MODE = "performanceMode: n > 500000"  # static/explore.js's rule, rewritten by --performance-mode

# The same columns drawn by Plotly scattergl: a page the bench serves itself (page.route), with no Content-Security-Policy,
# since regl (under scattergl) compiles with `Function`. Pan by dragging, zoom by the wheel, as in the explorer.
PLOTLY_PAGE = """<!doctype html><html><head><meta charset="utf-8"><script src="/vendor/plotly.min.js"></script></head>
<body style="margin:0"><div id="plot" style="width:1400px;height:900px"></div><script type="module">
import { decodeColumns } from "/static/columns.js";
const c = decodeColumns(await (await fetch("/api/jobs/JOB/embedding/columns")).arrayBuffer());
const gd = document.getElementById("plot");
const axis = { visible: false, scaleanchor: undefined };
await Plotly.newPlot(gd, [{ type: "scattergl", mode: "markers", x: c.x, y: c.y,
  marker: { size: SIZE, color: c.label, colorscale: "Portland", opacity: 0.8 } }],
  { dragmode: "pan", margin: { l: 0, r: 0, t: 0, b: 0 }, xaxis: axis, yaxis: { ...axis, scaleanchor: "x" } },
  { scrollZoom: true, displayModeBar: false });
await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
performance.mark("plotly-drawn");
document.body.dataset.ready = "true";
</script></body></html>"""


PAN_LIMIT_S = 60  # a page slower than this gets its pan and zoom cut short, and says at which step
# The explorer's composited gestures (static/explore_gesture.js): the wait for the last one's points to be drawn, and the
# time from each settle to its draw; other pages (the live-redraw mode, Plotly) have none.
SETTLED_JS = """() => { const e = document.getElementById('plot').explorer;
    return e && e.composited ? e.settled().then(() => e.settles()) : null; }"""


def pan_and_zoom(page, box: dict) -> dict:
    """A scripted drag-pan there and back (40 moves) and a wheel zoom in and out (20 steps) over `box`, with every frame timed:
    all of them, those of the drag alone (what the user sees while moving), and then the wait for the settled redraw."""
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    moves = [(cx + 200 * np.sin(i / 40 * 2 * np.pi), cy + 100 * np.sin(i / 20 * np.pi)) for i in range(40)]
    page.evaluate(FRAMES_JS)
    page.mouse.move(cx, cy)
    t = time.perf_counter()
    steps = 0
    drag_start = page.evaluate("performance.now()")
    page.mouse.down()
    for x, y in moves:
        if time.perf_counter() - t > PAN_LIMIT_S:
            break
        page.mouse.move(x, y)
        steps += 1
    drag_end = page.evaluate("performance.now()")
    page.mouse.up()
    for i in range(20):
        if time.perf_counter() - t > PAN_LIMIT_S:
            break
        page.mouse.wheel(0, -120 if i < 10 else 120)
        steps += 1
    scripted = time.perf_counter() - t
    t = time.perf_counter()
    settles = page.evaluate(SETTLED_JS)
    settle_wait = time.perf_counter() - t
    page.evaluate("window.__stop = true")
    stamps = np.array(page.evaluate("window.__frames"))
    frames = np.diff(stamps)
    drag = np.diff(stamps[(stamps >= drag_start) & (stamps <= drag_end)])
    return {
        "step_ms": scripted / steps * 1000,
        "steps": steps,
        "frames": len(frames),
        "median": float(np.median(frames)),
        "p95": float(np.percentile(frames, 95)),
        "max": float(frames.max()),
        "drag": (len(drag), float(np.median(drag)), float(np.percentile(drag, 95))) if len(drag) else None,
        "settles": settles,
        "settle_wait_ms": settle_wait * 1000,
        "heap": page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0") / 2**20,
        "rss": _chromium_rss_mb(os.getpid()),
    }


def measure_page(
    p, url: str, path: str, ready: str, mark: str, canvas: str, interact: bool, timeout: float, routes: dict, shot: Path | None
) -> dict:
    """Open `path` in a fresh headless Chromium (software GL; its memory alone): seconds from navigation to `mark`, then the
    pan and zoom; {"failed": reason} when it does not draw within `timeout` or the tab crashes."""
    from tests.conftest import wait_for
    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        crashed = []
        page.on("crash", lambda _: crashed.append(True))
        for pattern, handler in routes.items():
            page.route(pattern, handler)
        page.goto(f"{url}{path}")
        try:
            wait_for(lambda: crashed or page.evaluate(ready), timeout, 0.2, "drawn")
        except (AssertionError, TimeoutError):
            return {"failed": f"not drawn within {timeout:.0f} s", "rss": _chromium_rss_mb(os.getpid())}
        except Exception as e:  # noqa: BLE001 - a crashed tab answers evaluate with an error: that is the result
            return {"failed": f"the tab failed: {type(e).__name__}: {str(e).splitlines()[0]}"}
        if crashed:
            return {"failed": "the tab crashed"}
        out = {"drawn": page.evaluate(f"performance.getEntriesByName('{mark}')[0].startTime") / 1000, "gl": page.evaluate(GL_JS)}
        if shot is not None:  # to look at: every point there, the picture right
            page.screenshot(path=str(shot))
        if interact:
            out |= pan_and_zoom(page, page.locator(canvas).bounding_box())
        return out
    finally:
        browser.close()


def _said(n: int, name: str, m: dict) -> str:
    if "failed" in m:
        return f"browser: {n:,} points, {name}: {m['failed']}" + (f" (Chromium RSS then {m['rss']:.0f} MiB)" if "rss" in m else "")
    line = f"browser: {n:,} points, {name}: navigation to all points drawn {m['drawn']:.2f} s (GL: {m['gl']})"
    if "step_ms" in m:
        # Idle frames (the page waiting for the next scripted event) count too: read the p95 and the time a step with the median.
        line += (
            f"; scripted pan (40 moves) + zoom (20 wheel steps) {m['step_ms']:.0f} ms a step"
            + (f" (cut short at {PAN_LIMIT_S} s: {m['steps']} of 60 steps)" if m["steps"] < 60 else "")
            + f", {m['frames']} frames: "
            f"median {m['median']:.0f} ms, p95 {m['p95']:.0f} ms, max {m['max']:.0f} ms"
        )
        if m["drag"]:
            line += f"; during the drag {m['drag'][0]} frames: median {m['drag'][1]:.0f} ms, p95 {m['drag'][2]:.0f} ms"
        if m["settles"] is not None:  # composited gestures: each settle's redraw, the last one waited for after the script
            line += (
                f"; settle redraws {', '.join(f'{d:.0f}' for d in m['settles'])} ms "
                f"(the last drawn {m['settle_wait_ms']:.0f} ms after the script's last wheel step)"
            )
        line += f"; JS heap {m['heap']:.0f} MiB; Chromium processes RSS {m['rss']:.0f} MiB"
    return line


def bench_browser(
    n: int,
    interact: bool,
    plotly: bool,
    performance_mode: str,
    skip_index: bool,
    plotly_timeout: float,
    shots: Path | None,
    composite_from: int | None = None,
) -> None:
    """The explorer on n points in headless Chromium (software GL): time to all points drawn, then a scripted pan and zoom;
    then the same columns through Plotly scattergl in a fresh browser, and the ratios."""
    import httpx
    from playwright.sync_api import sync_playwright

    with stored_job_server(n) as (url, job_id, _):
        t = time.perf_counter()
        body = httpx.get(f"{url}/api/jobs/{job_id}/embedding/columns", timeout=600).content
        cold = time.perf_counter() - t
        t = time.perf_counter()
        httpx.get(f"{url}/api/jobs/{job_id}/embedding/columns", timeout=600)
        warm = time.perf_counter() - t
        routes = {}
        if skip_index:  # the summary (and its neighbour index) held back: the drawing and the pan measured alone
            routes["**/embedding/summary"] = lambda route: route.abort()
            index = "not built (--skip-index)"
        else:
            t = time.perf_counter()  # built before the page opens, so that it does not share the 2 cores with the drawing
            httpx.get(f"{url}/api/jobs/{job_id}/embedding/summary", timeout=1200)
            index = f"{time.perf_counter() - t:.1f} s"
        if performance_mode != "auto":
            script = httpx.get(f"{url}/static/explore.js").text
            assert PERFORMANCE_MODE in script, "static/explore.js no longer says when performanceMode is on"
            script = script.replace(PERFORMANCE_MODE, f"performanceMode: {str(performance_mode == 'on').lower()}")
            routes["**/static/explore.js"] = lambda route: route.fulfill(body=script, content_type="text/javascript")
        print(
            f"browser: {n:,} points; GET /embedding/columns {len(body) / 2**20:.1f} MiB: first (read) {cold:.1f} s, "
            f"then {warm * 1000:.0f} ms (cached); the summary's neighbour index build {index}; performanceMode {performance_mode}"
        )
        with sync_playwright() as p:
            ready = "document.getElementById('explorer').dataset.ready === 'true'"
            ours = measure_page(
                p,
                url,
                f"/jobs/{job_id}/explore" + (f"?composite-from={composite_from}" if composite_from else ""),
                ready,
                "explorer-drawn",
                "#plot-canvas",
                interact,
                600,
                routes,
                shots and shots / f"explorer-{n}-{performance_mode}.png",
            )
            print(_said(n, "explorer (regl-scatterplot)", ours))
            if not plotly:
                return
            html = PLOTLY_PAGE.replace("JOB", str(job_id)).replace("SIZE", "2" if n > 300_000 else "3")
            page_route = {f"{url}/bench/plotly": lambda route: route.fulfill(body=html, content_type="text/html")}
            theirs = measure_page(
                p,
                url,
                "/bench/plotly",
                "document.body.dataset.ready === 'true'",
                "plotly-drawn",
                "#plot",
                interact,
                plotly_timeout,
                page_route,
                shots and shots / f"plotly-{n}.png",
            )
            print(_said(n, "Plotly scattergl", theirs))
            if "failed" not in theirs and "failed" not in ours:
                ratios = [f"drawn {theirs['drawn'] / ours['drawn']:.1f}x"]
                if interact:
                    ratios += [
                        f"a pan/zoom step {theirs['step_ms'] / ours['step_ms']:.1f}x",
                        f"frame p95 {theirs['p95'] / ours['p95']:.1f}x",
                    ]
                    ratios += [f"Chromium RSS {theirs['rss'] / ours['rss']:.2f}x"]
                print(f"browser: {n:,} points, Plotly scattergl / explorer: " + ", ".join(ratios))


# -- 2. exact vs HNSW -----------------------------------------------------------


def bench_ann(n: int, queries: int) -> None:
    from app.explorer import neighbors as nb

    X, _ = embeddings(n + queries, seed=2)
    base, held_out = nb.prepare(X[:n], "cosine"), nb.prepare(X[n:], "cosine")
    t = time.perf_counter()
    flat = nb.flat_index(base, "cosine")
    flat_build = time.perf_counter() - t
    t = time.perf_counter()
    hnsw = nb.hnsw_index(base, "cosine")
    hnsw_build = time.perf_counter() - t
    ef, tuned_recall = nb.tune_hnsw(hnsw, flat, base, "cosine")

    def one_at_a_time(index) -> tuple[np.ndarray, float]:
        rows, start = [], time.perf_counter()
        for q in held_out:
            rows.append(nb.search_raw(index, q[None], 10, "cosine")[0][0])
        return np.array(rows), (time.perf_counter() - start) * 1000 / len(held_out)

    exact_rows, exact_ms = one_at_a_time(flat)
    approx_rows, approx_ms = one_at_a_time(hnsw)
    recall = nb.recall_at(approx_rows, exact_rows)
    print(
        f"ann: {n:,} x 128-d; flat build {flat_build:.1f} s, HNSW (M={nb.HNSW_M}, efConstruction={nb.HNSW_EF_CONSTRUCTION}) build "
        f"{hnsw_build:.0f} s; efSearch {ef} (recall@10 {tuned_recall:.4f} on indexed points)"
    )
    print(
        f"ann: {queries} held-out queries, one at a time: exact {exact_ms:.2f} ms/query, HNSW {approx_ms:.3f} ms/query "
        f"({exact_ms / approx_ms:.1f}x faster), recall@10 {recall:.4f}"
    )


# -- 3. projection --------------------------------------------------------------


def projection_child(mode: str, n: int) -> None:
    """Runs in a fresh process: import umap (JIT or cache), lay out, measure preservation; prints one JSON line."""
    import warnings

    warnings.filterwarnings("ignore")
    from app.explorer import layout

    X, _ = embeddings(n, seed=3)
    t0 = time.perf_counter()
    if mode == "explorer":
        layout.load_umap(Path(os.environ["NUMBA_CACHE_DIR"]))
    else:
        import umap
    t1 = time.perf_counter()
    if mode == "explorer":
        xy, _, _ = layout.fit(X, "cosine", seed=0, home=Path(os.environ["NUMBA_CACHE_DIR"]))
    else:
        xy = umap.UMAP(metric="cosine", random_state=0).fit_transform(X)
    t2 = time.perf_counter()
    again = None
    if mode == "default":  # the same fit again in the same process: the JIT is paid, only the work is left
        umap.UMAP(metric="cosine", random_state=0).fit_transform(X)
        again = time.perf_counter() - t2
    print(
        json.dumps(
            {
                "import": t1 - t0,
                "fit": t2 - t1,
                "fit_again": again,
                "recall": layout.knn_recall(X, xy, "cosine"),
                "trust": layout.trustworthiness(X, xy, "cosine"),
            }
        )
    )


def bench_projection(n: int) -> None:
    def run(mode: str, cache: str) -> dict:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        out = subprocess.run(
            [sys.executable, __file__, "--projection-child", mode, "--projection-size", str(n)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    with tempfile.TemporaryDirectory() as cache:
        results = {
            "explorer, cold": run("explorer", cache),
            "explorer, warm": run("explorer", cache),
            "umap-learn defaults": run("default", cache),
        }
    print(f"projection: {n:,} x 128-d embeddings, fresh process each (seconds; import = umap import incl. Numba cache load or JIT)")
    for name, r in results.items():
        again = f", same fit again in-process {r['fit_again']:.1f}" if r["fit_again"] is not None else ""
        print(
            f"  {name:20s} import {r['import']:5.1f}  layout {r['fit']:5.1f}  total {r['import'] + r['fit']:5.1f}{again}  "
            f"kNN recall@10 {r['recall']:.3f}  trustworthiness@10 {r['trust']:.3f}"
        )
    warm, default = results["explorer, warm"], results["umap-learn defaults"]
    print(
        f"  warm explorer layout vs defaults: {default['fit'] / warm['fit']:.1f}x faster per process, "
        f"{(default['fit_again'] or default['fit']) / warm['fit']:.1f}x against the defaults' JIT-free second fit"
    )


# -- 5. import --------------------------------------------------------------------


def _status_kb(pid: int, key: str) -> int:
    """A /proc/<pid>/status field in kB (VmHWM: the process's peak resident memory), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    """The processes any thread of `pid` started (the server starts the layout from a request's thread)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def bench_import(n: int, dim: int = 128) -> None:
    """n x dim float32 embeddings with labels, imported by path into a real `embedlab serve` (what
    `embedlab import --server-paths` sends): the check, the layout in its child process, then the
    explorer's first columns and summary (the API's neighbour index); peak memory of the server and of the child."""
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        data = home / "datasets"
        data.mkdir(parents=True)
        X, labels = embeddings(n, dim)
        np.save(data / "vectors.npy", X)
        np.save(data / "labels.npy", labels)
        del X
        with served(home) as (url, server_pid):
            started = time.perf_counter()
            r = httpx.post(
                f"{url}/api/collections",
                data={"embeddings_path": str(data / "vectors.npy"), "labels_path": str(data / "labels.npy"), "space": "cosine"},
                timeout=None,
            )
            assert r.status_code == 201, r.text
            checked = time.perf_counter() - started
            cid = r.json()["id"]
            child_peak, phases, last = 0, [], None
            while True:
                for c in _children(server_pid):
                    child_peak = max(child_peak, _status_kb(c, "VmHWM"))
                found = httpx.get(f"{url}/api/collections/{cid}", timeout=30).json()
                if found["phase"] and found["phase"] != last:
                    last = found["phase"]
                    phases.append(f"{time.perf_counter() - started:.0f}s {last}")
                if found["status"] != "laying out":
                    break
                time.sleep(1.0)
            assert found["status"] == "ready", found["error"]
            laid_out = time.perf_counter() - started
            body = httpx.get(f"{url}/api/collections/{cid}/embedding/columns", timeout=None)
            assert body.status_code == 200
            drawable = time.perf_counter() - started
            summary = httpx.get(f"{url}/api/collections/{cid}/embedding/summary", timeout=None).json()
            usable = time.perf_counter() - started
            print(
                f"import {n:,} x {dim} float32 + labels (.npy by path): checked and stored in {checked:.1f} s; "
                f"laid out in {laid_out:.0f} s ({'; '.join(phases)}); columns ({len(body.content) / 2**20:.0f} MiB) at {drawable:.0f} s; "
                f"neighbours/summary usable at {usable:.0f} s (index {summary['index']['kind']}, recall@10 {summary['index']['recall_at_10']}); "
                f"the layout child's phases: {', '.join(f'{k} {v:.1f} s' for k, v in summary['seconds'].items())}; "
                f"peak memory: server {_status_kb(server_pid, 'VmHWM') / 1024:.0f} MiB, layout child {child_peak / 1024:.0f} MiB; "
                f"load average {os.getloadavg()[0]:.1f}"
            )


# -- 6. hover to thumbnail ------------------------------------------------------

# In the page: when the last mousemove reached it, when the hover card showed, when its <img> fired `load` (and with what).
HOVER_SETUP_JS = """() => {
  performance.setResourceTimingBufferSize(100000);
  const box = document.getElementById('hover'), img = box.querySelector('img');
  const h = window.__hover = { move: null, shown: null, loaded: null, src: null };
  // The event's own time: the page's hover may handle the move (and show the card) before this listener runs.
  window.addEventListener('mousemove', (e) => { h.move = e.timeStamp; }, true);
  new MutationObserver(() => { if (!box.hidden && h.shown === null) h.shown = performance.now(); })
    .observe(box, { attributes: true, attributeFilter: ['hidden'] });
  img.addEventListener('load', () => { h.loaded = performance.now(); h.src = img.src; });
}"""
HOVER_RESET_JS = "() => { const h = window.__hover; h.move = h.shown = h.loaded = h.src = null; }"
HOVER_DONE_JS = """() => { const h = window.__hover, b = document.getElementById('hover'), i = b.querySelector('img');
  return h.loaded !== null && !b.hidden && i.complete && i.naturalWidth > 0; }"""
HOVER_LIMIT_S = 240  # the rounds are cut short past this, and say so
NEXT_FRAMES_JS = "new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
# The request behind this load, if it made one (a browser-cached image has no new resource entry): time to first byte.
HOVER_RESULT_JS = """() => { const h = window.__hover;
  const e = performance.getEntriesByName(h.src).filter((r) => r.startTime >= h.move).pop();
  return { ...h, ttfb: e ? e.responseStart - e.requestStart : null }; }"""


def hover_images(folder: Path, files: int, big: int, seed: int = 0) -> dict[str, int]:
    """Replace the fabricated collection's `files` PNGs: the first `big` at 4000 x 4000, the rest photo-sized to small
    (64-640 px, smooth content with noise), written once to a kept folder (a second run copies them); files per side."""
    import shutil

    from PIL import Image

    from bench.thumbnails import big_image

    kept = Path(tempfile.gettempdir()) / "embedlab-bench-hover-images" / f"{files}-{big}-{seed}"
    rng = np.random.default_rng(seed)
    sides = [4000] * big + rng.integers(64, 641, files - big).tolist()
    if len(list(kept.glob("*.png"))) != files:
        kept.mkdir(parents=True, exist_ok=True)
        noise = rng.integers(0, 48, (640, 640, 3), dtype=np.uint8)
        ramp = np.linspace(0, 200, 640, dtype=np.float32)
        for i, side in enumerate(sides):
            path = kept / f"img{i:02d}.png"
            if side == 4000:
                big_image(4000, i).save(path, compress_level=1)
                continue
            tint = np.add.outer(ramp[:side] * rng.uniform(0.2, 1), ramp[:side] * rng.uniform(0.2, 1))[..., None] + rng.uniform(0, 50, 3)
            Image.fromarray((tint + noise[:side, :side]).astype(np.uint8), "RGB").save(path, compress_level=1)
    shutil.copytree(kept, folder, dirs_exist_ok=True)
    return {"4000 px": big, "256-640 px": sum(256 <= s < 4000 for s in sides), "64-255 px": sum(s < 256 for s in sides)}


def hover_once(page, x: float, y: float, timeout_ms: float) -> dict | None:
    """Move off the points (the card hides), then onto (x, y) in one mousemove; the page's timings, None without a thumbnail
    within `timeout_ms`."""
    page.mouse.move(5, 5)
    page.wait_for_function("document.getElementById('hover').hidden", timeout=timeout_ms)
    page.evaluate(NEXT_FRAMES_JS)  # the redraw that un-highlights the last point done: not counted in the next hover
    page.evaluate(HOVER_RESET_JS)
    page.mouse.move(x, y)
    try:
        page.wait_for_function(HOVER_DONE_JS, timeout=timeout_ms)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError: no card or no thumbnail there, counted as such
        return None
    return page.evaluate(HOVER_RESULT_JS)


# What a hover that timed out left: the card hidden (no point picked there), or shown with its image not loaded.
HOVER_MISSED_JS = """() => { const b = document.getElementById('hover'), i = b.querySelector('img');
  return b.hidden ? 'no card' : `card shown, image ${i.complete ? 'failed' : 'not loaded'}`; }"""


def bench_hover(n: int, hovers: int, files: int, big: int) -> None:
    """A fabricated n-point collection whose points share `files` image files (`big` of them 4000 x 4000), its explorer in
    headless Chromium: `hovers` on-screen points hovered one after another, three rounds (first time: each point's file not
    yet thumbnailed; again: the same points, the browser's cache; other points on the same files: the server's cache),
    each timed from the mousemove to the card's thumbnail loaded, classified by what the shown point's image actually met."""
    import httpx
    from playwright.sync_api import sync_playwright

    from app.files import datasets_dir
    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
    from tests.e2e.fabricate import fabricate_collection

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        t = time.perf_counter()
        cid, _ = fabricate_collection(home, n, images=files)
        sides = hover_images(datasets_dir(home) / "fabricated-images", files, big)
        print(
            f"hover: {n:,} points fabricated, {files:,} image files ({', '.join(f'{v:,} of {k}' for k, v in sides.items())}; "
            f"point i shows file i mod {files}) in {time.perf_counter() - t:.0f} s"
        )
        with served(home) as (url, _), sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # The first thumbnail request reads projection.npz into the explorer's cache (the neighbour index waits for the
            # first search: the page's summary): timed apart.
            t = time.perf_counter()
            assert httpx.get(f"{url}/api/collections/{cid}/images/2", timeout=1200).status_code == 200
            first_request = time.perf_counter() - t
            page.goto(f"{url}/collections/{cid}/explore")
            page.wait_for_function("document.getElementById('explorer').dataset.ready === 'true'", timeout=300_000)
            drawn = page.evaluate("performance.getEntriesByName('explorer-drawn')[0].startTime") / 1000
            page.evaluate(HOVER_SETUP_JS)
            box = page.locator("#plot-canvas").bounding_box()
            rng = np.random.default_rng(3)
            # Points on distinct files (the big ones among them), then on screen away from the canvas's edges.
            first = np.concatenate([np.arange(big), rng.permutation(np.arange(big, files))])
            rows = first + files * rng.integers(0, n // files, len(first))
            xy = page.evaluate("(rows) => rows.map((r) => document.getElementById('plot').explorer.screenOfRow(r))", rows.tolist())
            inside = [
                i
                for i, (x, y) in enumerate(xy)
                if box["x"] + 30 < x < box["x"] + box["width"] - 30 and box["y"] + 30 < y < box["y"] + box["height"] - 30
            ][:hovers]
            targets = rows[inside]
            others = targets + files * np.where(targets + files < n, 1, -1)  # the same file, another point (URL)
            other_xy = page.evaluate("(rows) => rows.map((r) => document.getElementById('plot').explorer.screenOfRow(r))", others.tolist())
            rounds = {"first time": [xy[i] for i in inside], "again": [xy[i] for i in inside], "other points, same files": other_xy}
            seen_files, seen_urls, results, missed = {2}, set(), {}, []
            deadline = time.perf_counter() + HOVER_LIMIT_S
            for name, points in rounds.items():
                started, done = time.perf_counter(), 0
                for x, y in points:
                    if time.perf_counter() > deadline:
                        break
                    done += 1
                    r = hover_once(page, x, y, 10_000)
                    if r is None:
                        missed.append(f"{name} #{done}: {page.evaluate(HOVER_MISSED_JS)}")
                        continue
                    index = int(r["src"].rsplit("/", 1)[1])
                    met = "browser cache" if r["src"] in seen_urls else "server cache" if index % files in seen_files else "decode"
                    seen_urls.add(r["src"])
                    seen_files.add(index % files)
                    r["big"] = index % files < big
                    results.setdefault(met, []).append(r)
                print(f"hover: round '{name}': {done} of {len(points)} hovers in {time.perf_counter() - started:.0f} s", flush=True)
            gl = page.evaluate(GL_JS)
            browser.close()
    print(
        f"hover: first thumbnail request (reads the collection) {first_request:.2f} s; "
        f"{n:,} points drawn in {drawn:.2f} s (GL: {gl}); {len(targets)} on-screen points x 3 rounds "
        f"({', '.join(rounds)}), {len(missed)} without a thumbnail within 10 s ({'; '.join(missed) or 'none'}); load average {os.getloadavg()[0]:.1f}"
    )
    for met in ("decode", "server cache", "browser cache"):
        got = results.get(met, [])
        if not got:
            continue
        total = [r["loaded"] - r["move"] for r in got]
        card = [r["shown"] - r["move"] for r in got if r["shown"] is not None]
        ttfb = [r["ttfb"] for r in got if r["ttfb"] is not None]
        line = (
            f"hover: {met:13s} {len(got):3d} hovers, mousemove to thumbnail loaded: median {np.median(total):.0f} ms, "
            f"p95 {np.percentile(total, 95):.0f} ms, max {max(total):.0f} ms; to the card shown: median {np.median(card):.0f} ms, "
            f"p95 {np.percentile(card, 95):.0f} ms"
        )
        if ttfb:
            line += f"; server (request to first byte): median {np.median(ttfb):.0f} ms, p95 {np.percentile(ttfb, 95):.0f} ms"
        if bigs := [f"{r['loaded'] - r['move']:.0f}" for r in got if r["big"]]:
            line += f"; the 4000 x 4000 files: {', '.join(bigs)} ms"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["lookup", "ann", "projection", "browser", "import", "hover"])
    parser.add_argument(
        "--browser-sizes", default="100000,1000000", help="points for the page in Chromium; pan/zoom and memory at the largest"
    )
    parser.add_argument("--no-plotly", action="store_true", help="skip the same data through Plotly scattergl")
    parser.add_argument("--plotly-timeout", type=float, default=240, help="seconds Plotly may take to draw (a failure is a result)")
    parser.add_argument("--performance-mode", choices=["auto", "on", "off"], default="auto", help="regl-scatterplot's, forced")
    parser.add_argument(
        "--composite-from", type=int, help="the explorer's ?composite-from: points from which a gesture moves the drawn picture"
    )
    parser.add_argument("--skip-index", action="store_true", help="hold the summary back: no neighbour index built (minutes at 1,000,000)")
    parser.add_argument("--screenshots", type=Path, help="a folder for a screenshot of each page once drawn")
    parser.add_argument("--lookup-size", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--ann-size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--projection-size", type=int, default=10_000)
    parser.add_argument("--import-size", type=int, default=1_000_000)
    parser.add_argument("--hover-sizes", default="1000000", help="points of the fabricated collections hovered")
    parser.add_argument("--hovers", type=int, default=200, help="on-screen points hovered a round")
    parser.add_argument("--hover-files", type=int, default=3000, help="image files the points share")
    parser.add_argument("--hover-big", type=int, default=2, help="of them 4000 x 4000")
    parser.add_argument("--projection-child", choices=["explorer", "default"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.projection_child:
        projection_child(args.projection_child, args.projection_size)
        return
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    if args.only in (None, "lookup"):
        bench_lookup(args.lookup_size, args.requests)
    if args.only in (None, "ann"):
        bench_ann(args.ann_size, args.queries)
    if args.only in (None, "projection"):
        bench_projection(args.projection_size)
    if args.only in (None, "browser"):
        sizes = [int(s) for s in args.browser_sizes.split(",")]
        for n in sizes:
            bench_browser(
                n,
                n == max(sizes),
                not args.no_plotly,
                args.performance_mode,
                args.skip_index,
                args.plotly_timeout,
                args.screenshots,
                args.composite_from,
            )
    if args.only in (None, "import"):
        bench_import(args.import_size)
    if args.only in (None, "hover"):
        for n in [int(s) for s in args.hover_sizes.split(",")]:
            bench_hover(n, args.hovers, args.hover_files, args.hover_big)


if __name__ == "__main__":
    main()
