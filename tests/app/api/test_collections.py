"""Imported collections through the API: explored like a job's (columns, neighbours, thumbnails, exports, selections),
bad imports refused with nothing left behind, and `embedlab import` against a running server."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.config import Settings
from app.explorer import columns
from app.files import collections_dir
from app.main import create_app
from tests.conftest import wait_for

N, D = 90, 8


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("collections") / "home"


@pytest.fixture(scope="module")
def settings(home: Path) -> Settings:
    (home / "data" / "imgs").mkdir(parents=True)
    return Settings(home=home, demo=False, data_roots=str(home / "data"))


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def points() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), N // 3)
    X = (np.eye(3, D)[labels] * 4 + rng.normal(0, 1, (N, D))).astype(np.float32)
    return X, labels


def ready(api: TestClient, collection_id: int) -> dict:
    def done() -> dict | None:
        found = api.get(f"/api/collections/{collection_id}").json()
        return found if found["status"] != "laying out" else None

    found = wait_for(done, timeout=240, interval=0.5, what=f"collection {collection_id}'s layout")
    assert found["status"] == "ready", found["error"]
    return found


@pytest.fixture(scope="module")
def imported(api: TestClient, settings: Settings, points) -> dict:
    """An .npz upload (ids 1000.., labels by name) with an image folder inside the data roots: one PNG a point."""
    X, labels = points
    folder = settings.home_path / "data" / "imgs"
    for i in range(N):
        Image.new("RGB", (40, 30), (i, 255 - i, 80)).save(folder / f"img{i:03d}.png")
    body = io.BytesIO()
    np.savez(body, embeddings=X, ids=np.arange(1000, 1000 + N), labels=np.array(["ant", "bee", "cat"])[labels])
    r = api.post(
        "/api/collections",
        files={"embeddings": ("catalogue.npz", body.getvalue())},
        data={"images": str(folder), "name": "catalogue", "space": "euclidean"},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["points"], created["dims"], created["classes"], created["images"]) == (N, D, 3, True)
    return ready(api, created["id"])


def test_an_import_is_explored_like_a_job(api, imported, points):
    X, labels = points
    cid = imported["id"]
    header, cols = columns.decode(api.get(f"/api/collections/{cid}/embedding/columns").content)
    assert header["class_names"] == ["ant", "bee", "cat"]
    assert cols["index"].tolist() == list(range(1000, 1000 + N)) and cols["label"].tolist() == labels.tolist()

    k = 7
    got = api.get(f"/api/collections/{cid}/neighbors", params={"index": 1005, "k": k}).json()
    d = np.linalg.norm(X - X[5], axis=1)
    d[5] = np.inf
    assert [n["index"] for n in got["neighbors"]] == (1000 + np.argsort(d, kind="stable")[:k]).tolist()
    np.testing.assert_allclose([n["distance"] for n in got["neighbors"]], np.sort(d)[:k], rtol=1e-4)
    assert got["neighbors"][0]["image_url"].startswith(f"/api/collections/{cid}/images/")

    summary = api.get(f"/api/collections/{cid}/embedding/summary").json()
    assert summary["space"] == "euclidean" and summary["per_class_points"] == N
    assert [c["count"] for c in summary["per_class"]] == [N // 3] * 3
    # What the layout cost, phase by phase (the job page and the closing line of the import say so).
    assert set(summary["seconds"]) == {"umap", "neighbour_index", "nearest_same_label", "quality"}
    assert all(v >= 0 for v in summary["seconds"].values())

    png = api.get(f"/api/collections/{cid}/images/1007")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(png.content)) as im:
        assert im.convert("RGB").getpixel((0, 0)) == (7, 248, 80)  # point 1007 shows img007.png
    assert api.get(f"/api/collections/{cid}/images/7").status_code == 404  # an index no point has

    npy = api.get(f"/api/collections/{cid}/embedding/export", params={"format": "npy"})
    np.testing.assert_array_equal(np.load(io.BytesIO(npy.content)), X)
    chosen = [1000 + i for i in range(0, N, 2)]
    s = api.post(f"/api/collections/{cid}/embedding/selection", json={"indices": chosen}).json()
    assert s["count"] == len(chosen) and sum(c["count"] for c in s["per_class"]) == len(chosen)
    full = np.linalg.norm(X[:, None] - X[None], axis=2)  # P@1 by brute force: each chosen point's nearest other point
    np.fill_diagonal(full, np.inf)
    right = labels[np.argmin(full, axis=1)] == labels
    rows = np.array(chosen) - 1000
    for c in s["per_class"]:
        mine = rows[labels[rows] == ["ant", "bee", "cat"].index(c["class_name"])]
        assert c["precision_at_1"] == pytest.approx(right[mine].mean())

    page = api.get(f"/collections/{cid}/explore")
    assert page.status_code == 200 and f'data-base="/api/collections/{cid}"' in page.text and 'id="upload"' not in page.text
    assert "catalogue" in api.get("/collections").text


def _post(api: TestClient, files: dict | None = None, **data: str):
    return api.post("/api/collections", files=files or {}, data=data)


def test_bad_imports_are_refused_naming_file_row_and_reason(api, settings, points, tmp_path):
    X, _ = points
    before = api.get("/api/collections").json()["total"]
    bad = X.copy()
    bad[12, 3] = np.nan
    buf = io.BytesIO()
    np.save(buf, bad)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    np.save(outside / "e.npy", X)
    good = io.BytesIO()
    np.save(good, X)
    cases = [
        ({"embeddings": ("x.npy", buf.getvalue())}, {}, "embeddings", "x.npy, row 12: value 3 is NaN"),
        ({"embeddings": ("x.npy", good.getvalue()), "labels": ("l.tsv", b"a\nb\n")}, {}, "labels", f"2 rows for {N} embeddings"),
        ({"embeddings": ("x.csv", b"a,b\n1,2\n3,x\n")}, {}, "embeddings", "x.csv, row 1 (line 3): column 'b' is not numeric"),
        ({}, {"embeddings_path": str(outside / "e.npy")}, "embeddings_path", "not inside the data roots"),
        ({"embeddings": ("x.npy", good.getvalue())}, {"images": str(outside)}, "images", "not inside the data roots"),
        ({}, {}, "embeddings", "an embeddings file is needed"),
    ]
    for files, data, field, reason in cases:
        r = _post(api, files, **data)
        assert r.status_code == 422, r.text
        (item,) = r.json()["detail"]
        assert item["field"] == field and reason in item["reason"], item
    assert api.get("/api/collections").json()["total"] == before
    leftovers = [p.name for p in collections_dir(settings.home_path).iterdir() if not p.name.isdigit()]
    assert leftovers == []


def test_import_by_path_then_delete_while_laying_out(api, settings, points):
    X, labels = points
    data = settings.home_path / "data"
    np.save(data / "vectors.npy", X)
    (data / "metadata.tsv").write_text("".join(f"c{v}\n" for v in labels))
    r = _post(api, embeddings_path=str(data / "vectors.npy"), labels_path=str(data / "metadata.tsv"))
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert r.json()["name"] == "vectors" and r.json()["images"] is False
    assert api.delete(f"/api/collections/{cid}").status_code == 204
    assert api.get(f"/api/collections/{cid}").status_code == 404
    assert not (collections_dir(settings.home_path) / str(cid)).exists()


def test_cli_import_reports_refusals_and_waits_for_the_layout(procs, tmp_path, points):
    X, labels = points
    url = procs.server()
    np.save(tmp_path / "bad.npy", np.full((4, 3), np.inf, dtype=np.float32))
    cli = [sys.executable, "-m", "app.cli", "import", "--server", url]
    bad = subprocess.run([*cli, str(tmp_path / "bad.npy")], env=procs.env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "refused: embeddings: bad.npy, row 0: value 0 is infinite" in bad.stderr
    np.save(tmp_path / "e.npy", X)
    (tmp_path / "l.tsv").write_text("".join(f"c{v}\n" for v in labels))
    started = time.time()
    ok = subprocess.run(
        [*cli, str(tmp_path / "e.npy"), "--labels", str(tmp_path / "l.tsv"), "--name", "from the cli", "--wait"],
        env=procs.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert f"collection {ok.stdout.strip()} ready" in ok.stderr, (ok.stderr, time.time() - started)


def test_a_restarted_server_settles_layouts_left_unfinished(tmp_path):
    """A layout that ended as the server stopped is ready; one whose files are gone fails, saying so."""
    from app.files import PROJECTION_FILE, collection_dir
    from app.store import collections as store
    from app.store.db import get_engine, init_db

    settings = Settings(home=tmp_path / "home", demo=False)
    engine = get_engine(settings.db_url)
    init_db(engine)
    made = [store.create(engine, name=n, owner="local", points=5, dims=2, classes=0, space="cosine", images=None, source={}) for n in "ab"]
    collection_dir(settings.home_path, made[0].id).mkdir(parents=True)
    (collection_dir(settings.home_path, made[0].id) / PROJECTION_FILE).write_bytes(b"laid out")
    with TestClient(create_app(settings)) as c:
        first, second = (c.get(f"/api/collections/{m.id}").json() for m in made)
    assert first["status"] == "ready"
    assert second["status"] == "failed" and "its files are gone" in second["error"]


def test_a_stopping_server_ends_its_layouts_and_the_next_resumes_them(tmp_path, points):
    X, _ = points
    settings = Settings(home=tmp_path / "home", demo=False)
    body = io.BytesIO()
    np.save(body, X)
    with TestClient(create_app(settings)) as c:
        cid = c.post("/api/collections", files={"embeddings": ("x.npy", body.getvalue())}).json()["id"]
    folder = str(collections_dir(settings.home_path) / str(cid))
    alive = subprocess.run(["pgrep", "-f", f"app.explorer.collections {folder} "], capture_output=True, text=True).stdout
    assert alive == ""  # no layout child outlives the server
    with TestClient(create_app(settings)) as c:
        assert c.get(f"/api/collections/{cid}").json()["status"] == "laying out"
        ready(c, cid)  # the next server laid it out


def test_thumbnails_and_arrays_of_a_collection_without_a_saved_index_do_not_wait_for_one(tmp_path, builds, monkeypatch):
    """The index is built on the first search only, once for two requests at the same time; a failed build is a 409 there."""
    from concurrent.futures import ThreadPoolExecutor

    from app.explorer.neighbors import INDEX_FILE, NeighborIndex
    from app.files import PROJECTION_FILE, collection_dir
    from tests.e2e.fabricate import fabricate_collection

    home = tmp_path / "home"
    cid, _ = fabricate_collection(home, 400)
    broken, _ = fabricate_collection(home, 300)
    assert not (collection_dir(home, cid) / INDEX_FILE).exists()
    base = f"/api/collections/{cid}"
    with TestClient(create_app(Settings(home=home, demo=False))) as c:
        png = c.get(f"{base}/images/2")
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        for path in ["/embedding/columns", "/embedding?format=columns", "/embedding/distances?index=2", "/embedding/export?format=npy"]:
            assert c.get(base + path).status_code == 200, path
        assert c.post(f"{base}/embedding/selection", json={"indices": [1, 2, 3]}).status_code == 200
        assert builds == []

        with ThreadPoolExecutor(2) as pool:
            got = list(pool.map(lambda i: c.get(f"{base}/neighbors", params={"index": i, "k": 5}), [2, 3]))
        assert [r.status_code for r in got] == [200, 200] and builds == [400]
        assert c.get(f"{base}/embedding/summary").json()["index"]["kind"] == "exact"
        assert c.get(f"{base}/neighbors", params={"index": 4, "k": 5}).status_code == 200 and builds == [400]

        def fails(*args, **kwargs):
            raise RuntimeError("Error in faiss: out of range")

        monkeypatch.setattr(NeighborIndex, "build", fails)
        assert c.get(f"/api/collections/{broken}/images/2").status_code == 200  # no index needed
        for path in ["/neighbors?index=2", "/embedding/summary"]:
            r = c.get(f"/api/collections/{broken}{path}")
            assert r.status_code == 409 and PROJECTION_FILE in r.json()["detail"] and "import it again" in r.json()["detail"], r.text
