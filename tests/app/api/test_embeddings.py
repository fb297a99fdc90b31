"""The explorer's API on one finished tiny digits job (trained once per module)."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.config import Settings
from app.explorer import columns
from app.files import PROJECTION_FILE
from app.main import create_app
from app.spec import JobSpec
from app.store import jobs
from app.store.db import get_engine
from tests.conftest import train_one

# Numba's compiled umap kernels survive between test runs (the JIT alone takes ~40 s).
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "embedlab-tests" / "numba"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Settings, int]:
    home = tmp_path_factory.mktemp("explorer") / "home"
    (home / "data" / "ok").mkdir(parents=True)
    settings = Settings(home=home, demo=False, data_roots=str(home / "data"))
    return settings, train_one(settings, JobSpec(dataset="digits", steps=20, eval_every=10, classes_per_batch=4, samples_per_class=8))


@pytest.fixture(scope="module")
def api(finished) -> Iterator[TestClient]:
    with TestClient(create_app(finished[0])) as c:
        yield c


@pytest.fixture(scope="module")
def stored(finished) -> dict[str, np.ndarray]:
    settings, job_id = finished
    with np.load(settings.job_dir(job_id) / PROJECTION_FILE, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "meta"}


def test_embedding_points_and_columns(api, finished, stored):
    _, job_id = finished
    points = api.get(f"/api/jobs/{job_id}/embedding").json()["points"]
    assert len(points) == len(stored["labels"])
    assert {p["split"] for p in points} == {"val", "train"}
    assert set(points[0]) >= {"index", "x", "y", "label", "split"}
    cols = api.get(f"/api/jobs/{job_id}/embedding", params={"format": "columns"}).json()
    assert cols["index"] == [p["index"] for p in points] and len(cols["x"]) == len(points)
    summary = api.get(f"/api/jobs/{job_id}/embedding/summary").json()
    assert summary["space"] == "cosine" and 0 <= summary["preservation"]["knn_recall_at_10"] <= 1
    assert len(summary["per_class"]) == len(set(stored["labels"][stored["split"] == 0].tolist()))


def _cosine_distances(X: np.ndarray, q: np.ndarray) -> np.ndarray:
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    return 1.0 - Xn @ (q / np.linalg.norm(q))


@pytest.mark.parametrize("row", [0, 17, -1])
def test_neighbors_equal_brute_force(api, finished, stored, row):
    _, job_id = finished
    X, indices = stored["embeddings"], stored["indices"]
    row = row % len(X)
    k = 10
    body = api.get(f"/api/jobs/{job_id}/neighbors", params={"index": int(indices[row]), "k": k}).json()
    d = _cosine_distances(X, X[row])
    d[row] = np.inf
    order = np.argsort(d, kind="stable")[:k]
    got = body["neighbors"]
    assert body["query"]["index"] == int(indices[row])
    assert len(got) == k and int(indices[row]) not in [n["index"] for n in got]
    np.testing.assert_allclose([n["distance"] for n in got], d[order], atol=1e-5)
    assert [n["distance"] for n in got] == sorted(n["distance"] for n in got)
    # same points, up to ties
    assert set(n["index"] for n in got[:-1]) <= set(indices[np.argsort(d)[: k + 2]].tolist())
    assert all(n["image_url"] == f"/api/jobs/{job_id}/images/{n['index']}" for n in got)


def test_upload_of_a_dataset_image_finds_it_first(api, finished, stored):
    _, job_id = finished
    index = int(stored["indices"][3])
    png = api.get(f"/api/jobs/{job_id}/images/{index}")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.headers["x-content-type-options"] == "nosniff"
    r = api.post(f"/api/jobs/{job_id}/neighbors", params={"k": 5}, files={"file": ("x.png", png.content, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["neighbors"][0]["index"] == index
    assert body["neighbors"][0]["distance"] == pytest.approx(0.0, abs=1e-4)
    assert body["query"]["split"] == "upload" and np.isfinite([body["query"]["x"], body["query"]["y"]]).all()
    # Colour by distance to the upload: every point's distance, the uploaded image's own point nearest
    d = np.frombuffer(api.post(f"/api/jobs/{job_id}/embedding/distances", files={"file": ("x.png", png.content)}).content, dtype="<f4")
    assert len(d) == len(stored["indices"]) and d[3] == pytest.approx(0.0, abs=1e-4)  # row 3 shows the uploaded image
    np.testing.assert_allclose(d, _cosine_distances(stored["embeddings"], stored["embeddings"][3]), atol=1e-3)


@pytest.mark.parametrize(
    "params, status",
    [({"index": 0, "k": 0}, 422), ({"index": 0, "k": 1001}, 422), ({"index": -1}, 422), ({"index": 10**6}, 404), ({"index": "x"}, 422)],
)
def test_bad_neighbor_queries(api, finished, params, status):
    _, job_id = finished
    r = api.get(f"/api/jobs/{job_id}/neighbors", params=params)
    assert r.status_code == status, r.text


def test_bad_uploads(api, finished):
    _, job_id = finished
    r = api.post(f"/api/jobs/{job_id}/neighbors", files={"file": ("x.png", b"not an image at all", "image/png")})
    assert r.status_code == 415, r.text
    big = io.BytesIO()
    Image.new("L", (6000, 5000)).save(big, format="PNG")  # 30 Mpx, compresses to a few KiB
    r = api.post(f"/api/jobs/{job_id}/neighbors", files={"file": ("big.png", big.getvalue(), "image/png")})
    assert r.status_code == 413, r.text
    r = api.post(f"/api/jobs/{job_id}/neighbors", params={"k": 0}, files={"file": ("x.png", b"x", "image/png")})
    assert r.status_code == 422


def test_job_without_embeddings_is_a_clear_404(api, finished):
    settings, _ = finished
    queued = jobs.submit(get_engine(settings.db_url), JobSpec(dataset="digits", steps=5))
    for url in (f"/api/jobs/{queued.id}/embedding", f"/api/jobs/{queued.id}/neighbors?index=0"):
        r = api.get(url)
        assert r.status_code == 404 and "no embeddings yet" in r.text
    assert api.get("/api/jobs/999999/embedding").status_code == 404


@pytest.mark.parametrize(
    "path, ok",
    [
        ("/images/0", True),
        ("/images/1796", True),
        ("/images/1797", False),
        ("/images/-1", False),
        ("/images/..%2F..%2Fcheckpoint.pt", False),
        ("/images/%2e%2e", False),
        ("/images/../checkpoint.pt", False),
        ("/images/0%2F..%2F..%2Fetc%2Fpasswd", False),
        ("/images/%252e%252e%252fcheckpoint.pt", False),
        ("/images/..%5C..%5Cembedlab.db", False),
        ("/images/%2Fetc%2Fpasswd", False),
        ("/images/C:%5Cwindows", False),
        ("/images/0%00", False),
    ],
)
def test_images_only_of_the_dataset(api, finished, path, ok):
    _, job_id = finished
    r = api.get(f"/api/jobs/{job_id}{path}")
    assert (r.status_code == 200) == ok, (path, r.status_code)
    if ok:
        assert r.headers["content-type"] == "image/png" and r.headers["x-content-type-options"] == "nosniff"
    else:
        assert r.status_code in (404, 422)


def test_image_folder_symlink_out_is_refused(api, finished):
    settings, _ = finished
    root = settings.home_path / "data" / "ok"
    for name in ("a", "b"):
        (root / name).mkdir(exist_ok=True)
        for i in range(2):
            Image.new("RGB", (10, 10), (i * 100, 0, 0)).save(root / name / f"{i}.png")
    secret = settings.home_path / "secret.png"
    Image.new("RGB", (10, 10), (1, 2, 3)).save(secret)
    job = jobs.submit(
        get_engine(settings.db_url),
        JobSpec(dataset="imagefolder", dataset_path=str(root), steps=5, classes_per_batch=2, samples_per_class=2),
    )
    assert api.get(f"/api/jobs/{job.id}/images/0").status_code == 200
    # the file becomes a link out of the dataset folder
    target = root / "a" / "0.png"
    target.unlink()
    target.symlink_to(secret)
    for index in range(5):
        r = api.get(f"/api/jobs/{job.id}/images/{index}")
        if r.status_code == 200:
            assert Image.open(io.BytesIO(r.content)).getpixel((0, 0)) != (1, 2, 3)
        else:
            assert r.status_code == 404


def test_exports(api, finished, stored):
    _, job_id = finished
    r = api.get(f"/api/jobs/{job_id}/embedding/export", params={"format": "npy"})
    np.testing.assert_array_equal(np.load(io.BytesIO(r.content), allow_pickle=False), stored["embeddings"])
    r = api.get(f"/api/jobs/{job_id}/embedding/export", params={"format": "csv"})
    lines = r.text.splitlines()
    assert lines[0].startswith("index,label,class_name,split,x,y,e0") and len(lines) == len(stored["labels"]) + 1
    r = api.get(f"/api/jobs/{job_id}/embedding/export", params={"format": "projector"})
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert {"embeddings.tsv", "metadata.tsv", "sprite.png"} <= set(z.namelist())
        assert len(z.read("metadata.tsv").decode().splitlines()) == len(stored["labels"]) + 1


def test_page(api, finished):
    _, job_id = finished
    r = api.get(f"/jobs/{job_id}/explore")
    assert r.status_code == 200 and "/static/explore.js" in r.text and "<script>" not in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]


def test_projector_export_imports_back_with_the_same_neighbours(api, finished, stored):
    """Export the job as TensorBoard projector files, import them as a collection: the same points and the same neighbours."""
    from tests.conftest import wait_for

    _, job_id = finished
    with zipfile.ZipFile(io.BytesIO(api.get(f"/api/jobs/{job_id}/embedding/export", params={"format": "projector"}).content)) as z:
        files = {name: (name, z.read(name)) for name in ("embeddings.tsv", "metadata.tsv")}
    space = api.get(f"/api/jobs/{job_id}/embedding/summary").json()["space"]
    r = api.post("/api/collections", files={"embeddings": files["embeddings.tsv"], "labels": files["metadata.tsv"]}, data={"space": space})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    found = wait_for(lambda: (c := api.get(f"/api/collections/{cid}").json())["status"] != "laying out" and c, 240, 0.5, "the layout")
    assert found["status"] == "ready", found["error"]
    assert columns.decode(api.get(f"/api/collections/{cid}/embedding/columns").content)[1]["index"].tolist() == stored["indices"].tolist()
    for row in (0, 33, len(stored["indices"]) - 1):
        index = int(stored["indices"][row])
        job = api.get(f"/api/jobs/{job_id}/neighbors", params={"index": index, "k": 10}).json()["neighbors"]
        imported = api.get(f"/api/collections/{cid}/neighbors", params={"index": index, "k": 10}).json()["neighbors"]
        assert [n["index"] for n in imported] == [n["index"] for n in job]
        assert [n["class_name"] for n in imported] == [n["class_name"] for n in job]
        np.testing.assert_allclose([n["distance"] for n in imported], [n["distance"] for n in job], atol=1e-5)
    # Compared item by item, the two embeddings give every item the same neighbourhood
    same = api.get("/api/neighbourhoods", params={"a": f"job:{job_id}", "b": f"collection:{cid}", "k": 10}).json()
    assert same["shared"] == len(stored["indices"]) and same["mean_change"] < 0.01  # ties at the 10th neighbour may flip
    assert same["items"][0]["image_url"] == f"/api/jobs/{job_id}/images/{same['items'][0]['index']}"
    # Side by side: the job's layout as stored, the collection's (laid out anew) turned onto it
    pair = api.get("/api/neighbourhoods/layouts", params={"a": f"job:{job_id}", "b": f"collection:{cid}"}).json()
    rows = [int(np.flatnonzero(stored["indices"] == i)[0]) for i in pair["points"]["index"]]
    np.testing.assert_allclose(np.c_[pair["layouts"]["a"]["x"], pair["layouts"]["a"]["y"]], stored["xy"][rows], atol=1e-4)
    theirs = columns.decode(api.get(f"/api/collections/{cid}/embedding/columns").content)[1]
    A, B = stored["xy"].astype(np.float64), np.c_[theirs["x"], theirs["y"]].astype(np.float64)  # the same order (checked above)
    u, _, vt = np.linalg.svd((B - B.mean(0)).T @ (A - A.mean(0)))  # Procrustes by hand: rotation u @ vt, then A's spread
    R = u @ vt
    scale = np.sqrt(((A - A.mean(0)) ** 2).sum() / ((B - B.mean(0)) ** 2).sum())
    want = ((B - B.mean(0)) @ R) * scale + A.mean(0)
    np.testing.assert_allclose(np.c_[pair["layouts"]["b"]["x"], pair["layouts"]["b"]["y"]], want[rows], atol=1e-3)
    itself = api.get("/api/neighbourhoods/layouts", params={"a": f"job:{job_id}", "b": f"job:{job_id}"}).json()
    assert itself["alignment"]["residual"] < 1e-6 and itself["layouts"]["b"] == itself["layouts"]["a"]
    bad = api.get("/api/neighbourhoods", params={"a": f"job:{job_id}", "b": "sweep:1"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "b"
    page = api.get("/compare/neighbourhoods", params={"a": f"job:{job_id}", "b": f"collection:{cid}"})
    assert page.status_code == 200 and 'id="changed"' in page.text


def test_distances_to_a_point_and_per_point_ap(api, finished, stored):
    """The page colours by distance (every point's, to one point) and by AP@R: brute force, and pml's per-class MAP@R."""
    _, job_id = finished
    X, indices = stored["embeddings"], stored["indices"]
    body = api.get(f"/api/jobs/{job_id}/embedding/distances", params={"index": int(indices[5])})
    assert body.headers["content-type"] == "application/octet-stream"
    np.testing.assert_allclose(np.frombuffer(body.content, dtype="<f4"), _cosine_distances(X, X[5]), atol=1e-5)
    assert api.get(f"/api/jobs/{job_id}/embedding/distances", params={"index": 10**6}).status_code == 404

    cols = columns.decode(api.get(f"/api/jobs/{job_id}/embedding/columns").content)[1]
    ap, labels, val = cols["ap"], stored["labels"], stored["split"] == 0
    assert np.isnan(ap[~val]).all() and not np.isnan(ap[val]).any()
    for c in api.get(f"/api/jobs/{job_id}/embedding/summary").json()["per_class"]:
        if c["mean_average_precision_at_r"] is not None:
            assert np.mean(ap[val & (labels == c["label"])]) == pytest.approx(c["mean_average_precision_at_r"], abs=1e-5)
