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
BUILDING = "building"  # temp folders beside the entries: .building.<host>-<pid>-<random suffix>
HEADER_BYTES = 4096  # an .npy header is at most this


def decode_image(path_or_file, size: int) -> np.ndarray:
    """Any mode and size -> RGB uint8 (3, size, size)."""
    with Image.open(path_or_file) as im:
        im = im.convert("RGB").resize((size, size), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


def keep_first_rows(path: Path, rows: int) -> None:
    """Shrink a C-order .npy file to its first `rows` rows in place: the new shape goes into the header
    (padded to its old length, as the format allows) and the file is truncated. No copy, so no more disk
    than the full file already holds."""
    fmt = np.lib.format
    with open(path, "r+b") as f:
        major, _ = fmt.read_magic(f)
        shape, fortran, dtype = (fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0)(f)
        data_offset, prefix = f.tell(), 10 if major == 1 else 12  # magic + version + header length field
        header = repr({"descr": fmt.dtype_to_descr(dtype), "fortran_order": False, "shape": (rows, *shape[1:])})
        f.seek(prefix)
        f.write(header.ljust(data_offset - prefix - 1).encode("latin1") + b"\n")
        f.truncate(data_offset + rows * int(np.prod(shape[1:])) * dtype.itemsize)


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
    """(images uint8 (N, 3, size, size), dataset indices of the N readable files), from the cache when current.

    A write that does not fit raises DiskFull naming the cache and the room left once its files are gone."""
    try:
        return _decoded_folder(catalog, size, cache_dir, log)
    except Exception as e:
        if not is_disk_full(e):
            raise
        raise DiskFull(_cache_name(catalog, size), free_bytes(cache_dir), e.need if isinstance(e, DiskFull) else None) from e


def _cache_name(catalog: Catalog, size: int) -> str:
    return f"the decoded-image cache of {catalog.root} at {size} px"


def open_entry(entry: Path) -> tuple[np.ndarray, np.ndarray]:
    """The pixels memory-mapped read-only (a shared mapping: page cache, outside the attempt's RLIMIT_DATA ceiling,
    which counts private writable maps), and the kept dataset indices."""
    return np.load(entry / "images.npy", mmap_mode="r"), np.load(entry / "kept.npy")


def _decoded_folder(catalog: Catalog, size: int, cache_dir: Path, log: Callable[[str, str], None]) -> tuple[np.ndarray, np.ndarray]:
    entry = cache_dir / "folders" / hashlib.sha256(f"{catalog.root}\0{size}".encode()).hexdigest()[:24]
    sig = signature(catalog, size)
    meta_path = entry / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("signature") == sig:
            for line in meta["skipped"]:
                log("warning", line)
            log("info", f"decoded images reused from the cache ({meta['decoded']} images)")
            return open_entry(entry)
    entry.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(entry.parent, BUILDING)
    shape = (len(catalog.files), 3, size, size)
    ensure_room(entry.parent, int(np.prod(shape)) + HEADER_BYTES, _cache_name(catalog, size))
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=temp_prefix(BUILDING)))
    try:
        # Decode straight into the file: peak memory stays one image, not the whole folder.
        out = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=shape)
        with open(tmp / "images.npy", "r+b") as f:
            preallocate(f.fileno(), os.fstat(f.fileno()).st_size, _cache_name(catalog, size), entry.parent)
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
        del out
        if len(kept) < len(catalog.files):  # drop the unused tail rows
            keep_first_rows(tmp / "images.npy", len(kept))
        np.save(tmp / "kept.npy", np.asarray(kept, dtype=np.int64))
        (tmp / "meta.json").write_text(json.dumps({"signature": sig, "decoded": len(kept), "skipped": skipped}))
        # Jobs building the same entry at once: each replaces the one before (jobs reading it keep their
        # memory maps of the unlinked files). A directory cannot be renamed over a non-empty one, so when
        # another job's entry lands between these two lines this rename fails and that entry, whole, is used.
        shutil.rmtree(entry, ignore_errors=True)
        try:
            os.replace(tmp, entry)
        except OSError:
            if not (entry / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return open_entry(entry)
