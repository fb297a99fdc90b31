"""Thumbnails of image-folder files: decoded once, kept as PNG files in a bounded on-disk cache.

A full-size source (a 64 Mpx PNG decodes to ~200 MB and takes most of a second) is decoded
only on a miss, by at most MAX_PARALLEL_DECODES threads of the process at once; JPEGs are
decoded at a reduced scale (draft mode). A thumbnail's file name hashes the source's resolved
path, size, modification time and inode, so an edited source gets a new thumbnail and the old
one ages out. Hits refresh the file's mtime; when the folder grows past its byte budget the
least recently used files are deleted down to 80% of it. Deleting the folder is always safe.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

from PIL import Image

from app.files import atomic_write

THUMBNAIL_SIZE = 128  # longest side
MAX_SOURCE_PIXELS = 64_000_000  # as the trainer: a larger file is not decoded
MAX_PARALLEL_DECODES = 2  # per process: each full-size decode may hold a few hundred MB
MAX_CACHE_BYTES = 256 * 1024 * 1024  # ~8,000 photo thumbnails of 128 px
_VERSION = b"1"  # bump when the thumbnail's making changes

_decodes = threading.BoundedSemaphore(MAX_PARALLEL_DECODES)
# Pillow allocates an image in blocks of 16 MB, below glibc's mmap threshold: a decoded 8k image stays in
# the decoding thread's malloc arena after it is freed (the server kept 1.1 GB after 8 of them). Blocks of
# 64 MB are mmapped and go back to the system when the image is freed.
Image.core.set_block_size(64 * 1024 * 1024)
_stripes = [threading.Lock() for _ in range(64)]  # one decode per thumbnail at a time, in bounded memory


class TooLarge(ValueError):
    """A source image over the pixel limit: never decoded."""


def decode(source: Path) -> bytes:
    """The source's thumbnail as PNG bytes (raises OSError/ValueError for what does not decode)."""
    with _decodes:
        return _decode(source)


def _decode(source: Path) -> bytes:
    with Image.open(source) as im:
        if im.width * im.height > MAX_SOURCE_PIXELS:
            raise TooLarge(f"{im.width}x{im.height}")
        im.draft("RGB", (THUMBNAIL_SIZE, THUMBNAIL_SIZE))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
        if im.mode not in ("RGB", "RGBA", "L", "LA"):
            im = im.convert("RGB")  # palette, 16-bit, CMYK: resampled in a mode that interpolates
        im.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))  # shrinks in place; no full-size copy
        out = io.BytesIO()
        im.convert("RGB").save(out, format="PNG")
        return out.getvalue()


class ThumbnailCache:
    def __init__(self, root: Path, max_bytes: int = MAX_CACHE_BYTES):
        self.root, self.max_bytes = root, max_bytes
        self._lock = threading.Lock()
        self._bytes: int | None = None  # the folder's size, read on first store

    def path_of(self, source: Path) -> Path:
        st = source.stat()
        key = hashlib.sha256(
            b"\0".join([_VERSION, os.fsencode(source), str(THUMBNAIL_SIZE).encode(), f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}".encode()])
        ).hexdigest()
        return self.root / key[:2] / f"{key}.png"

    def png(self, source: Path) -> bytes:
        """The thumbnail of `source` (a resolved, checked file): from the cache, or decoded once and stored."""
        path = self.path_of(source)
        if (hit := self._read(path)) is not None:
            return hit
        with _stripes[hash(path.name) % len(_stripes)]:  # a concurrent request for it waits, then reads
            if (hit := self._read(path)) is not None:
                return hit
            data = decode(source)
            try:
                atomic_write(path, lambda p: p.write_bytes(data))
            except OSError:
                return data  # a full or read-only disk: still served, just not kept
        self._account(len(data))
        return data

    def _read(self, path: Path) -> bytes | None:
        try:
            data = path.read_bytes()
            os.utime(path)  # recently used: evicted last
        except OSError:
            return None
        return data

    def _account(self, added: int) -> None:
        with self._lock:
            if self._bytes is None:
                self._bytes = sum(size for _, size, _ in self._files())
            else:
                self._bytes += added
            if self._bytes > self.max_bytes:
                self._bytes = self._evict(int(self.max_bytes * 0.8))

    def _files(self) -> list[tuple[float, int, Path]]:
        found = []
        for sub in self.root.glob("??"):
            for entry in os.scandir(sub):
                if entry.name.endswith(".png"):
                    try:
                        st = entry.stat()
                    except OSError:
                        continue
                    found.append((st.st_mtime, st.st_size, Path(entry.path)))
        return found

    def _evict(self, target: int) -> int:
        """Delete the least recently used thumbnails until the folder holds at most `target` bytes."""
        files = sorted(self._files(), key=lambda f: f[0])
        total = sum(size for _, size, _ in files)
        for _, size, path in files:
            if total <= target:
                break
            path.unlink(missing_ok=True)
            total -= size
        return total

    def size(self) -> int:
        return sum(size for _, size, _ in self._files())


_caches: dict[Path, ThumbnailCache] = {}
_caches_lock = threading.Lock()


def cache_for(root: Path) -> ThumbnailCache:
    """One cache object per folder and process (it keeps the folder's running size)."""
    with _caches_lock:
        if root not in _caches:
            _caches[root] = ThumbnailCache(root)
        return _caches[root]
