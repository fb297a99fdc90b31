"""The embedding explorer: 2-D layout, nearest neighbours (stored point or uploaded image), thumbnails, exports, page.

Thin routes over app.explorer.embeddings (the job's projection.npz and its neighbour index, cached
per job) and, for uploads only, trainer.inference (imported lazily: it loads torch).
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from collections.abc import Callable
from typing import Annotated, Any, Literal

import anyio
import numpy as np
from fastapi import APIRouter, File, HTTPException, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import Response
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field

from app.api.deps import EngineDep, JobId, SettingsDep, job_or_404
from app.api.schemas import ErrorOut
from app.config import Settings
from app.datasets import DatasetError
from app.distance import Space
from app.explorer import embeddings as stored
from app.explorer import layout, thumbnails
from app.explorer.layout import SPLITS
from app.files import thumbnail_cache_dir

router = APIRouter(tags=["embeddings"])

MAX_K = 1000
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 25_000_000
K = Annotated[int, Query(ge=1, le=MAX_K, description="How many neighbours (the query itself is left out)")]
PointIndex = Annotated[
    int, Query(ge=0, le=2**31 - 1, description="Index of a point of the explorer: a job's dataset index, a collection's id or row")
]
ImageIndex = Annotated[int, PathParam(ge=0, le=2**31 - 1, description="Dataset index of the image (app.datasets numbering)")]
ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}, 422: {"model": ErrorOut}}


# -- response models ---------------------------------------------------------

Split = Literal["val", "train"]


class Point(BaseModel):
    index: int = Field(description="Dataset index of the image")
    x: float
    y: float
    label: int
    class_name: str
    split: Split


class EmbeddingPoints(BaseModel):
    points: list[Point]


class EmbeddingColumns(BaseModel):
    """The same points as parallel arrays (what the page loads: ~4x smaller for 50,000 points)."""

    index: list[int]
    x: list[float]
    y: list[float]
    label: list[int]
    split: list[int] = Field(description="Position in `splits`")
    nn_same_label: list[int] = Field(description="1 when the point's nearest neighbour (same split, full space) has its label")
    splits: list[str]
    class_names: list[str] = Field(description="Name of each label")


class ClassQuality(BaseModel):
    label: int
    class_name: str
    count: int
    precision_at_1: float | None
    r_precision: float | None
    mean_average_precision_at_r: float | None


class Preservation(BaseModel):
    knn_recall_at_10: float = Field(
        description="Mean share of each point's 10 nearest neighbours (full space) kept among its 10 nearest in 2-D"
    )
    trustworthiness_at_10: float = Field(description="sklearn.manifold.trustworthiness on a sample of up to 2,000 points")


class IndexInfo(BaseModel):
    kind: Literal["exact", "hnsw"]
    recall_at_10: float | None = Field(description="HNSW only: recall@10 against the exact search, measured at build")


class LayoutSummary(BaseModel):
    points: int
    splits: dict[str, int]
    fitted_points: int = Field(description="Points UMAP was fitted on; the others were placed with UMAP's transform")
    space: Space = Field(description="Distance of neighbours and of the layout: cosine distance (1 - cos) or L2")
    umap: dict[str, Any]
    preservation: Preservation
    per_class: list[ClassQuality] = Field(description="Validation split, each image querying the others")
    index: IndexInfo
    seconds: dict[str, float]


class EmbeddingSummary(LayoutSummary):
    job_id: int


class QueryOut(BaseModel):
    index: int | None = Field(description="Dataset index; null for an uploaded image")
    label: int | None
    class_name: str | None
    split: Literal["val", "train", "upload"]
    x: float
    y: float
    image_url: str | None


class NeighborOut(BaseModel):
    index: int
    label: int
    class_name: str
    split: Split
    distance: float
    same_label: bool | None = Field(description="Whether the label equals the query's; null for an upload")
    x: float
    y: float
    image_url: str


class NeighborsOut(BaseModel):
    query: QueryOut
    neighbors: list[NeighborOut] = Field(description="Nearest first, in the full embedding space")
    space: Space


# -- helpers -----------------------------------------------------------------


def job_base(job_id: int) -> str:
    """Where a job's explorer routes live (a collection's: app/api/collections.py)."""
    return f"/api/jobs/{job_id}"


def image_url(base: str, index: int) -> str:
    return f"{base}/images/{index}"


def _embedding(engine: Any, settings: Settings, job_id: int, *, indexed: bool = False) -> stored.JobEmbedding:
    """The job's explorer data (`indexed`: with its neighbour index, for a route that searches); 404 or 409 saying why not."""
    job = job_or_404(engine, job_id)
    try:
        return stored.job_embedding(settings.job_dir(job_id), indexed=indexed)
    except stored.NoProjection:
        if not job.spec.get("explorer", True):
            reason = f"job {job_id} was run with explorer: false, so it has no layout to explore (its embeddings are in its downloads)"
        elif not job.ended:
            reason = f"job {job_id} has no embeddings yet: it is {job.status}; the explorer's data is written when it finishes"
        else:
            reason = (
                f"job {job_id} was cancelled before its first evaluation, so it has no embeddings; submit it again to explore it"
                if job.status == "cancelled"
                else f"job {job_id} has no embeddings ({job.status}); only jobs that finished training have them"
            )
        raise HTTPException(404, reason) from None
    except stored.CorruptProjection as e:
        raise HTTPException(
            409,
            f"job {job_id}'s {e}: the explorer's file is damaged; run the job again (Clone on its page) "
            f"to write a new one (its embeddings download is a separate file)",
        ) from None


