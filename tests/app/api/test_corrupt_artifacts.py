"""A damaged checkpoint.pt or projection.npz on disk is a 409 naming the file and what to do, never a 500.

One tiny digits job is trained once per module; each test copies its artifacts to a job of its own
and damages one file the ways a disk or a person does (truncated, overwritten, a file of another shape).
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.config import Settings
from app.files import BEST_CHECKPOINT_FILE, PROJECTION_FILE
from app.main import create_app
from app.spec import JobSpec
from app.store import jobs
from app.store.db import get_engine
from tests.conftest import train_one

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "embedlab-tests" / "numba"))
SPEC = JobSpec(dataset="digits", steps=10, eval_every=10, classes_per_batch=4, samples_per_class=8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Settings, int]:
    settings = Settings(home=tmp_path_factory.mktemp("corrupt") / "home", demo=False)
    return settings, train_one(settings, SPEC)


@pytest.fixture(scope="module")
def api(trained) -> Iterator[TestClient]:
    with TestClient(create_app(trained[0])) as c:
        yield c


@pytest.fixture
def damaged(trained) -> Callable[[str, Callable[[Path], None]], int]:
    """A new job with the trained job's artifacts, `damage` applied to one of its files."""
    settings, source = trained

    def make(filename: str, damage: Callable[[Path], None]) -> int:
        job_id = jobs.submit(get_engine(settings.db_url), SPEC).id
        shutil.copytree(settings.job_dir(source), settings.job_dir(job_id), dirs_exist_ok=True)
        damage(settings.job_dir(job_id) / filename)
        return job_id

    return make


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def overwritten(path: Path) -> None:
    path.write_bytes(b"\x00garbage, not what embedlab wrote" * 100)


def emptied(path: Path) -> None:
    path.write_bytes(b"")


def projection_without(key: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != key}
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    return damage


def projection_with_a_broken_layout_state(path: Path) -> None:
    import json

    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.array(json.dumps({**meta, "layout": {"a": 1}}))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def projection_of_other_lengths(path: Path) -> None:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["labels"] = arrays["labels"][:-3]
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((8, 8), 128, dtype=np.uint8), "L").save(out, format="PNG")
    return out.getvalue()


def assert_names(response, filename: str, remedy: str = "run the job again") -> None:
    assert response.status_code == 409, response.text
    detail = response.json()["detail"]
    assert filename in detail and remedy in detail, detail


@pytest.mark.parametrize(
    "damage",
    [
        truncated,
        overwritten,
        emptied,
        projection_without("xy"),
        projection_without("meta"),
        projection_of_other_lengths,
        projection_with_a_broken_layout_state,
    ],
    ids=lambda d: getattr(d, "__name__", "missing"),
)
def test_a_damaged_projection_is_a_409_on_every_explorer_route(api, damaged, damage):
    job_id = damaged(PROJECTION_FILE, damage)
    base = f"/api/jobs/{job_id}"
    for path in [
        "/embedding",
        "/embedding?format=columns",
        "/embedding/summary",
        "/neighbors?index=0",
        "/embedding/export?format=npy",
        "/embedding/export?format=csv",
        "/embedding/export?format=projector",
    ]:
        assert_names(api.get(base + path), PROJECTION_FILE)
    assert_names(api.post(f"{base}/neighbors", files={"file": ("q.png", png(), "image/png")}), PROJECTION_FILE)
    assert api.get(f"/jobs/{job_id}/explore").status_code == 200  # the page itself opens and shows the message


def wrong_state(path: Path) -> None:
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    torch.save({**ckpt, "model": {k: v[..., :1] if v.ndim else v for k, v in ckpt["model"].items()}}, path)


def no_convolution(path: Path) -> None:
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    torch.save({**ckpt, "model": {}}, path)


def spec_of_another_version(path: Path) -> None:
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    torch.save({**ckpt, "spec": {**ckpt["spec"], "loss": "arcface"}}, path)


def without_spec(path: Path) -> None:
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    torch.save({k: v for k, v in ckpt.items() if k != "spec"}, path)


@pytest.mark.parametrize(
    "damage",
    [truncated, overwritten, emptied, wrong_state, no_convolution, spec_of_another_version, without_spec],
    ids=lambda d: d.__name__,
)
def test_a_damaged_checkpoint_is_a_409_for_the_image_query(api, damaged, damage):
    job_id = damaged(BEST_CHECKPOINT_FILE, damage)  # image queries embed with the best checkpoint
    r = api.post(f"/api/jobs/{job_id}/neighbors", files={"file": ("q.png", png(), "image/png")})
    assert_names(r, BEST_CHECKPOINT_FILE)
    assert api.get(f"/api/jobs/{job_id}/neighbors?index=0").status_code == 200  # the stored points still answer


def test_the_intact_job_still_answers(api, trained):
    _, job_id = trained
    r = api.post(f"/api/jobs/{job_id}/neighbors", files={"file": ("q.png", png(), "image/png")})
    assert r.status_code == 200 and len(r.json()["neighbors"]) == 10
