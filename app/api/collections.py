"""Collections: embeddings brought from elsewhere, imported, laid out and explored like a job's.

POST /api/collections takes the files as an upload or as paths inside the data roots; app.explorer.imports
checks them (every refusal a 422 naming the field, the file, the row and the reason), app.explorer.collections
stores them and lays them out in a child process. The explorer's routes under /api/collections/{id}/ are the
job's (app.api.embeddings, app.api.selection) over the collection's projection.npz.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from starlette.responses import JSONResponse

from app.api.deps import EngineDep, IdentityDep, SettingsDep, may_change
from app.api.embeddings import (
    DISTANCES_RESPONSES,
    ERRORS,
    EmbeddingPoints,
    ImageIndex,
    K,
    LayoutSummary,
    NeighborsOut,
    PointIndex,
    distances_response,
    export_response,
    layout_summary,
    neighbors_of_index,
    png_response,
    points_response,
)
from app.api.errors import field_error
from app.api.schemas import BODY_ERRORS
from app.api.selection import (
    COLUMNS_RESPONSES,
    SELECTION_RESPONSES,
    SelectionFormat,
    SelectionIn,
    SelectionOut,
    columns_response,
    selection_response,
)
from app.config import Settings
from app.explorer import collections as files
from app.explorer import embeddings as stored
from app.explorer import imports, thumbnails
from app.files import PROJECTION_FILE, collection_dir, thumbnail_cache_dir
from app.store import collections as store
from app.store.rows import CollectionRow

router = APIRouter(tags=["collections"])

CollectionId = Annotated[int, PathParam(ge=1, le=2**31 - 1, description="Collection id")]
MAX_IMPORT_BYTES = imports.MAX_FILE_BYTES * 2 + 1024 * 1024  # embeddings and labels, + the multipart framing
MAX_NAME = 200


class CollectionOut(BaseModel):
    id: int
    name: str
    owner: str
    status: Literal["laying out", "ready", "failed"]
    phase: str | None = Field(description="While laying out: what it is doing")
    points: int
    dims: int
    classes: int = Field(description="0 when imported without labels")
    space: Literal["cosine", "euclidean"]
    images: bool = Field(description="Whether an image folder gives each point a thumbnail")
    source: dict[str, Any] = Field(description="The files it was imported from")
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    explore_url: str


class CollectionList(BaseModel):
    collections: list[CollectionOut]
    total: int


class CollectionSummary(LayoutSummary):
    collection_id: int
    per_class_points: int = Field(description="Per-class metrics are over a seeded sample of this many points, each querying the others")


def base_of(collection_id: int) -> str:
    return f"/api/collections/{collection_id}"


def out(row: CollectionRow, settings: Settings) -> CollectionOut:
    phase = files.progress(collection_dir(settings.home_path, row.id)) if row.status == "laying out" else None
    return CollectionOut(
        **{k: v for k, v in row.as_dict().items() if k != "images"},
        phase=phase,
        images=row.images is not None,
        explore_url=f"/collections/{row.id}/explore",
    )


def collection_or_404(engine: Engine, collection_id: int) -> CollectionRow:
    row = store.get(engine, collection_id)
    if row is None:
        raise HTTPException(404, f"collection {collection_id} does not exist")
    return row


def _embedding(engine: Engine, settings: Settings, collection_id: int, *, indexed: bool = False) -> stored.JobEmbedding:
    """The collection's explorer data (`indexed`: with its neighbour index, for a route that searches); 404 or 409 saying why not."""
    row = collection_or_404(engine, collection_id)
    folder = collection_dir(settings.home_path, collection_id)
    if row.status == "laying out":
        phase = files.progress(folder) or "starting"
        raise HTTPException(409, f"collection {collection_id} is still being laid out ({phase}); its explorer opens when that ends")
    if row.status == "failed":
        raise HTTPException(409, f"collection {collection_id} could not be laid out: {row.error}; delete it and import it again")
    try:
        return stored.job_embedding(folder, indexed=indexed)
    except stored.NoProjection:
        raise HTTPException(409, f"collection {collection_id}'s files are gone from {folder}; delete it and import it again") from None
    except stored.CorruptProjection as e:
        raise HTTPException(409, f"collection {collection_id}'s {e}; delete it and import it again") from None


def resume(engine: Engine, settings: Settings) -> None:
    """Restart the layouts a stopped server left unfinished."""
    for collection_id in store.laying_out(engine):
        row = store.get(engine, collection_id)
        folder = collection_dir(settings.home_path, collection_id)
        if row is None:
            continue
        if (folder / PROJECTION_FILE).exists() and not (folder / files.SOURCE_FILE).exists():
            store.finish(engine, collection_id, "ready")  # the layout ended as the server stopped
            continue
        if not (folder / files.SOURCE_FILE).exists():
            store.finish(engine, collection_id, "failed", f"its files are gone from {folder}")
            continue
        _start(engine, settings, row)


def _start(engine: Engine, settings: Settings, row: CollectionRow) -> None:
    def done(collection_id: int, error: str | None) -> None:
        store.finish(engine, collection_id, "failed" if error else "ready", error)

    files.start(row.id, collection_dir(settings.home_path, row.id), row.space, settings.home_path, done)