def _neighbors(base: str, data: stored.JobEmbedding, rows: np.ndarray, dist: np.ndarray, query_label: int | None) -> list[NeighborOut]:
    out = []
    for r, d in zip(rows.tolist(), dist.tolist()):
        label = int(data.labels[r])
        index = int(data.indices[r])
        out.append(
            NeighborOut(
                index=index,
                label=label,
                class_name=data.class_name(label),
                split=data.split_name(r),
                distance=d,
                same_label=None if query_label is None else label == query_label,
                x=float(data.xy[r, 0]),
                y=float(data.xy[r, 1]),
                image_url=image_url(base, index),
            )
        )
    return out


# -- API ---------------------------------------------------------------------


@router.get("/api/jobs/{job_id}/embedding", response_model=EmbeddingPoints | EmbeddingColumns, responses=ERRORS)
def get_embedding(
    job_id: JobId,
    engine: EngineDep,
    settings: SettingsDep,
    format: Annotated[Literal["points", "columns"], Query(description="`columns`: parallel arrays, compact for large sets")] = "points",
) -> Response:
    """Every point of the 2-D layout: the validation split and a sample of training images."""
    return points_response(_embedding(engine, settings, job_id), format)


def points_response(data: stored.JobEmbedding, format: Literal["points", "columns"]) -> Response:
    """The layout's points as JSON objects or parallel arrays (a job's or a collection's)."""
    x = np.round(data.xy[:, 0].astype(np.float64), 4).tolist()
    y = np.round(data.xy[:, 1].astype(np.float64), 4).tolist()
    if format == "columns":
        body: dict[str, Any] = {
            "index": data.indices.tolist(),
            "x": x,
            "y": y,
            "label": data.labels.tolist(),
            "split": data.split.astype(int).tolist(),
            "nn_same_label": data.nn_same_label.astype(int).tolist(),
            "splits": list(SPLITS),
            "class_names": data.class_names,
        }
    else:
        names, splits = data.class_names, SPLITS
        body = {
            "points": [
                {"index": i, "x": px, "y": py, "label": lab, "class_name": names[lab] if lab < len(names) else str(lab), "split": splits[s]}
                for i, px, py, lab, s in zip(data.indices.tolist(), x, y, data.labels.tolist(), data.split.tolist())
            ]
        }
    # Built by hand: validating 50,000 points through pydantic would cost more than the search.
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


@router.get("/api/jobs/{job_id}/embedding/summary", response_model=EmbeddingSummary, responses=ERRORS)
def get_embedding_summary(job_id: JobId, engine: EngineDep, settings: SettingsDep) -> EmbeddingSummary:
    """Layout settings, neighbour preservation, per-class retrieval quality (validation split) and the index kind."""
    return EmbeddingSummary(job_id=job_id, **layout_summary(_embedding(engine, settings, job_id, indexed=True)))


def layout_summary(data: stored.JobEmbedding) -> dict[str, Any]:
    """The summary's fields common to a job and a collection."""
    m = data.meta
    per_class = [ClassQuality(**c, class_name=data.class_name(c["label"])) for c in m["per_class"]]
    index = IndexInfo(kind="exact" if data.index.exact else "hnsw", recall_at_10=data.index.recall_at_10)
    return {
        "points": len(data),
        "splits": m["splits"],
        "fitted_points": m["fitted_points"],
        "space": m["space"],
        "umap": m["umap"],
        "preservation": Preservation(**m["preservation"]),
        "per_class": per_class,
        "index": index,
        "seconds": m.get("seconds", {}),
    }


@router.get("/api/jobs/{job_id}/neighbors", response_model=NeighborsOut, responses=ERRORS)
def get_neighbors(
    job_id: JobId,
    engine: EngineDep,
    settings: SettingsDep,
    index: PointIndex,
    k: K = 10,
) -> NeighborsOut:
    """The k nearest points of a shown point in the full embedding space (not the 2-D layout), nearest first."""
    data = _embedding(engine, settings, job_id, indexed=True)
    what = f"job {job_id}'s {len(data)} explorer points (its validation split and a training sample)"
    return neighbors_of_index(data, job_base(job_id), index, k, what)


