"""Image-folder thumbnails: decoded once into a bounded on-disk cache, a capped number of decodes at a time."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.config import Settings
from app.datasets import load_catalog
from app.explorer import thumbnails
from app.files import thumbnail_cache_dir
from app.main import create_app
from app.spec import JobSpec
from app.store import jobs
from app.store.db import get_engine

PER_CLASS = 12


class Decodes:
    """Counts real decodes (and how many run at once), optionally holding each one a moment so they overlap."""

    def __init__(self, hold: float = 0.0):
        self.hold, self.paths, self.running, self.most = hold, [], 0, 0
        self._lock = threading.Lock()
        self._real = thumbnails._decode

    def __call__(self, source: Path) -> bytes:
        with self._lock:
            self.paths.append(source)
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.hold)
            return self._real(source)
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def folder_job(home: Path) -> Iterator[tuple[TestClient, int, list[Path]]]:
    root = home / "datasets" / "shapes"
    for c, name in enumerate(("red", "blue")):
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            Image.new("RGB", (640, 480), (40 + 10 * i, 100 * c, 7)).save(root / name / f"{i:02}.png")
    Image.new("RGB", (2000, 1500), (200, 30, 30)).save(root / "red" / "photo.jpg", quality=90)
    settings = Settings(home=home, demo=False)
    app = create_app(settings)
    job = jobs.submit(
        get_engine(settings.db_url),
        JobSpec(dataset="imagefolder", dataset_path=str(root), steps=5, classes_per_batch=2, samples_per_class=2),
    )
    files = load_catalog("imagefolder", str(root), settings.data_root_paths).files
    with TestClient(app) as client:
        yield client, job.id, files


def thumbnail(client: TestClient, job_id: int, index: int) -> Image.Image:
    r = client.get(f"/api/jobs/{job_id}/images/{index}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
    return Image.open(io.BytesIO(r.content))


def test_an_image_is_decoded_once_and_a_changed_file_again(folder_job, home, monkeypatch):
    client, job_id, files = folder_job
    decodes = Decodes()
    monkeypatch.setattr(thumbnails, "_decode", decodes)
    first = thumbnail(client, job_id, 0)
    assert first.size == (128, 96) and first.getpixel((5, 5)) == Image.open(files[0]).getpixel((5, 5))
    assert thumbnail(client, job_id, 0).tobytes() == first.tobytes()
    assert decodes.paths == [files[0].resolve()]
    assert len(list(thumbnail_cache_dir(home).rglob("*.png"))) == 1
    # The file is replaced by another picture: a new thumbnail, decoded once more.
    Image.new("RGB", (300, 600), (1, 2, 250)).save(files[0])
    changed = thumbnail(client, job_id, 0)
    assert changed.size == (64, 128) and changed.getpixel((5, 5)) == (1, 2, 250)
    assert len(decodes.paths) == 2
    # A JPEG is shrunk on decode (draft mode) and thumbnailed like the rest.
    jpeg = files.index(next(f for f in files if f.suffix == ".jpg"))
    im = thumbnail(client, job_id, jpeg)
    assert im.size == (128, 96) and abs(im.getpixel((60, 40))[0] - 200) < 8


def test_the_cache_stays_within_its_budget_and_keeps_the_recent_ones(folder_job, home, monkeypatch):
    client, job_id, files = folder_job
    decodes = Decodes()
    monkeypatch.setattr(thumbnails, "_decode", decodes)
    one = len(client.get(f"/api/jobs/{job_id}/images/0").content)
    cache = thumbnails.cache_for(thumbnail_cache_dir(home))
    monkeypatch.setattr(cache, "max_bytes", 5 * one)
    for index in range(1, 2 * PER_CLASS):
        thumbnail(client, job_id, index)
        assert cache.size() <= 5 * one + one // 2  # the thumbnails differ by a few bytes in size
    assert len(decodes.paths) == 2 * PER_CLASS
    # The most recent are still there: served without a decode; the oldest were evicted and are decoded again.
    thumbnail(client, job_id, 2 * PER_CLASS - 1)
    assert len(decodes.paths) == 2 * PER_CLASS
    thumbnail(client, job_id, 0)
    assert len(decodes.paths) == 2 * PER_CLASS + 1


def test_parallel_requests_decode_at_most_the_cap_at_once(folder_job, monkeypatch):
    client, job_id, files = folder_job
    decodes = Decodes(hold=0.3)
    monkeypatch.setattr(thumbnails, "_decode", decodes)
    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(lambda i: client.get(f"/api/jobs/{job_id}/images/{i}").status_code, range(10)))
    assert codes == [200] * 10 and len(decodes.paths) == 10
    assert decodes.most == thumbnails.MAX_PARALLEL_DECODES
    # Many requests for one uncached image: one decode, the others wait for it and read the file.
    with ThreadPoolExecutor(6) as pool:
        bodies = list(pool.map(lambda _: client.get(f"/api/jobs/{job_id}/images/11").content, range(6)))
    assert len(set(bodies)) == 1 and decodes.paths.count(files[11].resolve()) == 1


def test_an_undecodable_file_is_a_404_not_a_cache_entry(folder_job, home):
    client, job_id, files = folder_job
    files[3].write_bytes(b"not a png at all")
    r = client.get(f"/api/jobs/{job_id}/images/3")
    assert r.status_code == 404 and "cannot be decoded" in r.json()["detail"]
    assert not list(thumbnail_cache_dir(home).rglob("*.png"))
