"""Binary columns and lasso-selection summaries, on a stored layout of synthetic embeddings (no training)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.explorer import columns
from app.explorer.layout import LayoutState
from app.main import create_app
from app.spec import JobSpec
from app.store import jobs
from app.store.db import get_engine, init_db
from trainer.project import write_projection

N, CLASSES, DIM = 3000, 12, 16


def synthetic_arrays(n: int, seed: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    centres = rng.normal(size=(CLASSES, DIM))
    X = (centres[labels] + rng.normal(scale=0.9, size=(n, DIM))).astype(np.float32)  # overlapping classes: P@1 well below 1
    split = (np.arange(n) >= n // 2).astype(np.int8)
    arrays = {
        "embeddings": X,
        "labels": labels.astype(np.int64),
        "indices": rng.permutation(10 * n)[:n].astype(np.int64),
        "split": split,
        "xy": rng.normal(size=(n, 2)).astype(np.float32) * 7.3,
        "fitted": np.ones(n, bool),
        "nn_same_label": rng.random(n) < 0.8,
    }
    meta = {
        "version": 1,
        "space": "cosine",
        "class_names": [f"class {c}" for c in range(CLASSES)],
        "points": n,
        "splits": {"val": int((split == 0).sum()), "train": int((split == 1).sum())},
        "fitted_points": n,
        "umap": {},
        "layout": LayoutState("cosine", 10, 1.0, 1.0, 1.0, 1.0, 1.0, 5.0, 200, 0, 2.0).to_json(),
        "preservation": {"knn_recall_at_10": 0.0, "trustworthiness_at_10": 0.0},
        "per_class": [],
        "seconds": {},
    }
    return arrays, meta


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Iterator[tuple[TestClient, int, dict[str, np.ndarray]]]:
    home = tmp_path_factory.mktemp("selection") / "home"
    settings = Settings(home=home, demo=False)
    engine = get_engine(settings.db_url)
    init_db(engine)
    job_id = jobs.submit(engine, JobSpec(dataset="digits")).id
    arrays, meta = synthetic_arrays(N)
    write_projection(settings.job_dir(job_id), arrays, meta)
    with TestClient(create_app(settings)) as client:
        yield client, job_id, arrays


def test_binary_columns_decode_to_the_stored_values(job):
    client, job_id, arrays = job
    r = client.get(f"/api/jobs/{job_id}/embedding/columns")
    assert r.status_code == 200 and r.headers["content-type"] == columns.MEDIA_TYPE
    assert len(r.content) < 23 * N + 2000  # 22 bytes a point plus the header
    header, cols = columns.decode(r.content)
    assert header["n"] == N and header["splits"] == ["val", "train"] and header["class_names"][3] == "class 3"
    assert all(c["offset"] % 4 == 0 for c in header["columns"]) and (4 + int.from_bytes(r.content[:4], "little")) % 8 == 0
    np.testing.assert_array_equal(cols["index"], arrays["indices"])
    np.testing.assert_array_equal(cols["x"], arrays["xy"][:, 0])  # float32 bit for bit
    np.testing.assert_array_equal(cols["y"], arrays["xy"][:, 1])
    np.testing.assert_array_equal(cols["label"], arrays["labels"])
    np.testing.assert_array_equal(cols["split"], arrays["split"])
    np.testing.assert_array_equal(cols["nn_same_label"], arrays["nn_same_label"].astype(np.uint8))
    assert np.isnan(cols["ap"]).all()  # a file from before per-point AP: no point scored
    # The same points as the JSON columns the page used to load
    js = client.get(f"/api/jobs/{job_id}/embedding", params={"format": "columns"}).json()
    assert js["index"] == cols["index"].tolist() and js["label"] == cols["label"].tolist()
    assert client.get(f"/api/jobs/{job_id + 999}/embedding/columns").status_code == 404


def test_columns_of_a_job_without_a_layout_say_why(job, tmp_path):
    client, _, _ = job
    settings = client.app.state.settings
    other = jobs.submit(client.app.state.engine, JobSpec(dataset="digits")).id
    r = client.get(f"/api/jobs/{other}/embedding/columns")
    assert r.status_code == 404 and "no embeddings yet" in r.json()["detail"]
    assert not (settings.job_dir(other) / "projection.npz").exists()


def brute_force(arrays: dict[str, np.ndarray], rows: np.ndarray) -> tuple[dict[int, int], dict[int, float], list[int]]:
    """Counts, per-class P@1 (nearest other point over all points, cosine) and the rows nearest the mean, from scratch."""
    X = arrays["embeddings"] / np.linalg.norm(arrays["embeddings"], axis=1, keepdims=True)
    labels = arrays["labels"]
    d = 1.0 - X[rows] @ X.T
    d[np.arange(len(rows)), rows] = np.inf
    right = labels[d.argmin(axis=1)] == labels[rows]
    counts = {int(c): int((labels[rows] == c).sum()) for c in np.unique(labels[rows])}
    p1 = {c: float(right[labels[rows] == c].mean()) for c in counts}
    centre = X[rows].mean(axis=0)
    centre /= np.linalg.norm(centre)
    return counts, p1, rows[np.argsort(1.0 - X[rows] @ centre)[:8]].tolist()


def test_selection_summary_equals_brute_force(job):
    client, job_id, arrays = job
    rng = np.random.default_rng(3)
    rows = np.sort(rng.choice(N, 700, replace=False))
    indices = arrays["indices"][rows].tolist()
    body = client.post(f"/api/jobs/{job_id}/embedding/selection", json={"indices": indices + indices[:5]}).json()  # duplicates count once
    counts, p1, central = brute_force(arrays, rows)
    assert body["count"] == 700
    assert {c["label"]: c["count"] for c in body["per_class"]} == counts
    assert sum(c["count"] for c in body["per_class"]) == 700
    for c in body["per_class"]:
        assert c["precision_at_1"] == pytest.approx(p1[c["label"]])
        assert c["class_name"] == f"class {c['label']}"
    assert 0.2 < body["precision_at_1"] < 0.98  # overlapping classes: neither trivial nor hopeless
    assert [c["index"] for c in body["central"]] == arrays["indices"][central].tolist()
    assert body["central"][0]["image_url"] == f"/api/jobs/{job_id}/images/{body['central'][0]['index']}"
    # A second, overlapping selection reuses the neighbours found for the first and still agrees
    rows2 = np.arange(0, N, 7)
    body2 = client.post(f"/api/jobs/{job_id}/embedding/selection", json={"indices": arrays["indices"][rows2].tolist()}).json()
    _, p1b, _ = brute_force(arrays, rows2)
    assert {c["label"]: c["precision_at_1"] for c in body2["per_class"]} == pytest.approx(p1b)


def test_selection_csv_export(job):
    client, job_id, arrays = job
    rows = [5, 9, 1200]
    r = client.post(f"/api/jobs/{job_id}/embedding/selection", params={"format": "csv"}, json={"indices": arrays["indices"][rows].tolist()})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(r.text)))
    got = {int(t["index"]): (int(t["label"]), t["split"]) for t in table}
    assert got == {int(arrays["indices"][i]): (int(arrays["labels"][i]), ["val", "train"][arrays["split"][i]]) for i in rows}


def test_selection_npy_export_is_the_csvs_rows_embeddings(job):
    client, job_id, arrays = job
    rows = [1200, 5, 9, 5]  # out of order, one twice
    wanted = {"indices": arrays["indices"][rows].tolist()}
    url = f"/api/jobs/{job_id}/embedding/selection"
    r = client.post(url, params={"format": "npy"}, json=wanted)
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert f'filename="job{job_id}-selection.npy"' in r.headers["content-disposition"]
    got = np.load(io.BytesIO(r.content), allow_pickle=False)
    table = list(csv.DictReader(io.StringIO(client.post(url, params={"format": "csv"}, json=wanted).text)))
    row_of = {int(i): r for r, i in enumerate(arrays["indices"])}
    assert got.dtype == np.float32 and got.shape == (len(table), DIM) == (3, DIM)
    np.testing.assert_array_equal(got, arrays["embeddings"][[row_of[int(t["index"])] for t in table]])


@pytest.mark.parametrize(
    "payload,field", [({"indices": []}, "indices"), ({"indices": [-1]}, "indices.0"), ({}, "indices"), ({"indices": ["a"]}, "indices.0")]
)
def test_bad_selections_are_refused(job, payload, field):
    client, job_id, _ = job
    r = client.post(f"/api/jobs/{job_id}/embedding/selection", json=payload)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == field


def test_unknown_index_names_it(job):
    client, job_id, arrays = job
    missing = int(arrays["indices"].max()) + 1
    r = client.post(f"/api/jobs/{job_id}/embedding/selection", json={"indices": [int(arrays["indices"][0]), missing]})
    assert r.status_code == 422
    detail = r.json()["detail"][0]
    assert detail["field"] == "indices" and str(missing) in detail["reason"]


def test_page_loads_the_vendored_scatter_and_no_plotly(job):
    client, job_id, _ = job
    page = client.get(f"/jobs/{job_id}/explore")
    assert page.status_code == 200 and "plotly" not in page.text and "https://" not in page.text.split("<body")[0]
    csp = page.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-eval'" in csp and "blob:" not in csp.split("script-src")[1].split(";")[0]
    for name in ("regl-scatterplot.esm.js", "regl.js", "pub-sub-es.js", "LICENSE.regl-scatterplot", "LICENSE.regl", "LICENSE.pub-sub-es"):
        r = client.get(f"/static/vendor/regl-scatterplot/{name}")
        assert r.status_code == 200 and len(r.content) > 500, name
    esm = client.get("/static/vendor/regl-scatterplot/regl-scatterplot.esm.js").text
    assert "from './pub-sub-es.js'" in esm and "from './regl.js'" in esm  # no bare specifiers: no import map, no build step
