"""POST /api/neighbourhoods/selection: an explorer's selection compared between two embeddings, against numpy by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tests.e2e.fabricate import fabricate_collection

N, K = 600, 5


@pytest.fixture
def pair(client, settings):
    a, _ = fabricate_collection(settings.home_path, N, seed=1)
    b, _ = fabricate_collection(settings.home_path, N, seed=2)  # the same ids, unrelated vectors
    q = {"a": f"collection:{a}", "b": f"collection:{b}", "k": K}
    table = client.get("/api/neighbourhoods", params={**q, "limit": N}).json()["items"]
    return q, {it["index"]: it["change"] for it in table}


def welch(sel: np.ndarray, rest: np.ndarray) -> tuple[float, float]:
    diff = sel.mean() - rest.mean()
    half = 1.959964 * np.sqrt(sel.var(ddof=1) / len(sel) + rest.var(ddof=1) / len(rest))
    return diff - half, diff + half


def test_the_most_changed_changed_more_and_the_least_less(client, pair):
    q, change = pair
    by_change = sorted(change, key=lambda i: (-change[i], i))
    for chosen, verdict in ((by_change[:60], "changed more"), (by_change[-60:], "changed less")):
        r = client.post("/api/neighbourhoods/selection", params=q, json={"indices": [*chosen, 10**6, chosen[0]]})
        assert r.status_code == 200, r.text
        body = r.json()
        s = body["selection"]
        assert (s["selected"], s["shared"]) == (61, 60)  # an index neither holds is counted, not compared; a repeat once
        sel = np.array([change[i] for i in chosen])
        rest = np.array([c for i, c in change.items() if i not in set(chosen)])
        assert s["selection"]["items"] == 60 and s["rest"]["items"] == N - 60
        assert s["selection"]["mean_change"] == pytest.approx(sel.mean(), abs=1e-6)
        assert s["rest"]["mean_change"] == pytest.approx(rest.mean(), abs=1e-6)
        assert (s["low"], s["high"]) == pytest.approx(welch(sel, rest), abs=1e-6)
        assert s["verdict"].startswith(verdict)
        assert [it["index"] for it in body["items"]] == sorted(chosen, key=lambda i: (-change[i], i))  # most changed first
        assert body["shared"] == N  # the whole comparison's summary stays beside the selection's


def test_a_selection_like_the_rest_is_within_noise(client, pair):
    q, change = pair
    everyone = sorted(change)
    body = client.post("/api/neighbourhoods/selection", params={**q, "sort": "index"}, json={"indices": everyone[::2]}).json()
    s = body["selection"]
    assert s["low"] < 0 < s["high"] and s["verdict"].startswith("within noise")
    assert [it["index"] for it in body["items"]] == everyone[::2]  # sort=index
    whole = client.post("/api/neighbourhoods/selection", params=q, json={"indices": everyone}).json()["selection"]
    assert whole["rest"] is None and whole["difference"] is None and "every shared item" in whole["verdict"]


def test_refusals_name_the_field(client, pair):
    q, _ = pair
    cases = [
        (q, {"indices": [10**6]}, 422, "indices", "none of the 1 selected items"),
        (q, {"indices": []}, 422, "indices", ""),
        ({**q, "a": "collection:999"}, {"indices": [1]}, 404, "a", "999"),
        ({**q, "k": 0}, {"indices": [1]}, 422, "k", ""),
    ]
    for params, payload, status, field, reason in cases:
        r = client.post("/api/neighbourhoods/selection", params=params, json=payload)
        assert r.status_code == status, (params, payload, r.text)
        detail = r.json()["detail"][0]
        assert detail["field"] == field and reason in detail["reason"], detail
