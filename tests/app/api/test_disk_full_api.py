"""The API over a database whose disk is full (a real 8 MB tmpfs): writes answer 503 with a JSON reason, reads go on."""

from __future__ import annotations

import shutil

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app

TINY = {"dataset": "digits", "steps": 10}


def test_writes_answer_503_with_the_reason_and_reads_keep_working(small_disk):
    settings = Settings(home=small_disk.path, demo=False)
    with TestClient(create_app(settings)) as client:
        stored = client.post("/api/jobs", json={**TINY, "name": "stored"})
        assert stored.status_code == 201
        disk = client.get("/api/workers/disk").json()
        assert disk["total_bytes"] == 8 << 20 and 6_000_000 < disk["free_bytes"] <= shutil.disk_usage(small_disk.path).free + 100_000
        assert not disk["low"]

        small_disk.fill()
        for path, body in (
            ("/api/jobs", {**TINY, "name": "refused"}),
            ("/api/sweeps", {"name": "s", "base": TINY, "grid": {"margin": [0.1, 0.2]}}),
        ):
            refused = client.post(path, json=body)
            assert refused.status_code == 503, (path, refused.text)
            assert refused.headers["content-type"] == "application/json" and refused.headers["retry-after"] == "60"
            assert "disk is full" in refused.json()["detail"] and "can still be read" in refused.json()["detail"]
        listed = client.get("/api/jobs").json()
        assert [j["name"] for j in listed["jobs"]] == ["stored"]
        assert client.get(f"/api/jobs/{stored.json()['id']}").json()["status"] == "queued"
        full = client.get("/api/workers/disk").json()
        assert full["free_bytes"] < 100_000 and full["low"]

        small_disk.free()
        assert client.post("/api/jobs", json={**TINY, "name": "after"}).status_code == 201
        assert [j["name"] for j in client.get("/api/jobs").json()["jobs"]] == ["after", "stored"]
