"""HTML pages: they render, carry the security headers, escape job names and load no inline script."""

from __future__ import annotations

import re

import pytest

from app.pages.render import CSP

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def job(client) -> dict:
    made = client.post("/api/jobs", json={"name": XSS, "dataset": "digits", "steps": 5})
    assert made.status_code == 201, made.text
    return made.json()


def assert_safe_page(response) -> None:
    assert response.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP.split("script-src")[1].split(";")[0]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert XSS not in response.text
    # No inline script or inline event handler: every <script> has a src.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", response.text)
    tags = re.sub(r'"[^"]*"', '""', response.text)  # attribute values are text, not attributes
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", tags)


@pytest.mark.parametrize("path", ["/", "/jobs/new", "/jobs/{id}", "/jobs/new?clone={id}", "/login", "/login?next=/jobs/1"])
def test_pages_render_with_security_headers(client, job, path):
    response = client.get(path.format(id=job["id"]))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_safe_page(response)


def test_job_name_is_escaped(client, job):
    page = client.get(f"/jobs/{job['id']}")
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text
    clone = client.get(f"/jobs/new?clone={job['id']}")
    assert "&lt;img src=x onerror=alert(1)&gt;" in clone.text


def test_missing_job_is_a_404_page(client):
    for path in ("/jobs/999", "/jobs/new?clone=999"):
        response = client.get(path)
        assert response.status_code == 404 and "text/html" in response.headers["content-type"]
        assert response.headers["content-security-policy"] == CSP


def test_new_job_form_follows_the_spec(client):
    from app.spec import JobSpec

    html = client.get("/jobs/new").text
    for name in JobSpec.model_fields:
        assert f'name="{name}"' in html and f'data-error-for="{name}"' in html
    assert re.search(r'<select id="f-loss" name="loss"', html)
    assert re.search(r'<input id="f-normalize" name="normalize" type="checkbox"[^>]*checked', html)
    assert '<textarea id="f-loss_params"' in html
    assert "L2-normalise embeddings" in html  # descriptions show as help


def test_clone_prefills_the_spec(client):
    made = client.post("/api/jobs", json={"name": "source", "margin": 0.35, "loss": "contrastive", "steps": 7}).json()
    html = client.get(f"/jobs/new?clone={made['id']}").text
    assert re.search(r'name="margin"[^>]*value="0.35"', html)
    assert re.search(r'<option value="contrastive" selected>', html)


@pytest.mark.parametrize(
    "target, expected",
    [
        ("/jobs/3", "/jobs/3"),
        ("//evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil", "/"),
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("jobs/3", "/"),
    ],
)
def test_login_next_is_a_local_path(client, target, expected):
    # Auth is off in these tests: the page links straight to `next`.
    html = client.get("/login", params={"next": target}).text
    assert f'href="{expected}"' in html


def test_plotly_is_served_locally(client):
    response = client.get("/vendor/plotly.min.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert len(response.content) > 1_000_000 and b"plotly" in response.content[:2000].lower()


def test_static_assets(client):
    for path in ("/static/app.css", "/static/common.js", "/static/jobs.js", "/static/job.js", "/static/job_form.js", "/static/login.js"):
        assert client.get(path).status_code == 200, path
