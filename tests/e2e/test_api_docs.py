"""/docs and /redoc render the API's operations in Chromium with every request to another origin refused (no internet)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import screenshot

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("path, operation", [("/docs", ".opblock-summary-path"), ("/redoc", "[data-section-id^='operation']")])
def test_docs_render_offline(procs, page, path, operation):
    url = procs.server(workers=0)
    foreign: list[str] = []

    def only_here(route) -> None:
        if urlsplit(route.request.url).netloc == urlsplit(url).netloc or route.request.url.startswith("data:"):
            route.continue_()
        else:
            if route.request.resource_type != "image":  # ReDoc's "by Redocly" logo: an image the page does without
                foreign.append(f"{route.request.resource_type} {route.request.url}")
            route.abort()

    page.route("**/*", only_here)
    page.goto(f"{url}{path}")
    page.locator(operation).first.wait_for()
    assert page.locator(operation).count() >= 10  # jobs, sweeps, metrics, embeddings...
    assert "/api/jobs" in page.content()
    assert foreign == []
    screenshot(page, f"api{path.replace('/', '-')}")
