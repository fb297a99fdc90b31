"""The job contract over HTTP: defaults, bad input named by field, list/get/cancel."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def post(client, body, **kw):
    return client.post("/api/jobs", json=body, **kw)


def fields(response) -> dict[str, str]:
    return {d["field"]: d["reason"] for d in response.json()["detail"]}


def test_minimal_spec_gets_every_default(client):
    r = post(client, {"dataset": "digits"})
    assert r.status_code == 201
    job = r.json()
    assert job["status"] == "queued" and job["id"] >= 1
    assert datetime.fromisoformat(job["created_at"]).tzinfo is not None
    spec = job["spec"]
    for key in (
        "name",
        "dataset",
        "dataset_path",
        "split",
        "val_fraction",
        "test_fraction",
        "folds",
        "select_metric",
        "patience",
        "backbone",
        "pretrained",
        "embedding_dim",
        "normalize",
        "image_size",
        "loss",
        "margin",
        "loss_params",
        "miner",
        "classes_per_batch",
        "samples_per_class",
        "optimizer",
        "lr",
        "weight_decay",
        "steps",
        "eval_every",
        "seed",
        "device",
        "priority",
    ):
        assert key in spec, key
    assert spec["loss"] == "triplet" and spec["margin"] == 0.2 and spec["name"] == "triplet m=0.2 digits"
    assert job["progress"] == {"step": 0, "total": spec["steps"]}


@pytest.mark.parametrize(
    "body",
    [
        {"dataset": "digits"},
        {"dataset": "mnist5k"},
        {"dataset": "digits", "split": "samples"},
        {"dataset": "digits", "folds": 4, "fold": 3},
        {"dataset": "digits", "test_fraction": 0, "val_fraction": 0.5},
    ],
)
def test_the_smallest_specs_split_into_three_parts_of_at_least_two_classes(client, body):
    r = post(client, body)
    assert r.status_code == 201, r.text


def test_full_contract_spec_is_accepted(client):
    spec = {
        "name": "triplet m=0.2",
        "dataset": "mnist5k",
        "dataset_path": None,
        "split": "classes",
        "val_fraction": 0.3,
        "test_fraction": 0.2,
        "folds": None,
        "fold": 0,
        "select_metric": "mean_average_precision_at_r",
        "patience": None,
        "backbone": "cnn",
        "pretrained": False,
        "embedding_dim": 128,
        "normalize": True,
        "image_size": None,
        "loss": "triplet",
        "margin": 0.2,
        "loss_params": {},
        "miner": "semihard",
        "classes_per_batch": 5,
        "samples_per_class": 16,
        "optimizer": "adam",
        "lr": 0.001,
        "weight_decay": 0.0,
        "steps": 300,
        "eval_every": 100,
        "seed": 0,
        "device": "auto",
        "priority": 0,
    }
    r = post(client, spec)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "triplet m=0.2"


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({"dataset": "cifar"}, "dataset", "digits"),
        ({"loss": "arcface"}, "loss", "triplet"),
        ({"miner": "hardest"}, "miner", "semihard"),
        ({"backbone": "vgg"}, "backbone", "cnn"),
        ({"margin": -0.1}, "margin", "greater than or equal to 0"),
        ({"margin": "wide"}, "margin", "number"),
        ({"margin": True}, "margin", "number"),
        ({"steps": 0}, "steps", "greater than or equal to 1"),
        ({"steps": -5}, "steps", "greater than or equal to 1"),
        ({"stepz": 10}, "stepz", "unknown field"),
        ({"classes_per_batch": 6}, "classes_per_batch", "only 5 training classes"),
        ({"samples_per_class": 500}, "classes_per_batch", "samples_per_class=500"),
        ({"loss": "circle", "loss_params": {"gama": 80}}, "loss_params", "does not take 'gama'"),
        ({"loss": "circle", "loss_params": {"gamma": "big"}}, "loss_params.gamma", "number"),
        ({"dataset": "imagefolder"}, "dataset_path", "required"),
        ({"dataset": "imagefolder", "dataset_path": "/etc"}, "dataset_path", "outside the allowed data roots"),
        ({"backbone": "cnn", "pretrained": True}, "pretrained", "no pretrained weights"),
        ({"device": "tpu"}, "device", "pattern"),
        ({"val_fraction": 0}, "val_fraction", "greater than 0"),
        ({"val_fraction": 1.5}, "val_fraction", "less than 1"),
        ({"test_fraction": -0.1}, "test_fraction", "greater than or equal to 0"),
        ({"test_fraction": True}, "test_fraction", "number"),
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "test_fraction", "no training part"),
        ({"test_fraction": 0.1}, "test_fraction", "test part of this classes split has 1 class(es) of 10"),
        ({"val_fraction": 0.1}, "val_fraction", "validation part of this classes split has 1 class(es) of 10"),
        ({"split": "samples", "val_fraction": 0.6, "test_fraction": 0.39}, "classes_per_batch", "only 0 training classes"),
        ({"folds": 1}, "folds", "greater than or equal to 2"),
        ({"folds": 3, "fold": 3}, "fold", "choose 0 to 2"),
        ({"fold": 1}, "fold", "only used with `folds`"),
        ({"folds": 8}, "folds", "validation part of this classes split has 1 class(es)"),
        ({"select_metric": "recall_at_1"}, "select_metric", "mean_average_precision_at_r"),
        ({"patience": 0}, "patience", "greater than or equal to 1"),
    ],
)
def test_bad_spec_is_a_422_naming_the_field(client, body, field, words):
    r = post(client, {"dataset": "digits", **body})
    assert r.status_code == 422, r.text
    assert field in fields(r), r.json()
    assert words in fields(r)[field]


def test_body_not_json(client):
    r = client.post("/api/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and fields(r) == {"body": "the request body is not valid JSON"}
    r = client.post("/api/jobs", content=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON object" in fields(r)["body"]
    r = client.post("/api/jobs", content=b"dataset=digits", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and "application/json" in fields(r)["body"]


def make_folder(root: Path, classes: dict[str, int], size: int = 12) -> Path:
    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def test_image_folder_paths(client, settings):
    roots = settings.data_root_paths[0]
    ok = make_folder(roots / "ok", {"a": 4, "b": 4, "c": 4})
    r = post(
        client,
        {
            "dataset": "imagefolder",
            "dataset_path": str(ok),
            "split": "samples",
            "classes_per_batch": 2,
            "samples_per_class": 2,
            "val_fraction": 0.34,
        },
    )
    assert r.status_code == 201, r.text
    one = make_folder(roots / "one", {"a": 4})
    assert "at least 2" in fields(post(client, {"dataset": "imagefolder", "dataset_path": str(one)}))["dataset_path"]
    missing = post(client, {"dataset": "imagefolder", "dataset_path": str(roots / "nope")})
    assert "does not exist" in fields(missing)["dataset_path"]
    sneaky = post(client, {"dataset": "imagefolder", "dataset_path": str(roots / "ok" / ".." / ".." / "..")})
    assert "outside" in fields(sneaky)["dataset_path"]
    (roots / "link").symlink_to("/tmp")
    assert "outside" in fields(post(client, {"dataset": "imagefolder", "dataset_path": str(roots / "link")}))["dataset_path"]


def test_list_get_cancel(client):
    ids = [post(client, {"dataset": "digits", "name": f"job {i}"}).json()["id"] for i in range(3)]
    listing = client.get("/api/jobs").json()
    assert [j["id"] for j in listing["jobs"]] == sorted(ids, reverse=True) and listing["total"] == 3
    page = client.get("/api/jobs", params={"limit": 2, "offset": 2}).json()
    assert [j["id"] for j in page["jobs"]] == [ids[0]]
    assert client.get("/api/jobs", params={"q": "job 1"}).json()["total"] == 1

    r = client.post(f"/api/jobs/{ids[0]}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["finished_at"]
    assert client.post(f"/api/jobs/{ids[0]}/cancel").status_code == 409
    assert [j["id"] for j in client.get("/api/jobs", params={"status": "cancelled"}).json()["jobs"]] == [ids[0]]
    assert client.get("/api/jobs", params={"status": "bogus"}).status_code == 422
    assert client.get("/api/jobs/999").status_code == 404
    assert client.post("/api/jobs/999/cancel").status_code == 404
    assert client.get(f"/api/jobs/{ids[1]}/download/checkpoint").status_code == 404
    assert client.get(f"/api/jobs/{ids[1]}/download/..%2Fembedlab.db").status_code in (404, 422)


@pytest.mark.parametrize(
    "name",
    [
        "..%2Fembedlab.db",
        "%2e%2e%2fembedlab.db",
        "%252e%252e%252fembedlab.db",
        "..%5C..%5Cembedlab.db",
        "%2Fetc%2Fpasswd",
        "C:%5Cwindows%5Cwin.ini",
        "checkpoint.pt%00.png",
        "%2E%2E",
        "checkpoint%2F..%2F..%2Fembedlab.db",
    ],
)
def test_downloads_are_a_fixed_list_of_names(client, settings, name):
    job_id = post(client, {"dataset": "digits"}).json()["id"]
    (settings.job_dir(job_id)).mkdir(parents=True, exist_ok=True)
    (settings.job_dir(job_id) / "checkpoint.pt").write_bytes(b"weights")
    assert client.get(f"/api/jobs/{job_id}/download/checkpoint").content == b"weights"
    r = client.get(f"/api/jobs/{job_id}/download/{name}")
    assert r.status_code in (404, 422), (name, r.status_code)
    assert b"SQLite format" not in r.content and b"root:" not in r.content


def test_datasets_lists_bundled_with_counts(client):
    data = client.get("/api/datasets").json()
    by_name = {d["name"]: d for d in data["datasets"]}
    assert by_name["digits"]["classes"] == 10 and by_name["digits"]["images"] == 1797
    assert by_name["mnist5k"]["images"] == 5000
    assert data["roots"]


def test_workers_are_listed_with_liveness(client, engine):
    from app.store import workers

    workers.register(engine, "host:1:a", host="host", pid=1, device="cpu", version="0.1.0")
    workers.register(engine, "host:2:b", host="host", pid=2, device="cuda:0", version="0.1.0")
    workers.stopped(engine, "host:2:b")
    listed = {w["id"]: w for w in client.get("/api/workers").json()}
    assert listed["host:1:a"]["alive"] and not listed["host:2:b"]["alive"]
    assert listed["host:2:b"]["device"] == "cuda:0"