def neighbors_of_index(data: stored.JobEmbedding, base: str, index: int, k: int, what: str) -> NeighborsOut:
    """The k nearest points of the point with index `index`; a 404 saying it is not among `what`."""
    row = data.row_of(index)
    if row is None:
        raise HTTPException(404, f"image {index} is not among {what}")
    rows, dist = data.neighbors(row, k)
    label = int(data.labels[row])
    query = QueryOut(
        index=index,
        label=label,
        class_name=data.class_name(label),
        split=data.split_name(row),
        x=float(data.xy[row, 0]),
        y=float(data.xy[row, 1]),
        image_url=image_url(base, index),
    )
    return NeighborsOut(query=query, neighbors=_neighbors(base, data, rows, dist, label), space=data.meta["space"])


DISTANCES_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "float32 little-endian, one a point, in the order of the columns"},
    **ERRORS,
}


@router.get("/api/jobs/{job_id}/embedding/distances", response_class=Response, responses=DISTANCES_RESPONSES)
def get_distances(
    job_id: JobId,
    engine: EngineDep,
    settings: SettingsDep,
    index: PointIndex,
) -> Response:
    """Every point's distance to one point in the full embedding space (the page colours by it), 4 bytes a point."""
    data = _embedding(engine, settings, job_id)
    return distances_response(data, index, f"job {job_id}'s {len(data)} explorer points")


def distances_response(data: stored.JobEmbedding, index: int, what: str) -> Response:
    row = data.row_of(index)
    if row is None:
        raise HTTPException(404, f"image {index} is not among {what}")
    body = data.distances_to(data.embeddings[row]).astype("<f4").tobytes()
    return Response(body, media_type="application/octet-stream", headers={"X-Content-Type-Options": "nosniff"})


def _read_upload(file: UploadFile) -> bytes:
    blob = file.file.read(MAX_UPLOAD_BYTES + 1)
    if len(blob) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"the upload is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
    try:
        with Image.open(io.BytesIO(blob)) as im:
            width, height = im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise HTTPException(415, "the upload is not an image (PNG, JPEG, GIF, BMP, WebP or TIFF)") from None
    if width * height > MAX_UPLOAD_PIXELS:
        raise HTTPException(413, f"the image is {width}x{height} pixels; the limit is {MAX_UPLOAD_PIXELS:,} pixels")
    return blob


# What torch.load (weights_only), the stored spec's validation and load_state_dict raise for a damaged checkpoint.
CHECKPOINT_ERRORS = (
    RuntimeError,
    pickle.UnpicklingError,
    EOFError,
    OSError,
    KeyError,
    ValueError,
    TypeError,
    StopIteration,
    zipfile.BadZipFile,
)

# 400: a body that is not well-formed multipart (refused by Starlette's parser before the route runs).
UPLOAD_ERRORS = {**ERRORS, **{code: {"model": ErrorOut} for code in (400, 409, 413, 415)}}


@router.post("/api/jobs/{job_id}/neighbors", response_model=NeighborsOut, responses=UPLOAD_ERRORS)
def query_neighbors(
    job_id: JobId,
    engine: EngineDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="An image; preprocessed as the job's training images")],
    k: K = 10,
) -> NeighborsOut:
    """Embed an uploaded image with the job's checkpoint, return its k nearest points and its place on the layout (UMAP's transform)."""
    data = _embedding(engine, settings, job_id, indexed=True)
    vector = _embed_upload(settings, job_id, data, file)
    rows, dist = data.neighbors(vector[None], k)
    state, fit_X, fit_xy = data.layout
    x, y = layout.place(state, fit_X, fit_xy, vector[None], settings.home_path)[0].tolist()
    query = QueryOut(index=None, label=None, class_name=None, split="upload", x=x, y=y, image_url=None)
    return NeighborsOut(query=query, neighbors=_neighbors(job_base(job_id), data, rows, dist, None), space=data.meta["space"])


@router.post("/api/jobs/{job_id}/embedding/distances", response_class=Response, responses={**DISTANCES_RESPONSES, **UPLOAD_ERRORS})
def upload_distances(
    job_id: JobId,
    engine: EngineDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="An image; preprocessed as the job's training images")],
) -> Response:
    """Every point's distance to an uploaded image embedded with the job's checkpoint (the page colours by it), 4 bytes a point."""
    data = _embedding(engine, settings, job_id)
    body = data.distances_to(_embed_upload(settings, job_id, data, file)).astype("<f4").tobytes()
    return Response(body, media_type="application/octet-stream", headers={"X-Content-Type-Options": "nosniff"})


