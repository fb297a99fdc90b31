"""Two embeddings of the same items compared item by item: whose k nearest neighbours changed most (app.explorer.changed).

Either side is a job (`job:7`, its explorer points) or a collection (`collection:3`); items are matched by index.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from starlette.responses import JSONResponse

from app.api import collections as collections_api
from app.api import embeddings as embeddings_api
from app.api.deps import EngineDep, SettingsDep
from app.api.embeddings import ERRORS, image_url
from app.api.errors import field_error
from app.config import Settings
from app.explorer import changed
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


def _load(engine: Engine, settings: Settings, text: str) -> tuple[JobEmbedding, str]:
    m = SOURCE.match(text)
    assert m is not None
    kind, number = m[1], int(m[2])
    if kind == "job":
        return embeddings_api._embedding(engine, settings, number), embeddings_api.job_base(number)
    return collections_api._embedding(engine, settings, number), collections_api.base_of(number)


@router.get("/api/neighbourhoods", response_model=NeighbourhoodsOut, responses={**ERRORS, 409: ERRORS[404]})
def get_neighbourhoods(
    a: Source,
    b: Source,
    engine: EngineDep,
    settings: SettingsDep,
    k: Annotated[int, Query(ge=1, le=changed.MAX_K)] = 10,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    sort: Annotated[Literal["-change", "change", "index"], Query(description="`-change`: most changed first")] = "-change",
) -> NeighbourhoodsOut | JSONResponse:
    """The items whose neighbourhoods differ most between two embeddings of them (a sortable list with thumbnails)."""
    for name, value in (("a", a), ("b", b)):
        if not SOURCE.match(value):
            return field_error(name, f"{value!r} names no embedding: write job:<id> or collection:<id>")
    data_a, base_a = _load(engine, settings, a)
    data_b, _ = _load(engine, settings, b)
    key = (a, id(data_a), b, id(data_b), k)  # a JobEmbedding object is one version of its file
    with _lock:
        found = _cache.get(key)
    if found is None:
        try:
            found = changed.changes(data_a, data_b, k)
        except changed.TooFewShared as e:
            return field_error("b", str(e))
        with _lock:
            _cache[key] = found
            while len(_cache) > MAX_CACHED:
                _cache.popitem(last=False)
    order = {"-change": lambda: (-found.change).argsort(kind="stable"), "change": lambda: found.change.argsort(kind="stable")}
    picked = order[sort]()[:limit] if sort in order else range(min(limit, len(found.indices)))
    items = []
    for i in picked:
        row = int(found.rows_a[i])
        label = int(data_a.labels[row])
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
    return NeighbourhoodsOut(
        a=a,
        b=b,
        k=k,
        shared=len(found.indices),
        mean_change=float(found.change.mean()),
        unchanged=int((found.change == 0).sum()),
        items=items,
    )
