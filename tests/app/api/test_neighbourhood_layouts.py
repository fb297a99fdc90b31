"""GET /api/neighbourhoods/layouts: two embeddings' stored layouts of their shared items, B's turned onto A's; its refusals."""

from __future__ import annotations

import numpy as np
import pytest

from app.config import Settings
from app.explorer import aligned
from app.files import PROJECTION_FILE, collection_dir
from app.store import collections as store
from tests.app.explorer.test_aligned import turned
from tests.e2e.fabricate import fabricate_collection


def stored_xy(settings: Settings, collection_id: int) -> np.ndarray:
    with np.load(collection_dir(settings.home_path, collection_id) / PROJECTION_FILE, allow_pickle=False) as z:
        return z["xy"]


@pytest.mark.parametrize("mirror", [False, True])
def test_a_turned_copy_of_a_layout_aligns_back_onto_it(client, settings, mirror):
    a, _ = fabricate_collection(settings.home_path, 600, seed=1)
    b, _ = fabricate_collection(settings.home_path, 600, seed=1, xy_map=lambda xy: turned(xy, 50, 0.3, (4, -9), mirror))
    r = client.get("/api/neighbourhoods/layouts", params={"a": f"collection:{a}", "b": f"collection:{b}", "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["shared"] == 600 and body["points"]["index"] == list(range(600))
    xy_a = stored_xy(settings, a)
    np.testing.assert_allclose(np.c_[body["layouts"]["a"]["x"], body["layouts"]["a"]["y"]], xy_a, atol=1e-4)  # A as stored
    np.testing.assert_allclose(np.c_[body["layouts"]["b"]["x"], body["layouts"]["b"]["y"]], xy_a, atol=2e-3)  # B back onto it
    turn = body["alignment"]
    assert turn["mirrored"] == mirror and turn["scale"] == pytest.approx(1 / 0.3, rel=1e-4) and turn["residual"] < 1e-3
    if not mirror:
        assert turn["rotation_degrees"] == pytest.approx(-50, abs=0.01)
    assert body["points"]["change"] == [0.0] * 600  # the same vectors (same seed): the same neighbourhoods


def test_a_large_comparison_draws_the_most_changed_and_a_sample(client, settings):
    n = aligned.PAIR_POINTS + 1000
    a, _ = fabricate_collection(settings.home_path, n, seed=1)
    b, _ = fabricate_collection(settings.home_path, n, seed=2)
    q = {"a": f"collection:{a}", "b": f"collection:{b}", "k": 10}
    body = client.get("/api/neighbourhoods/layouts", params=q).json()
    table = client.get("/api/neighbourhoods", params={**q, "limit": aligned.PAIR_MOST_CHANGED}).json()
    assert len(body["points"]["index"]) == aligned.PAIR_POINTS and body["shared"] == n
    assert body["most_changed"] == aligned.PAIR_MOST_CHANGED == len(table["items"])
    assert {it["index"] for it in table["items"]} <= set(body["points"]["index"])  # every row the page lists can be found
    assert body["alignment"]["residual"] > 0.9  # two unrelated random layouts


def test_refusals_name_the_side(client, settings, engine):
    a, _ = fabricate_collection(settings.home_path, 600, seed=1)
    few, _ = fabricate_collection(settings.home_path, 5, classes=1, seed=3)  # ids 0-4: five shared items
    unready = store.create(engine, name="x", owner="local", points=9, dims=2, classes=1, space="cosine", images=None, source={})
    queued = client.post("/api/jobs", json={"dataset": "digits"}).json()["id"]
    cases = [
        ({"a": "collection:999", "b": f"collection:{a}"}, 404, "a", "999"),
        ({"a": f"collection:{a}", "b": "job:999"}, 404, "b", "999"),
        ({"a": f"collection:{a}", "b": "sweep:1"}, 422, "b", "names no embedding"),
        ({"a": f"collection:{a}", "b": f"collection:{few}"}, 422, "b", "share 5 items"),
        ({"a": f"collection:{unready.id}", "b": f"collection:{a}"}, 409, "a", "still being laid out"),
        ({"a": f"collection:{a}", "b": f"job:{queued}"}, 404, "b", "no embeddings yet"),
    ]
    for params, status, field, reason in cases:
        for path in ("/api/neighbourhoods/layouts", "/api/neighbourhoods"):
            r = client.get(path, params=params)
            assert r.status_code == status, (path, params, r.text)
            (detail,) = r.json()["detail"]
            assert detail["field"] == field and reason in detail["reason"], (path, params, detail)
