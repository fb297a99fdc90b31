"""The decoded-image cache: reused across jobs, rebuilt when a file changes, same pixels as decoding."""

from __future__ import annotations

import os
import shutil

import numpy as np
from PIL import Image

from app.datasets import load_catalog
from trainer.image_cache import decode_image, decoded_folder


def make(root, n=4):
    rng = np.random.default_rng(1)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    (root / "dog" / "bad.png").write_bytes(b"nope")
    return root


def test_cache_is_reused_and_invalidated(tmp_path):
    root = make(tmp_path / "data")
    logs = []
    log = lambda level, msg: logs.append(msg)  # noqa: E731
    catalog = load_catalog("imagefolder", str(root), [tmp_path])
    images, kept = decoded_folder(catalog, 16, tmp_path / "cache", log)
    assert images.shape == (8, 3, 16, 16) and images.dtype == np.uint8
    assert [catalog.files[i].name for i in kept] == ["0.png", "1.png", "2.png", "3.png"] * 2
    assert np.array_equal(images[5], decode_image(catalog.files[kept[5]], 16))
    assert any("bad.png" in m for m in logs)

    logs.clear()
    again, _ = decoded_folder(catalog, 16, tmp_path / "cache", log)
    assert isinstance(again, np.memmap) and np.array_equal(again, images)
    assert any("reused from the cache" in m for m in logs) and any("bad.png" in m for m in logs)

    target = root / "cat" / "0.png"
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(target)
    os.utime(target, ns=(1, 1))
    logs.clear()
    changed, _ = decoded_folder(load_catalog("imagefolder", str(root), [tmp_path]), 16, tmp_path / "cache", log)
    assert not any("reused" in m for m in logs)
    assert changed[0].max() == 0 and not np.array_equal(changed, images)
    assert len(list((tmp_path / "cache" / "folders").iterdir())) == 1  # rebuilt in place, no leftovers


def test_an_entry_another_job_finished_meanwhile_is_used(tmp_path, monkeypatch):
    """Two jobs decode the same folder at once and the other's entry lands just before this one's rename: both jobs train."""
    import trainer.image_cache as image_cache

    root = make(tmp_path / "data")
    catalog = load_catalog("imagefolder", str(root), [tmp_path])
    first, _ = decoded_folder(catalog, 16, tmp_path / "other", lambda level, msg: None)  # the other job's whole entry
    (other,) = (tmp_path / "other" / "folders").iterdir()
    real_replace = os.replace

    def other_lands_first(src, dst):
        if os.fspath(src).rsplit(os.sep, 1)[-1].startswith(".building-"):
            shutil.copytree(other, dst)
        return real_replace(src, dst)

    monkeypatch.setattr(image_cache.os, "replace", other_lands_first)
    images, kept = decoded_folder(catalog, 16, tmp_path / "cache", lambda level, msg: None)
    assert np.array_equal(images, first) and len(kept) == 8
    assert not [p for p in (tmp_path / "cache" / "folders").iterdir() if p.name.startswith(".building-")]
