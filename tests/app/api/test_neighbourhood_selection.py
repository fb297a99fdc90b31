"""POST /api/neighbourhoods/selection: an explorer's selection compared between two embeddings, against numpy by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tests.e2e.fabricate import fabricate_collection

N, K = 600, 5


@pytest.fixture
def pair(client, settings):
    a, _ = fabricate_collection(settings.home_path, N, seed=1)
    moved = lambda X: X + np.random.default_rng(5).normal(scale=0.25, size=X.shape)  # noqa: E731
    b, _ = fabricate_collection(settings.home_path, N, seed=1, x_map=moved)  # the same items, their vectors moved
    q = {"a": f"collection:{a}", "b": f"collection:{b}", "k": K}
    table = client.get("/api/neighbourhoods", params={**q, "limit": N}).json()["items"]
    return q, {it["index"]: it["change"] for it in table}


def random_band(change: np.ndarray, m: int, draws: int = 4000) -> float:
    """By brute force: the 95th percentile of |mean change of m random items - that of the rest|."""
    rng = np.random.default_rng(0)
    total, n = change.sum(), len(change)
    diffs = []
    for _ in range(draws):
        picked = change[rng.choice(n, m, replace=False)].sum()
        diffs.append(abs(picked / m - (total - picked) / (n - m)))
    return float(np.quantile(diffs, 0.95))


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
        assert s["difference"] == pytest.approx(sel.mean() - rest.mean(), abs=1e-6)
        # The noise band is what random selections of 60 items show (the permutation test, drawn by hand).
        assert s["noise"] == pytest.approx(random_band(np.array(list(change.values())), 60), rel=0.1)
        assert s["verdict"].startswith(verdict)
        assert [it["index"] for it in body["items"]] == sorted(chosen, key=lambda i: (-change[i], i))  # most changed first
        assert body["shared"] == N  # the whole comparison's summary stays beside the selection's


def test_a_selection_like_the_rest_is_within_noise(client, pair):
    q, change = pair
    everyone = sorted(change)
    body = client.post("/api/neighbourhoods/selection", params={**q, "sort": "index"}, json={"indices": everyone[::2]}).json()
    s = body["selection"]
    assert abs(s["difference"]) <= s["noise"] and s["verdict"].startswith("within noise")
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