def _input(upload: UploadFile | None, path: str | None, field_name: str, folder: Path, roots: list[Path]) -> tuple[Path, str] | None:
    """(a readable path, the name to report) of an uploaded file (copied into the stage folder) or a server path."""
    if upload is not None and path:
        raise imports.ImportRefused(field_name, upload.filename or field_name, f"give either a file or {field_name}_path, not both")
    if upload is not None:
        name = Path(upload.filename or field_name).name
        imports.check_suffix(name, imports.EMBEDDING_FORMATS if field_name == "embeddings" else imports.LABEL_FORMATS, field_name)
        target = folder / f"upload-{field_name}{Path(name).suffix.lower()}"
        with open(target, "wb") as f:
            shutil.copyfileobj(upload.file, f, 8 << 20)
        return target, name
    if path:
        real = imports.inside_roots(path, roots, f"{field_name}_path", folder=False)
        return real, path
    return None


@router.post("/api/collections", status_code=201, response_model=CollectionOut, responses={**BODY_ERRORS, 413: ERRORS[422]})
def create_collection(
    engine: EngineDep,
    settings: SettingsDep,
    identity: IdentityDep,
    embeddings: Annotated[UploadFile | None, File(description=".npy, .npz, .csv, .tsv (TensorBoard's embeddings.tsv) or .parquet")] = None,
    labels: Annotated[
        UploadFile | None, File(description="Optional: .npy/.npz, .csv/.tsv (TensorBoard's metadata.tsv) or .parquet")
    ] = None,
    embeddings_path: Annotated[str | None, Form(description="Instead of an upload: a file inside the data roots")] = None,
    labels_path: Annotated[str | None, Form(description="Instead of an upload: a labels file inside the data roots")] = None,
    images: Annotated[str | None, Form(description="An image folder inside the data roots: one image a point")] = None,
    name: Annotated[str | None, Form(max_length=MAX_NAME)] = None,
    space: Annotated[Literal["cosine", "euclidean"], Form(description="cosine: 1 - cos (CLIP, most models); euclidean: L2")] = "cosine",
) -> CollectionOut | JSONResponse:
    """Import embeddings (and labels, images) as a collection; its layout is computed after this answers (see `status`)."""
    roots = settings.data_root_paths
    stage = files.new_stage(settings.home_path)
    try:
        emb = _input(embeddings, embeddings_path, "embeddings", stage, roots)
        if emb is None:
            raise imports.ImportRefused(
                "embeddings", "", "an embeddings file is needed: upload one, or name one inside the data roots (embeddings_path)"
            )
        lab = _input(labels, labels_path, "labels", stage, roots)
        folder = imports.inside_roots(images, roots, "images", folder=True) if images else None
        imported = imports.read(emb, lab, folder)
        for p in stage.glob("upload-*"):
            p.unlink()
        files.write_source(stage, imported)
        row = store.create(
            engine,
            name=(name or "").strip() or Path(emb[1]).stem,
            owner=identity.name,
            points=len(imported),
            dims=int(imported.embeddings.shape[1]),
            classes=len(imported.class_names) if imported.labels is not None else 0,
            space=space,
            images=str(folder) if folder else None,
            source=imported.source,
        )
        try:
            files.commit(stage, settings.home_path, row.id)
        except BaseException:
            store.remove(engine, row.id)
            raise
    except imports.ImportRefused as e:
        files.discard(stage)
        return field_error(e.field, str(e))
    except BaseException:
        files.discard(stage)
        raise
    _start(engine, settings, row)
    return out(row, settings)


