"""Two embeddings of the same items compared item by item: whose k nearest neighbours changed most (app.explorer.changed).

Either side is a job (`job:7`, its explorer points) or a collection (`collection:3`); items are matched by index.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from starlette.responses import JSONResponse

from app.api import collections as collections_api
from app.api import embeddings as embeddings_api
from app.api.deps import EngineDep, SettingsDep
from app.api.embeddings import ERRORS, image_url
from app.api.errors import field_error
from app.api.selection import BODY_ERRORS, SelectionIn
from app.config import Settings
from app.explorer import aligned, changed
from app.explorer.embeddings import JobEmbedding

router = APIRouter(tags=["embeddings"])

SOURCE = re.compile(r"^(job|collection):([1-9]\d{0,9})$")
Source = Annotated[str, Query(description="`job:<id>` (its explorer points) or `collection:<id>`", max_length=30)]
MAX_CACHED = 4

_cache: OrderedDict[tuple, changed.Changes] = OrderedDict()
_lock = threading.Lock()


class ChangedItem(BaseModel):
    index: int
    label: int = Field(description="In `a`")
    class_name: str
    change: float = Field(description="1 - Jaccard of the item's k nearest shared items in a and in b")
    image_url: str = Field(description="Its thumbnail, through `a`")


class NeighbourhoodsOut(BaseModel):
    a: str
    b: str
    k: int
    shared: int = Field(description="Items both hold (matched by index)")
    mean_change: float
    unchanged: int = Field(description="Items with the same k neighbours in both")
    items: list[ChangedItem] = Field(description="In the order asked for (`sort`), at most `limit`")


class GroupChange(BaseModel):
    items: int
    mean_change: float


class SelectionChange(BaseModel):
    selected: int = Field(description="Distinct indices sent")
    shared: int = Field(description="Of them, items both embeddings hold (the rest are left out)")
    selection: GroupChange
    rest: GroupChange | None = Field(description="The other shared items")
    difference: float | None = Field(description="Selection's mean change minus the rest's")
    noise: float | None = Field(
        description="95% of selections of as many items drawn at random differ from their rest by less than this (either sign)"
    )
    verdict: str = Field(description="'within noise' when |difference| <= noise")


class SelectionNeighbourhoodsOut(NeighbourhoodsOut):
    items: list[ChangedItem] = Field(description="The selection's shared items, in the order asked for, at most `limit`")
    selection: SelectionChange


class XY(BaseModel):
    x: list[float]
    y: list[float]


class Alignment(BaseModel):
    rotation_degrees: float = Field(description="B's layout turned by this much onto A's")
    mirrored: bool = Field(description="B's layout mirrored as well (UMAP's axes have no sign)")
    scale: float
    residual: float = Field(description="RMS distance of aligned B from A over A's RMS spread: 0 the same picture, ~1 unrelated")


class LayoutPoints(BaseModel):
    index: list[int]
    label: list[int] = Field(description="In `a`")
    change: list[float]


class PairLayoutsOut(BaseModel):
    a: str
    b: str
    k: int
    shared: int
    most_changed: int = Field(description="The first this many most changed items are all among `points`")
    points: LayoutPoints = Field(description="Row i is the same item in both layouts")
    class_names: list[str] = Field(description="Of `a`'s labels")
    layouts: dict[str, XY] = Field(description="`a`: its stored layout; `b`: its stored layout aligned onto a's")
    alignment: Alignment


class Refused(Exception):
    def __init__(self, response: JSONResponse):
        self.response = response


def _load(engine: Engine, settings: Settings, name: str, text: str) -> tuple[JobEmbedding, str]:
    """One side's explorer data and its API base; an unknown or unready side is refused naming its field."""
    m = SOURCE.match(text)
    if m is None:
        raise Refused(field_error(name, f"{text!r} names no embedding: write job:<id> or collection:<id>"))
    kind, number = m[1], int(m[2])
    try:
        if kind == "job":
            return embeddings_api._embedding(engine, settings, number), embeddings_api.job_base(number)
        return collections_api._embedding(engine, settings, number), collections_api.base_of(number)
    except HTTPException as e:
        raise Refused(field_error(name, str(e.detail), e.status_code)) from None


def _compared(engine: Engine, settings: Settings, a: str, b: str, k: int) -> tuple[JobEmbedding, str, JobEmbedding, changed.Changes]:
    """Both sides and their item-by-item changes (the last few comparisons cached)."""
    data_a, base_a = _load(engine, settings, "a", a)
    data_b, _ = _load(engine, settings, "b", b)
    key = (a, id(data_a), b, id(data_b), k)  # a JobEmbedding object is one version of its file
    with _lock:
        found = _cache.get(key)
    if found is None:
        try:
            found = changed.changes(data_a, data_b, k)
        except changed.TooFewShared as e:
            raise Refused(field_error("b", str(e))) from None
        with _lock:
            _cache[key] = found
            while len(_cache) > MAX_CACHED:
                _cache.popitem(last=False)
    return data_a, base_a, data_b, found


K = Annotated[int, Query(ge=1, le=changed.MAX_K)]
Sort = Annotated[Literal["-change", "change", "index"], Query(description="`-change`: most changed first")]


