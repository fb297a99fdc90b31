"""/docs and /redoc load every script and stylesheet from the server itself (they work without internet)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def page_links(client, path: str) -> list[str]:
    r = client.get(path)
    assert r.status_code == 200, r.text
    parser = Links()
    parser.feed(r.text)
    # Swagger UI names its files in an inline call, not in attributes: collect those too.
    quoted = [u for u in r.text.replace("'", '"').split('"') if u.startswith(("http://", "https://", "/static/"))]
    return parser.urls + quoted


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_api_pages_load_everything_from_this_origin(client, path):
    urls = page_links(client, path)
    assert any(u.endswith(".js") for u in urls), urls  # the page does load a script: from here
    for url in urls:
        absolute = urljoin(f"http://testserver{path}", url)
        assert urlsplit(absolute).netloc == "testserver", f"{path} loads {url} from another origin"
        assert client.get(absolute).status_code == 200, f"{path} links {url}, which is not served"


def test_the_schema_the_pages_read_is_served(client):
    assert "/api/jobs" in client.get("/openapi.json").json()["paths"]
