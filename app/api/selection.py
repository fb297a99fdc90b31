"""The explorer at scale: its points as binary columns, and summaries/exports of a lasso selection.

Routes over app.explorer.columns and app.explorer.selection; the job's data comes through
app.api.embeddings (the same per-job cache and the same 404s).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.api.deps import EngineDep, JobId, SettingsDep, job_or_404
from app.api.embeddings import ERRORS, _embedding, image_url, job_base
from app.api.errors import field_error
from app.api.schemas import BODY_ERRORS
from app.explorer import columns, selection
from app.explorer import embeddings as stored

router = APIRouter(tags=["embeddings"])

MAX_SELECTION = 2_000_000
SelectionFormat = Annotated[
    Literal["json", "csv", "npy"],
    Query(description="`csv`: index, label, class_name, split of each point; `npy`: their float32 embeddings, rows in the CSV's order"),
]
SELECTION_BODY_BYTES = 24 * 1024 * 1024  # 2,000,000 indices of up to 10 digits, in JSON (app/main.py's BodyLimit)


COLUMNS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {columns.MEDIA_TYPE: {}},
        "description": "uint32 little-endian header length H, H bytes of JSON "
        "({n, columns: [{name, dtype, offset, length}], splits, class_names}; offsets count from the end of the header), "
        "then the columns: index i4, x f4, y f4, label i4, ap f4 (AP@R of a scored point, NaN otherwise), split u1, nn_same_label u1, "
        "little-endian",
    },
    **ERRORS,
}


@router.get("/api/jobs/{job_id}/embedding/columns", response_class=Response, responses=COLUMNS_RESPONSES)
def get_columns(job_id: JobId, engine: EngineDep, settings: SettingsDep) -> Response:
    """Every point of the layout as binary columns (what the explorer page loads): 22 bytes a point, no parsing."""
    job_or_404(engine, job_id)
    return columns_response(settings.job_dir(job_id), lambda: _embedding(engine, settings, job_id))


def columns_response(folder: Path, loaded: Callable[[], stored.JobEmbedding]) -> Response:
    """The columns of `folder`'s projection.npz; `loaded()` words the answer when the file is missing or damaged."""
    try:
        body = columns.encoded_file(folder)
    except (stored.NoProjection, columns.Unreadable):
        body = columns.encoded(loaded())
    return Response(
        body, media_type=columns.MEDIA_TYPE, headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-cache"}
    )


class SelectionIn(BaseModel):
    indices: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(
        min_length=1, max_length=MAX_SELECTION, description="Dataset indices of the selected points"
    )


class SelectionClass(BaseModel):
    label: int
    class_name: str
    count: int
    share: float = Field(description="Of the selection")
    precision_at_1: float = Field(
        description="Share of this class's selected points whose nearest point (full space, all explorer points) has their label"
    )


class CentralImage(BaseModel):
    index: int
    label: int
    class_name: str
    distance: float = Field(description="To the selection's mean embedding, in the job's space")
    image_url: str


class SelectionOut(BaseModel):
    count: int
    precision_at_1: float
    per_class: list[SelectionClass] = Field(description="Largest class first")
    central: list[CentralImage] = Field(description="The selected points nearest the selection's centre, nearest first")


SELECTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/csv": {}, "application/octet-stream": {}},
        "description": "format=csv: index, label, class_name, split of each selected point; format=npy: their float32 embeddings",
    },
    **ERRORS,
    **BODY_ERRORS,
    413: ERRORS[422],
}


@router.post("/api/jobs/{job_id}/embedding/selection", response_model=SelectionOut, responses=SELECTION_RESPONSES)
def post_selection(
    job_id: JobId,
    body: SelectionIn,
    engine: EngineDep,
    settings: SettingsDep,
    format: SelectionFormat = "json",
) -> Response | SelectionOut:
    """Summarise a selection of explorer points (a lasso on the page), or export it (CSV, .npy)."""
    data = _embedding(engine, settings, job_id, indexed=format == "json")  # P@1 searches each point's nearest
    return selection_response(data, body, format, job_base(job_id), f"job{job_id}")


def selection_response(
    data: stored.JobEmbedding, body: SelectionIn, format: SelectionFormat, base: str, prefix: str
) -> Response | SelectionOut:
    """A selection's summary, CSV or .npy, for a job's points or a collection's."""
    try:
        rows = selection.rows_of(data, np.asarray(body.indices, dtype=np.int64))
    except selection.UnknownIndices as e:
        return field_error("indices", str(e))
    if format != "json":
        made, media_type = {
            "csv": (lambda: selection.selection_csv(data, rows), "text/csv; charset=utf-8"),
            "npy": (lambda: stored.export_npy(data, rows), "application/octet-stream"),
        }[format]
        return Response(
            made(),
            media_type=media_type,
            headers={"Content-Disposition": f'attachment; filename="{prefix}-selection.{format}"', "X-Content-Type-Options": "nosniff"},
        )
    s = selection.summarize(data, rows)
    central = []
    for c in s["central"]:
        index, label = int(data.indices[c["row"]]), int(data.labels[c["row"]])
        central.append(
            CentralImage(
                index=index, label=label, class_name=data.class_name(label), distance=c["distance"], image_url=image_url(base, index)
            )
        )
    return SelectionOut(
        count=s["count"], precision_at_1=s["precision_at_1"], per_class=[SelectionClass(**c) for c in s["per_class"]], central=central
    )
