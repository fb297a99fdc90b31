"""Image folders decoded once into a uint8 array under EMBEDLAB_HOME/cache, reused by every job.

Decoding dominates an image-folder job's start (and, on a GPU, its steps), so the decoded
pixels are kept as one .npy per (folder, size) and memory-mapped by later jobs: they share
the page cache instead of decoding again. The entry is rebuilt when any file's name, size
or modification time changes.

A full disk is an error, never a crash: the space is checked and reserved (fallocate) before
pixels go into the memory map, since writing a memory-mapped page the filesystem cannot back
kills the process with SIGBUS instead of raising. A build that fails removes its files, and
the folders of builds whose process died are removed by the next build on the host.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from app.datasets import Catalog
from app.files import DiskFull, ensure_room, free_bytes, is_disk_full, preallocate, remove_leftovers, temp_prefix
from trainer.errors import JobFailed

# Decompression bombs and absurd images are refused rather than decoded.
Image.MAX_IMAGE_PIXELS = 64_000_000
UNREADABLE = (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError)
BUILDING = "building"  # temp folders: .building.<host>-<pid>-XXXX beside the entries
HEADER_BYTES = 4096  # an .npy header is at most this


def decode_image(path_or_file, size: int) -> np.ndarray:
    """Any mode and size -> RGB uint8 (3, size, size)."""
    with Image.open(path_or_file) as im:
        im = im.convert("RGB").resize((size, size), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


def signature(catalog: Catalog, size: int) -> str:
    h = hashlib.sha256(f"{catalog.root}\0{size}".encode())
    for path in catalog.files:
        try:
            st = path.stat()
        except FileNotFoundError:
            raise JobFailed(f"image folder changed while loading: {path.name} is gone") from None
        h.update(f"{path.relative_to(catalog.root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def decoded_folder(catalog: Catalog, size: int, cache_dir: Path, log: Callable[[str, str], None]) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, size, size), dataset indices of the N readable files), from the cache when current."""
    entry = cache_dir / "folders" / hashlib.sha256(f"{catalog.root}\0{size}".encode()).hexdigest()[:24]
    sig = signature(catalog, size)
    meta_path = entry / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("signature") == sig:
            for line in meta["skipped"]:
                log("warning", line)
            log("info", f"decoded images reused from the cache ({meta['decoded']} images)")
            return np.load(entry / "images.npy", mmap_mode="c"), np.load(entry / "kept.npy")
    entry.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(entry.parent, BUILDING)
    what = f"the decoded-image cache of {catalog.root} at {size} px"
    shape = (len(catalog.files), 3, size, size)
    ensure_room(entry.parent, int(np.prod(shape)) + HEADER_BYTES, what)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=temp_prefix(BUILDING)))
    out = full = None
    try:
        # Decode straight into the file: peak memory stays one image, not the whole folder.
        out = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=shape)
        with open(tmp / "images.npy", "r+b") as f:
            preallocate(f.fileno(), os.fstat(f.fileno()).st_size, what, entry.parent)
        kept, skipped = [], []
        for i, path in enumerate(catalog.files):
            try:
                out[len(kept)] = decode_image(path, size)
                kept.append(i)
            except FileNotFoundError:
                raise JobFailed(f"image folder changed while loading: {path.name} is gone") from None
            except UNREADABLE as e:
                skipped.append(f"skipped unreadable image {path.relative_to(catalog.root)}: {type(e).__name__}")
        if skipped:
            skipped.append(f"skipped {len(skipped)} unreadable file(s) of {len(catalog.files)}")
        for line in skipped:
            log("warning", line)
        if not kept:
            raise JobFailed("no readable image in the folder")
        out.flush()
        out = None
        if len(kept) < len(catalog.files):  # drop the unused tail rows
            full = np.load(tmp / "images.npy", mmap_mode="r")
            np.save(tmp / "images.trimmed.npy", full[: len(kept)])
            full = None
            os.replace(tmp / "images.trimmed.npy", tmp / "images.npy")
        np.save(tmp / "kept.npy", np.asarray(kept, dtype=np.int64))
        (tmp / "meta.json").write_text(json.dumps({"signature": sig, "decoded": len(kept), "skipped": skipped}))
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(tmp, entry)  # another job building the same entry at once: the last rename wins, both are whole
    except Exception as e:
        out = full = None  # unmap before deleting, so the room reported is the room there is
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(e) and not isinstance(e, DiskFull):
            raise DiskFull(what, free_bytes(entry.parent)) from e
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return np.load(entry / "images.npy", mmap_mode="c"), np.load(entry / "kept.npy")