@router.get("/api/collections", response_model=CollectionList)
def list_collections(
    engine: EngineDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> CollectionList:
    rows, total = store.list_collections(engine, limit=limit, offset=offset)
    return CollectionList(collections=[out(r, settings) for r in rows], total=total)


@router.get("/api/collections/{collection_id}", response_model=CollectionOut, responses=ERRORS)
def get_collection(collection_id: CollectionId, engine: EngineDep, settings: SettingsDep) -> CollectionOut:
    return out(collection_or_404(engine, collection_id), settings)


@router.delete("/api/collections/{collection_id}", status_code=204, responses={**ERRORS, 403: ERRORS[404]})
def delete_collection(collection_id: CollectionId, engine: EngineDep, settings: SettingsDep, identity: IdentityDep) -> Response:
    """Delete a collection and its files (a layout still running is stopped)."""
    row = collection_or_404(engine, collection_id)
    may_change(identity, row.owner, "collection")
    files.stop(collection_id)
    store.remove(engine, collection_id)
    shutil.rmtree(collection_dir(settings.home_path, collection_id), ignore_errors=True)
    return Response(status_code=204)


# -- the explorer's routes, as a job's ---------------------------------------------


@router.get("/api/collections/{collection_id}/embedding/columns", response_class=Response, responses=COLUMNS_RESPONSES)
def get_columns(collection_id: CollectionId, engine: EngineDep, settings: SettingsDep) -> Response:
    """Every point of the layout as binary columns (the format of /api/jobs/{id}/embedding/columns)."""
    row = collection_or_404(engine, collection_id)
    if row.status != "ready":
        _embedding(engine, settings, collection_id)  # words the 409
    return columns_response(collection_dir(settings.home_path, collection_id), lambda: _embedding(engine, settings, collection_id))


@router.get("/api/collections/{collection_id}/embedding", response_model=EmbeddingPoints, responses=ERRORS)
def get_points(
    collection_id: CollectionId,
    engine: EngineDep,
    settings: SettingsDep,
    format: Annotated[Literal["points", "columns"], Query()] = "points",
) -> Response:
    """Every point of the layout as JSON."""
    return points_response(_embedding(engine, settings, collection_id), format)


@router.get("/api/collections/{collection_id}/embedding/summary", response_model=CollectionSummary, responses=ERRORS)
def get_summary(collection_id: CollectionId, engine: EngineDep, settings: SettingsDep) -> CollectionSummary:
    """Layout settings, neighbour preservation, per-class retrieval quality (on a sample) and the index kind."""
    data = _embedding(engine, settings, collection_id, indexed=True)
    return CollectionSummary(collection_id=collection_id, per_class_points=data.meta.get("per_class_points", 0), **layout_summary(data))


@router.get("/api/collections/{collection_id}/neighbors", response_model=NeighborsOut, responses=ERRORS)
def get_neighbors(
    collection_id: CollectionId,
    engine: EngineDep,
    settings: SettingsDep,
    index: PointIndex,
    k: K = 10,
) -> NeighborsOut:
    """The k nearest points of a point in the full embedding space, nearest first."""
    data = _embedding(engine, settings, collection_id, indexed=True)
    return neighbors_of_index(data, base_of(collection_id), index, k, f"collection {collection_id}'s {len(data)} points")


@router.get("/api/collections/{collection_id}/embedding/distances", response_class=Response, responses=DISTANCES_RESPONSES)
def get_distances(
    collection_id: CollectionId,
    engine: EngineDep,
    settings: SettingsDep,
    index: PointIndex,
) -> Response:
    """Every point's distance to one point in the full embedding space, 4 bytes a point (float32, the columns' order)."""
    data = _embedding(engine, settings, collection_id)
    return distances_response(data, index, f"collection {collection_id}'s {len(data)} points")


def _image_path(engine: Engine, settings: Settings, collection_id: int, data: stored.JobEmbedding, index: int) -> Path:
    row = collection_or_404(engine, collection_id)
    if row.images is None:
        raise stored.ImageNotServed(f"collection {collection_id} was imported without images")
    point = data.row_of(index)
    if point is None:
        raise stored.ImageNotServed(f"image {index} is not among collection {collection_id}'s {len(data)} points")
    root = Path(row.images)
    if not any(root == r or r in root.parents for r in settings.data_root_paths):
        raise stored.ImageNotServed(f"collection {collection_id}'s image folder is no longer inside the data roots")
    relative = files.image_file(collection_dir(settings.home_path, collection_id), point)
    assert relative is not None
    return stored.checked_file(root, root / relative, index)


@router.get(
    "/api/collections/{collection_id}/images/{index}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "PNG thumbnail"}, **ERRORS},
)
async def get_image(collection_id: CollectionId, index: ImageIndex, engine: EngineDep, settings: SettingsDep) -> Response:
    """A thumbnail of point `index`'s image (from the image folder given at import); never any other file."""

    def thumbnail() -> bytes:
        data = _embedding(engine, settings, collection_id)
        try:
            path = _image_path(engine, settings, collection_id, data, index)
            return stored.file_png(path, index, thumbnails.cache_for(thumbnail_cache_dir(settings.home_path)))
        except stored.ImageNotServed as e:
            raise HTTPException(404, str(e)) from None

    return await png_response(thumbnail)


@router.get("/api/collections/{collection_id}/embedding/export", response_class=Response, responses=ERRORS)
def export_collection(
    collection_id: CollectionId,
    engine: EngineDep,
    settings: SettingsDep,
    format: Annotated[Literal["npy", "csv", "projector"], Query()] = "npy",
) -> Response:
    """The points with their full embeddings: NumPy, CSV, or TensorBoard's projector format (a sprite when it has images)."""
    data = _embedding(engine, settings, collection_id)
    has_images = collection_or_404(engine, collection_id).images is not None

    def image_of(index: int) -> Any:
        return stored.png_image(stored.file_png(_image_path(engine, settings, collection_id, data, index), index, None))

    return export_response(
        data, format, f"collection{collection_id}", lambda: stored.export_projector(data, image_of if has_images else None)
    )


@router.post("/api/collections/{collection_id}/embedding/selection", response_model=SelectionOut, responses=SELECTION_RESPONSES)
def post_selection(
    collection_id: CollectionId,
    body: SelectionIn,
    engine: EngineDep,
    settings: SettingsDep,
    format: SelectionFormat = "json",
) -> Response | SelectionOut:
    """Summarise a selection of the collection's points, or export it (CSV, .npy)."""
    data = _embedding(engine, settings, collection_id)
    return selection_response(data, body, format, base_of(collection_id), f"collection{collection_id}")
