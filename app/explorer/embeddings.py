"""A finished job's explorer in the API process: its points, the neighbour index, thumbnails, exports.

The worker writes everything into projection.npz (trainer/project.py). Here it is read
with allow_pickle=False and kept per job in a small LRU cache keyed by the file's
modification time, so a job that ran again is read again. Its neighbour index is built (or
read from the saved file) on the first request that searches, once, and kept with it: a
thumbnail, the columns or an export never wait for it (minutes past a million points).
Torch-free.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from PIL import Image

from app.datasets import BUNDLED, bundled_arrays, load_catalog
from app.explorer import thumbnails
from app.explorer.layout import SPLITS, LayoutState
from app.explorer.neighbors import NeighborIndex, prepare
from app.files import PROJECTION_FILE

# One query per request: faiss's OpenMP threads only contend with each other and with the
# server's other requests (a 100,000-point scan took 3x longer with 2 threads on a busy 2-core box).
faiss.omp_set_num_threads(1)
MAX_CACHED_JOBS = 4
SPRITE_MAX = 8192  # TensorBoard's projector reads sprites up to 8192 x 8192
SPRITE_CELL = 64


class NoProjection(LookupError):
    """The job has no projection.npz (not finished, failed, or older than the explorer)."""


class CorruptProjection(ValueError):
    """projection.npz exists but cannot be read (a truncated or overwritten file): only a new run rewrites it."""


# What a damaged file raises while it is read or indexed (faiss: RuntimeError).
READ_ERRORS = (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile, RuntimeError)
PROJECTION_ARRAYS = ("embeddings", "labels", "indices", "split", "xy", "fitted", "nn_same_label")
PROJECTION_META = {"space", "class_names", "layout", "per_class", "splits", "fitted_points", "umap", "preservation"}


class ImageNotServed(LookupError):
    """An image index that names no image of the job's dataset (or a file that left it)."""