def _embed_upload(settings: Settings, job_id: int, data: stored.JobEmbedding, file: UploadFile) -> np.ndarray:
    """The uploaded image's embedding by the job's best checkpoint; each way it can fail is a 4xx saying which."""
    blob = _read_upload(file)
    from trainer import inference  # torch, only for uploads
    from trainer.errors import JobFailed

    try:
        inference.load_model(settings.job_dir(job_id), settings)  # kept in memory: embed_image below reuses it
    except inference.NoCheckpoint:
        raise HTTPException(404, f"job {job_id} has no checkpoint") from None
    except JobFailed as e:  # the net cannot be built here (ImageNet weights are not needed: the checkpoint has all)
        raise HTTPException(409, f"cannot rebuild job {job_id}'s network here: {e}") from None
    except CHECKPOINT_ERRORS as e:  # truncated, overwritten, or from another network
        name = inference.checkpoint_name(settings.job_dir(job_id))
        raise HTTPException(
            409,
            f"job {job_id}'s {name} cannot be read ({type(e).__name__}: {str(e)[:200]}): the file is "
            f"damaged; run the job again (Clone on its page) to train a new checkpoint",
        ) from None
    try:
        vector = inference.embed_image(settings.job_dir(job_id), settings, io.BytesIO(blob))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise HTTPException(415, "the upload could not be decoded as an image") from None
    if vector.shape[0] != data.embeddings.shape[1]:
        raise HTTPException(409, f"job {job_id}'s checkpoint does not match its stored embeddings")
    return vector


# Thumbnail requests wait here, not in the threadpool the other routes share (a page of 8k x 8k images
# must not hold every thread while app.explorer.thumbnails lets two of them decode at a time).
THUMBNAIL_THREADS = anyio.CapacityLimiter(8)


@router.get(
    "/api/jobs/{job_id}/images/{index}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "PNG thumbnail"}, **ERRORS},
)
async def get_image(job_id: JobId, index: ImageIndex, engine: EngineDep, settings: SettingsDep) -> Response:
    """A thumbnail of image `index` of the job's dataset (bundled images at native size); never any other file."""

    def thumbnail() -> bytes:
        job = job_or_404(engine, job_id)
        try:
            return stored.thumbnail_png(
                job.spec, settings.data_root_paths, index, thumbnails.cache_for(thumbnail_cache_dir(settings.home_path))
            )
        except stored.ImageNotServed as e:
            raise HTTPException(404, str(e)) from None
        except DatasetError as e:
            raise HTTPException(404, f"job {job_id}'s dataset cannot be read: {e.reason}") from None

    return await png_response(thumbnail)


async def png_response(thumbnail: Callable[[], bytes]) -> Response:
    """A thumbnail made in THUMBNAIL_THREADS, served as an inline PNG that is never sniffed."""
    png = await anyio.to_thread.run_sync(thumbnail, limiter=THUMBNAIL_THREADS)
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600", "Content-Disposition": "inline"}
    return Response(png, media_type="image/png", headers=headers)


EXPORTS = {
    "npy": ("application/octet-stream", "embeddings.npy"),
    "csv": ("text/csv; charset=utf-8", "embeddings.csv"),
    "projector": ("application/zip", "projector.zip"),
}


@router.get(
    "/api/jobs/{job_id}/embedding/export",
    response_class=Response,
    responses={
        200: {
            "content": {t: {} for t, _ in EXPORTS.values()},
            "description": "npy: float32 (N, D) in the order of /embedding; "
            "csv: index, label, class_name, split, x, y, e0...; projector: TensorBoard projector files (zip)",
        },
        **ERRORS,
    },
)
def export_embedding(
    job_id: JobId, engine: EngineDep, settings: SettingsDep, format: Annotated[Literal["npy", "csv", "projector"], Query()] = "npy"
) -> Response:
    """The explorer's points with their full embeddings: NumPy, CSV, or TensorBoard's projector format."""
    data = _embedding(engine, settings, job_id)
    spec, roots = job_or_404(engine, job_id).spec, settings.data_root_paths
    return export_response(
        data, format, f"job{job_id}", lambda: stored.export_projector(data, lambda i: stored.dataset_image(spec, roots, i))
    )


def export_response(data: stored.JobEmbedding, format: str, prefix: str, projector: Callable[[], bytes]) -> Response:
    media_type, filename = EXPORTS[format]
    if format == "npy":
        body = stored.export_npy(data)
    elif format == "csv":
        body = stored.export_csv(data)
    else:
        body = projector()
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{prefix}-{filename}"', "X-Content-Type-Options": "nosniff"},
    )
