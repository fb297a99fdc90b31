"""Browser tests: a real server (and worker) process, driven through Chromium by Playwright."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    playwright = sync_api.sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def page(browser) -> Iterator[object]:
    """A fresh browser context per test; a page error or a failed console call fails the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.errors = errors
    yield page
    context.close()


class LiveServer:
    """One server process for a module of browser tests, and one CPU worker started on first need."""

    def __init__(self, procs):
        self.procs = procs
        self.url = procs.server(workers=0)
        self.worker = None
        self.ensure_worker()  # torch takes a while to import: start now, it idles until a job comes

    def ensure_worker(self) -> None:
        if self.worker is None or self.worker.poll() is not None:
            self.worker = self.procs.worker()

    def submit(self, **spec) -> dict:
        import httpx

        r = httpx.post(f"{self.url}/api/jobs", json=spec, timeout=30)
        assert r.status_code == 201, r.text
        return r.json()

    def cancel(self, job_id: int) -> dict:
        import httpx

        return httpx.post(f"{self.url}/api/jobs/{job_id}/cancel", timeout=30).json()

    def get(self, path: str) -> dict:
        import httpx

        r = httpx.get(f"{self.url}{path}", timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def job(self, job_id: int) -> dict:
        return self.get(f"/api/jobs/{job_id}")


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[LiveServer]:
    import os

    from tests.conftest import TEST_ENV, Processes

    root = tmp_path_factory.mktemp("e2e")
    (root / "home").mkdir()
    env = {**os.environ, **TEST_ENV, "EMBEDLAB_HOME": str(root / "home"), "PYTHONUNBUFFERED": "1"}
    env.pop("EMBEDLAB_DATABASE_URL", None)
    procs = Processes(env, root)
    try:
        yield LiveServer(procs)
    finally:
        procs.stop_all()


def wait_js(page, expression: str, timeout: float = 30.0, interval: float = 0.1):
    """Evaluate a JavaScript expression from Python until it is truthy; returns its value. The browser tests' one poll:
    page.wait_for_function evaluates strings with eval, which the pages' Content-Security-Policy refuses."""
    from tests.conftest import wait_for

    return wait_for(lambda: page.evaluate(expression), timeout, interval, expression)


def box_select_first_panel(page, plot_id: str, fraction: float) -> None:
    """A box drag in the first panel of a static/linked_panels.js plot, around its points' median, `fraction` of each axis
    to either side; returns once every panel shows the selection."""
    page.locator(f"#{plot_id}").scroll_into_view_if_needed()
    x0, y0, x1, y1 = page.evaluate(
        """([id, f]) => {
        const gd = document.getElementById(id), t = gd.data[0], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const box = gd.getBoundingClientRect(), median = (v) => [...v].sort((a, b) => a - b)[v.length >> 1];
        const cx = median(t.x), cy = median(t.y), wx = (xa.range[1] - xa.range[0]) * f, wy = (ya.range[1] - ya.range[0]) * f;
        const px = (x) => box.left + xa._offset + xa.l2p(x), py = (y) => box.top + ya._offset + ya.l2p(y);
        return [px(cx - wx), py(cy + wy), px(cx + wx), py(cy - wy)];
    }""",
        [plot_id, fraction],
    )
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=12)
    page.mouse.up()
    wait_js(page, f"document.getElementById('{plot_id}').data.every(t => Array.isArray(t.selectedpoints))")


def screenshot(page, name: str) -> None:
    """Saved when EMBEDLAB_SCREENSHOTS names a folder: for looking at the pages by eye."""
    import os

    folder = os.environ.get("EMBEDLAB_SCREENSHOTS")
    if folder:
        page.screenshot(path=f"{folder}/{name}.png", full_page=True)
