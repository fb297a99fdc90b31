"""GET /api/jobs?sort=..., validated, and the queue position of queued jobs."""

from __future__ import annotations


def test_sort_param_orders_and_unknown_columns_are_named(client):
    for margin in (0.3, 0.1, 0.2):
        assert client.post("/api/jobs", json={"dataset": "digits", "margin": margin, "name": f"m={margin}"}).status_code == 201
    assert [j["margin"] for j in client.get("/api/jobs?sort=margin").json()["jobs"]] == [0.1, 0.2, 0.3]
    assert [j["margin"] for j in client.get("/api/jobs?sort=-margin").json()["jobs"]] == [0.3, 0.2, 0.1]
    assert [j["id"] for j in client.get("/api/jobs").json()["jobs"]] == [3, 2, 1]

    r = client.get("/api/jobs?sort=colour")
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["field"] == "sort" and "'-margin'" in error["reason"] and "'metrics.val/precision_at_1'" in error["reason"]


def test_queued_jobs_know_their_place(client):
    ids = [client.post("/api/jobs", json={"dataset": "digits", "priority": p}).json()["id"] for p in (0, 0, 1)]
    assert [client.get(f"/api/jobs/{i}").json()["queue_position"] for i in ids] == [2, 3, 1]
    listed = {j["id"]: j["queue_position"] for j in client.get("/api/jobs").json()["jobs"]}
    assert listed == {ids[0]: 2, ids[1]: 3, ids[2]: 1}
    client.post(f"/api/jobs/{ids[2]}/cancel")
    assert client.get(f"/api/jobs/{ids[2]}").json()["queue_position"] is None
    assert client.get(f"/api/jobs/{ids[0]}").json()["queue_position"] == 1