@dataclass
class JobEmbedding:
    embeddings: np.ndarray  # float32 (N, D): validation split first, then the training sample
    labels: np.ndarray  # int64 (N,)
    indices: np.ndarray  # int64 (N,): dataset index of each point
    split: np.ndarray  # int8 (N,): position in SPLITS
    xy: np.ndarray  # float32 (N, 2)
    fitted: np.ndarray  # bool (N,): the points UMAP was fitted on
    nn_same_label: np.ndarray  # bool (N,): nearest other point of the same split has the same label
    meta: dict[str, Any]
    ap: np.ndarray | None = None  # float32 (N,): AP@R of each scored point (NaN: not scored); None in files from before it
    source: Path | None = None  # the projection file read: a saved neighbour index may lie beside it
    _index: NeighborIndex | None = field(default=None, init=False, repr=False)
    _index_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def ap_column(self) -> np.ndarray:
        return self.ap if self.ap is not None else np.full(len(self), np.nan, dtype=np.float32)

    @cached_property
    def vectors(self) -> np.ndarray:
        """The embeddings prepared for the job's space (see `prepare`); the neighbour index searches these same vectors."""
        return prepare(self.embeddings, self.meta["space"])

    @property
    def index(self) -> NeighborIndex:
        """The neighbour index: the saved one beside the file, else built, on first use and once (concurrent callers wait).

        A failure is a CorruptProjection, as when the file is read; nothing is kept, so the next use tries again.
        """
        if self._index is None:
            with self._index_lock:
                if self._index is None:
                    self._index = self._load_index()
        return self._index

    def _load_index(self) -> NeighborIndex:
        space = self.meta["space"]
        try:
            saved = NeighborIndex.saved(self.source.parent, self.vectors, space, prepared=True) if self.source else None
            return saved or NeighborIndex.build(self.vectors, space, prepared=True)
        except READ_ERRORS as e:
            name = self.source.name if self.source else "the embeddings"
            raise CorruptProjection(f"{name} cannot be indexed ({type(e).__name__}: {e})") from None

    def distances_to(self, vector: np.ndarray) -> np.ndarray:
        """Every point's distance to `vector` in the job's space, in row order (a scan: ~30 ms at 1,000,000 x 128; no index)."""
        space = self.meta["space"]
        q = prepare(np.atleast_2d(vector), space)[0]
        v = self.vectors
        if space == "cosine":
            return np.clip(1.0 - v @ q, 0.0, 2.0).astype(np.float32)
        return np.sqrt(np.maximum(np.einsum("ij,ij->i", v, v) - 2 * (v @ q) + q @ q, 0.0)).astype(np.float32)

    @classmethod
    def read(cls, path: Path) -> JobEmbedding:
        """The file's arrays, checked for the shapes every route relies on; a damaged file is a CorruptProjection."""
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(str(arrays.pop("meta")))
            missing = sorted({*PROJECTION_ARRAYS} - set(arrays)) + sorted(PROJECTION_META - set(meta))
            if missing:
                raise ValueError(f"{', '.join(missing)} missing")
            n = len(arrays["labels"])
            if arrays["embeddings"].ndim != 2 or arrays["xy"].shape != (n, 2) or any(len(arrays[k]) != n for k in PROJECTION_ARRAYS):
                raise ValueError("its arrays disagree in length")
            LayoutState.from_json(meta["layout"])  # a damaged layout state fails here, not at the first upload
            ap = arrays.get("ap")
            if ap is not None and ap.shape != (n,):
                raise ValueError("its arrays disagree in length")
            return cls(**{k: arrays[k] for k in PROJECTION_ARRAYS}, meta=meta, ap=ap, source=path)
        except READ_ERRORS as e:
            raise CorruptProjection(f"{path.name} cannot be read ({type(e).__name__}: {e})") from None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def class_names(self) -> list[str]:
        return self.meta["class_names"]

    def class_name(self, label: int) -> str:
        names = self.class_names
        return names[label] if 0 <= label < len(names) else str(label)

    @cached_property
    def _by_index(self) -> np.ndarray:
        return np.argsort(self.indices, kind="stable")

    def row_of(self, dataset_index: int) -> int | None:
        """The point showing dataset image `dataset_index`, if the explorer shows it."""
        order = self._by_index
        pos = int(np.searchsorted(self.indices, dataset_index, sorter=order))
        if pos < len(order) and self.indices[order[pos]] == dataset_index:
            return int(order[pos])
        return None

    @cached_property
    def one_split(self) -> bool:
        """All points in one split (a collection's): nn_same_label then looks among all points."""
        return bool((self.split == self.split[0]).all()) if len(self) else True

    def split_name(self, row: int) -> str:
        return SPLITS[int(self.split[row])]

    @cached_property
    def layout(self) -> tuple[LayoutState, np.ndarray, np.ndarray]:
        """What UMAP's transform needs: the layout state, the fitted points' embeddings and their 2-D positions."""
        return LayoutState.from_json(self.meta["layout"]), self.embeddings[self.fitted], self.xy[self.fitted]

    def neighbors(self, query: np.ndarray | int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and distances of the k nearest points: of a stored row (itself left out) or of a vector."""
        if isinstance(query, (int, np.integer)):
            return self.index.neighbors_of_row(int(query), k)
        rows, dist = self.index.search(query, k)
        keep = rows[0] >= 0
        return rows[0][keep], dist[0][keep]


_cache: OrderedDict[Path, tuple[tuple[int, int], JobEmbedding]] = OrderedDict()
_cache_lock = threading.Lock()
_build_locks: dict[Path, threading.Lock] = {}


def projection_version(job_dir: Path) -> tuple[Path, tuple[int, int]]:
    """The job's projection file and its version (modification time, size), the key of every cache over it."""
    path = job_dir / PROJECTION_FILE
    try:
        st = path.stat()
    except FileNotFoundError:
        raise NoProjection(str(path)) from None
    return path, (st.st_mtime_ns, st.st_size)


def job_embedding(job_dir: Path, *, indexed: bool = False) -> JobEmbedding:
    """The job's explorer data, read once per version of its projection file (LRU over jobs); indexed on first search.

    `indexed`: its neighbour index made ready too, so that a route which searches meets a failure where it reads the file.
    """
    data = _read(job_dir)
    if indexed:
        data.index  # noqa: B018 - built or read here, once
    return data


def _read(job_dir: Path) -> JobEmbedding:
    path, signature = projection_version(job_dir)
    with _cache_lock:
        hit = _cache.get(path)
        if hit and hit[0] == signature:
            _cache.move_to_end(path)
            return hit[1]
        build_lock = _build_locks.setdefault(path, threading.Lock())
    with build_lock:  # one build per job at a time; other requests for it wait for the result
        with _cache_lock:
            hit = _cache.get(path)
            if hit and hit[0] == signature:
                return hit[1]
        data = JobEmbedding.read(path)
        with _cache_lock:
            _cache[path] = (signature, data)
            _cache.move_to_end(path)
            while len(_cache) > MAX_CACHED_JOBS:
                _cache.popitem(last=False)
        return data


# -- thumbnails --------------------------------------------------------------


@lru_cache(maxsize=2)
def _bundled_images(name: str) -> np.ndarray:
    return bundled_arrays(name)[1]


def _source(spec: dict[str, Any], roots: list[Path], index: int) -> np.ndarray | Path:
    """Image `index` of the job's dataset, and nothing else: a bundled image's pixels, or a checked file.

    The index is looked up in the job's catalog (the dataset folder itself re-checked to
    lie inside the allowed roots); for an image folder the file is resolved again (symlinks
    followed) and must still be a file inside the dataset folder.
    """
    catalog = load_catalog(spec["dataset"], spec.get("dataset_path"), roots)
    if not 0 <= index < catalog.num_images:
        raise ImageNotServed(
            f"image {index} does not exist: dataset {spec['dataset']!r} has {catalog.num_images} images (0-{catalog.num_images - 1})"
        )
    if catalog.name in BUNDLED:
        return _bundled_images(catalog.name)[index]
    assert catalog.root is not None
    return checked_file(catalog.root, catalog.files[index], index)


def checked_file(root: Path, file: Path, index: int) -> Path:
    """`file` resolved again (symlinks followed): still a file inside the folder `root`, or ImageNotServed."""
    try:
        real = file.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ImageNotServed(f"image {index} is no longer in the image folder") from None
    if root not in real.parents or not real.is_file():
        raise ImageNotServed(f"image {index} does not resolve to a file inside the image folder")
    return real


def thumbnail_png(spec: dict[str, Any], roots: list[Path], index: int, cache: thumbnails.ThumbnailCache | None) -> bytes:
    """PNG of image `index`: bundled images at their native 8 or 28 px, files as a thumbnail (through `cache` when given)."""
    source = _source(spec, roots, index)
    if isinstance(source, np.ndarray):
        return png_bytes(Image.fromarray(source, "L"))
    return file_png(source, index, cache)


def file_png(source: Path, index: int, cache: thumbnails.ThumbnailCache | None) -> bytes:
    """A checked image file's thumbnail (through `cache` when given)."""
    try:
        return cache.png(source) if cache else thumbnails.decode(source)
    except thumbnails.TooLarge as e:
        raise ImageNotServed(f"image {index} is too large to show ({e})") from None
    except (OSError, ValueError, Image.DecompressionBombError):
        raise ImageNotServed(f"image {index} cannot be decoded") from None


def dataset_image(spec: dict[str, Any], roots: list[Path], index: int) -> Image.Image:
    """Image `index` as the thumbnail the explorer shows (for the exports' sprite)."""
    return png_image(thumbnail_png(spec, roots, index, None))


def png_image(png: bytes) -> Image.Image:
    with Image.open(io.BytesIO(png)) as im:
        return im.convert("RGB") if im.mode not in ("L", "RGB") else im.copy()


def png_bytes(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, format="PNG")
    return out.getvalue()


# -- exports -----------------------------------------------------------------


def export_npy(data: JobEmbedding, rows: np.ndarray | None = None) -> bytes:
    """float32 (N, D): every point's embedding, or those of `rows` in their order."""
    out = io.BytesIO()
    np.save(out, (data.embeddings if rows is None else data.embeddings[rows]).astype(np.float32, copy=False), allow_pickle=False)
    return out.getvalue()


def _spreadsheet_safe(text: str) -> str:
    """A class name a spreadsheet would read as a formula is prefixed with a quote."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_csv(data: JobEmbedding) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    dims = data.embeddings.shape[1]
    w.writerow(["index", "label", "class_name", "split", "x", "y", *(f"e{i}" for i in range(dims))])
    for r in range(len(data)):
        label = int(data.labels[r])
        w.writerow(
            [
                int(data.indices[r]),
                label,
                _spreadsheet_safe(data.class_name(label)),
                data.split_name(r),
                f"{data.xy[r, 0]:.6g}",
                f"{data.xy[r, 1]:.6g}",
                *(f"{v:.7g}" for v in data.embeddings[r]),
            ]
        )
    return out.getvalue().encode()


def _tsv_field(text: str) -> str:
    return " ".join(text.replace("\t", " ").replace("\r", " ").replace("\n", " ").split()) or "_"


def sprite(data: JobEmbedding, image_of: Callable[[int], Image.Image]) -> tuple[Image.Image, int]:
    """All points' images in one grid, row-major in point order (TensorBoard's sprite); and the cell size."""
    per_row = int(np.ceil(np.sqrt(len(data))))
    cell = max(1, min(SPRITE_CELL, SPRITE_MAX // per_row))
    sheet = Image.new("RGB", (per_row * cell, per_row * cell))
    for r, index in enumerate(data.indices):
        try:
            im = image_of(int(index))
        except ImageNotServed:
            continue  # left black
        im = im.convert("RGB").resize((cell, cell), Image.NEAREST if max(im.size) < cell else Image.BILINEAR)
        sheet.paste(im, ((r % per_row) * cell, (r // per_row) * cell))
    return sheet, cell


def export_projector(data: JobEmbedding, image_of: Callable[[int], Image.Image] | None) -> bytes:
    """TensorBoard projector files in a zip: embeddings.tsv, metadata.tsv, and with images (`image_of(index)`, which
    raises ImageNotServed for a missing one) sprite.png; projector_config.pbtxt."""
    emb = io.StringIO()
    np.savetxt(emb, data.embeddings, delimiter="\t", fmt="%.7g")
    meta = ["index\tlabel\tclass\tsplit"]
    meta += [
        f"{int(data.indices[r])}\t{int(data.labels[r])}\t{_tsv_field(data.class_name(int(data.labels[r])))}\t{data.split_name(r)}"
        for r in range(len(data))
    ]
    config = 'embeddings {\n  tensor_path: "embeddings.tsv"\n  metadata_path: "metadata.tsv"\n'
    sheet = None
    if image_of is not None:
        sheet, cell = sprite(data, image_of)
        config += f'  sprite {{\n    image_path: "sprite.png"\n    single_image_dim: {cell}\n    single_image_dim: {cell}\n  }}\n'
    config += "}\n"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("embeddings.tsv", emb.getvalue())
        z.writestr("metadata.tsv", "\n".join(meta) + "\n")
        if sheet is not None:
            z.writestr("sprite.png", png_bytes(sheet))
        z.writestr("projector_config.pbtxt", config)
    return out.getvalue()
