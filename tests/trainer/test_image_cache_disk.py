"""The decoded-image cache on a real full filesystem: an error naming the cache and the room, never SIGBUS, nothing left behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from app.datasets import load_catalog
from app.files import DiskFull
from trainer.image_cache import decode_image, decoded_folder


def folder(root, classes=2, per_class=6):
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(root / f"class{c}" / f"{i}.png")
    return root


def test_a_cache_larger_than_the_disk_is_refused_before_writing(tmp_path, small_disk):
    data = folder(tmp_path / "data")
    catalog = load_catalog("imagefolder", str(data), [tmp_path])
    cache = small_disk.path / "cache"
    with pytest.raises(DiskFull) as caught:
        decoded_folder(catalog, 512, cache, lambda *_: None)  # 12 x 3 x 512 x 512 = 9.4 MB into 8 MB
    message = str(caught.value)
    assert message.startswith(f"disk full while writing the decoded-image cache of {data} at 512 px (free ")
    assert "needs 9.4 MB" in message, message
    assert [p for p in (cache / "folders").iterdir()] == []  # no half-built entry

    images, kept = decoded_folder(catalog, 128, cache, lambda *_: None)  # 2.4 MB: fits, and works
    assert images.shape == (12, 3, 128, 128) and len(kept) == 12


def test_a_disk_filled_after_the_check_is_an_error_not_a_bus_error(tmp_path, small_disk):
    """Another writer takes the space between the free-space check and the decoding (the check is skipped
    here to stand for that race): the reserved file makes it an exception; an unreserved memory map would
    kill the worker with SIGBUS, as it did before."""
    data = folder(tmp_path / "data")
    code = textwrap.dedent(f"""
        import json, trainer.image_cache as ic
        from app.datasets import load_catalog
        from app.files import DiskFull
        ic.ensure_room = lambda *a: None
        catalog = load_catalog("imagefolder", {str(data)!r}, [__import__("pathlib").Path({str(tmp_path)!r})])
        try:
            ic.decoded_folder(catalog, 512, __import__("pathlib").Path({str(small_disk.path / "cache")!r}), lambda *_: None)
        except DiskFull as e:
            print(json.dumps({{"error": str(e)}}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert done.returncode == 0, f"the process died with {done.returncode}: {done.stderr[-2000:]}"
    error = json.loads(done.stdout.strip().splitlines()[-1])["error"]
    assert error == f"disk full while writing the decoded-image cache of {data} at 512 px (free 8.4 MB, needs 9.4 MB)"  # room once unmapped
    assert [p.name for p in (small_disk.path / "cache" / "folders").iterdir()] == []


def test_a_build_killed_midway_is_cleaned_up_by_the_next(tmp_path, small_disk):
    data = folder(tmp_path / "data")
    cache = small_disk.path / "cache"
    code = textwrap.dedent(f"""
        import os, signal, pathlib, trainer.image_cache as ic
        from app.datasets import load_catalog
        real = ic.decode_image
        def decode_then_die(path, size):
            if path.name == "3.png":
                os.kill(os.getpid(), signal.SIGKILL)
            return real(path, size)
        ic.decode_image = decode_then_die
        catalog = load_catalog("imagefolder", {str(data)!r}, [pathlib.Path({str(tmp_path)!r})])
        ic.decoded_folder(catalog, 256, pathlib.Path({str(cache)!r}), lambda *_: None)
    """)
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert done.returncode == -9
    assert [p.name.startswith(".building.") for p in (cache / "folders").iterdir()] == [True]  # 2.4 MB held by a dead build
    catalog = load_catalog("imagefolder", str(data), [tmp_path])
    decoded_folder(catalog, 256, cache, lambda *_: None)
    assert not any(p.name.startswith(".building.") for p in (cache / "folders").iterdir())


def test_unreadable_files_are_trimmed_in_place_without_a_second_copy(tmp_path, small_disk):
    data = folder(tmp_path / "data")
    for c in range(2):  # half the files do not decode: the rows decoded are fewer than those reserved
        for i in range(6):
            (data / f"class{c}" / f"broken{i}.png").write_bytes(b"not a png")
    catalog = load_catalog("imagefolder", str(data), [tmp_path])
    images, kept = decoded_folder(catalog, 288, small_disk.path / "cache", lambda *_: None)  # 24 rows reserved: 6.0 MB of 8.4
    assert images.shape == (12, 3, 288, 288) and len(kept) == 12  # a 3.0 MB copy of the kept rows would not have fitted
    assert np.array_equal(images[11], decode_image(catalog.files[kept[11]], 288))
    assert shutil.disk_usage(small_disk.path).free > 8_388_608 - 3_100_000


def test_a_write_failing_late_in_the_build_reports_the_room_left_after_cleanup(tmp_path, small_disk):
    data = folder(tmp_path / "data")
    catalog = load_catalog("imagefolder", str(data), [tmp_path])
    room = 12 * 3 * 64 * 64 + 4096  # the pixels and their header page: the index file after them finds no room
    small_disk.fill(leave=room)
    with pytest.raises(DiskFull) as caught:
        decoded_folder(catalog, 64, small_disk.path / "cache", lambda *_: None)
    assert str(caught.value) == f"disk full while writing the decoded-image cache of {data} at 64 px (free 151.6 KB)"
    assert shutil.disk_usage(small_disk.path).free == room  # the half-built files are gone and unmapped
    assert list((small_disk.path / "cache" / "folders").iterdir()) == []
