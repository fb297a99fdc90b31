"""The job statuses reach the pages' scripts from one place: the store's JobStatus type."""

from __future__ import annotations

import re

from app.store.rows import STATUSES, TERMINAL


def test_every_page_carries_the_statuses_and_the_jobs_filter_lists_them(client):
    for path in ("/", "/sweeps", "/workers", "/jobs/new"):
        html = client.get(path).text
        body = re.search(r"<body ([^>]*)>", html).group(1)
        assert f'data-job-statuses="{" ".join(STATUSES)}"' in body, path
        assert f'data-terminal-statuses="{" ".join(TERMINAL)}"' in body, path
    options = re.findall(r'<option value="([a-z]+)">', client.get("/").text.split('id="filter-status"')[1].split("</select>")[0])
    assert tuple(options) == STATUSES


def test_the_api_documents_the_same_statuses(client):
    schema = client.get("/openapi.json").json()
    assert tuple(schema["components"]["schemas"]["JobOut"]["properties"]["status"]["enum"]) == STATUSES
    assert client.get("/api/jobs", params={"status": "paused"}).status_code == 422