@router.get("/api/neighbourhoods", response_model=NeighbourhoodsOut, responses={**ERRORS, 409: ERRORS[404]})
def get_neighbourhoods(
    a: Source,
    b: Source,
    engine: EngineDep,
    settings: SettingsDep,
    k: K = 10,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    sort: Sort = "-change",
) -> NeighbourhoodsOut | JSONResponse:
    """The items whose neighbourhoods differ most between two embeddings of them (a sortable list with thumbnails)."""
    try:
        data_a, base_a, _, found = _compared(engine, settings, a, b, k)
    except Refused as e:
        return e.response
    return NeighbourhoodsOut(**_summary(a, b, k, found), items=_listed(data_a, base_a, found, np.arange(len(found.indices)), sort, limit))


@router.post(
    "/api/neighbourhoods/selection",
    response_model=SelectionNeighbourhoodsOut,
    responses={**ERRORS, **BODY_ERRORS, 409: ERRORS[404], 413: ERRORS[422]},
)
def post_selection_neighbourhoods(
    a: Source,
    b: Source,
    body: SelectionIn,
    engine: EngineDep,
    settings: SettingsDep,
    k: K = 10,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 2_000,
    sort: Sort = "-change",
) -> SelectionNeighbourhoodsOut | JSONResponse:
    """A selection of items (an explorer's lasso, by index) compared between two embeddings: its items' changes, listed,
    and whether they changed more than the other shared items (beyond what 95% of random selections of as many items show)."""
    try:
        data_a, base_a, _, found = _compared(engine, settings, a, b, k)
    except Refused as e:
        return e.response
    wanted = np.unique(np.asarray(body.indices, dtype=np.int64))
    inside = np.isin(found.indices, wanted)
    if not inside.any():
        return field_error("indices", f"none of the {len(wanted):,} selected items is held by both {a} and {b}")
    stats = changed.selection_change(found.change, inside)
    return SelectionNeighbourhoodsOut(
        **_summary(a, b, k, found),
        items=_listed(data_a, base_a, found, np.flatnonzero(inside), sort, limit),
        selection=SelectionChange(selected=len(wanted), shared=int(inside.sum()), **stats),
    )


def _summary(a: str, b: str, k: int, found: changed.Changes) -> dict:
    return {
        "a": a,
        "b": b,
        "k": k,
        "shared": len(found.indices),
        "mean_change": float(found.change.mean()),
        "unchanged": int((found.change == 0).sum()),
    }


def _listed(data_a: JobEmbedding, base_a: str, found: changed.Changes, positions: np.ndarray, sort: str, limit: int) -> list[ChangedItem]:
    """The items at `positions` of the comparison (by index, or by change when `sort` says), at most `limit`."""
    change = found.change[positions]
    order = {"-change": lambda: (-change).argsort(kind="stable"), "change": lambda: change.argsort(kind="stable")}
    picked = positions[order[sort]()[:limit]] if sort in order else positions[:limit]  # the shared items are in index order
    items = []
    for i in picked.tolist():
        label = int(data_a.labels[found.rows_a[i]])
        index = int(found.indices[i])
        items.append(
            ChangedItem(
                index=index,
                label=label,
                class_name=data_a.class_name(label),
                change=float(found.change[i]),
                image_url=image_url(base_a, index),
            )
        )
    return items


def _xy(xy: np.ndarray) -> XY:
    return XY(x=np.round(xy[:, 0].astype(float), 4).tolist(), y=np.round(xy[:, 1].astype(float), 4).tolist())


@router.get("/api/neighbourhoods/layouts", response_model=PairLayoutsOut, responses={**ERRORS, 409: ERRORS[404]})
def get_pair_layouts(a: Source, b: Source, engine: EngineDep, settings: SettingsDep, k: K = 10) -> PairLayoutsOut | JSONResponse:
    """A's and B's layouts of the items both hold, B's turned onto A's (Procrustes over every shared item), for panels side
    by side: the `k` comparison's most changed items and a seeded sample of the rest, row i the same item in both."""
    try:
        data_a, _, data_b, found = _compared(engine, settings, a, b, k)
    except Refused as e:
        return e.response
    xy_a, xy_b = data_a.xy[found.rows_a], data_b.xy[found.rows_b]
    turn = aligned.procrustes(xy_b, xy_a)
    drawn = aligned.pair_sample(found.change)
    return PairLayoutsOut(
        a=a,
        b=b,
        k=k,
        shared=len(found.indices),
        most_changed=min(aligned.PAIR_MOST_CHANGED, len(drawn)),
        points=LayoutPoints(
            index=found.indices[drawn].tolist(),
            label=data_a.labels[found.rows_a[drawn]].tolist(),
            change=np.round(found.change[drawn].astype(float), 4).tolist(),
        ),
        class_names=data_a.class_names,
        layouts={"a": _xy(xy_a[drawn]), "b": _xy(turn.apply(xy_b[drawn]))},
        alignment=Alignment(
            rotation_degrees=round(turn.degrees, 2), mirrored=turn.mirrored, scale=turn.scale, residual=round(turn.residual, 4)
        ),
    )
