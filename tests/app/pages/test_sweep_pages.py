"""Sweep and worker pages render, escaped, with the page security headers."""

from __future__ import annotations


def test_sweep_pages(client):
    made = client.post(
        "/api/sweeps", json={"name": "<b>m</b>", "base": {"dataset": "digits", "steps": 5}, "grid": {"margin": [0.1, 0.2]}}
    ).json()
    listing = client.get("/sweeps")
    assert listing.status_code == 200 and "script-src 'self'" in listing.headers["content-security-policy"]
    page = client.get(f"/sweeps/{made['id']}")
    assert page.status_code == 200 and "&lt;b&gt;m&lt;/b&gt;" in page.text and "<b>m</b>" not in page.text
    assert client.get("/sweeps/999").status_code == 404
    assert client.get("/workers").status_code == 200
