"""Collections: imported embeddings (their files: app/explorer/collections.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from app.store.db import reading, writing
from app.store.models import Collection, utcnow
from app.store.rows import CollectionRow, CollectionStatus


def create(
    engine: Engine,
    *,
    name: str,
    owner: str,
    points: int,
    dims: int,
    classes: int,
    space: str,
    images: str | None,
    source: dict[str, Any],
) -> CollectionRow:
    with writing(engine) as conn:
        collection_id = conn.execute(
            insert(Collection)
            .values(
                name=name,
                owner=owner,
                status="laying out",
                points=points,
                dims=dims,
                classes=classes,
                space=space,
                images=images,
                source=source,
                created_at=utcnow(),
            )
            .returning(Collection.id)
        ).scalar_one()
        return CollectionRow.of(conn.execute(select(Collection.__table__).where(Collection.id == collection_id)).mappings().one())


def get(engine: Engine, collection_id: int) -> CollectionRow | None:
    with reading(engine) as conn:
        row = conn.execute(select(Collection.__table__).where(Collection.id == collection_id)).mappings().first()
        return CollectionRow.of(row) if row else None


def list_collections(engine: Engine, *, limit: int = 50, offset: int = 0) -> tuple[list[CollectionRow], int]:
    with reading(engine) as conn:
        total = conn.execute(select(func.count()).select_from(Collection)).scalar_one()
        rows = conn.execute(select(Collection.__table__).order_by(Collection.id.desc()).limit(limit).offset(offset)).mappings().all()
    return [CollectionRow.of(r) for r in rows], total


def laying_out(engine: Engine) -> list[int]:
    """Collections whose layout has not ended (the server restarts them)."""
    with reading(engine) as conn:
        return list(conn.execute(select(Collection.id).where(Collection.status == "laying out").order_by(Collection.id)).scalars())


def finish(engine: Engine, collection_id: int, status: CollectionStatus, error: str | None = None) -> None:
    with writing(engine) as conn:
        conn.execute(update(Collection).where(Collection.id == collection_id).values(status=status, error=error, finished_at=utcnow()))


def remove(engine: Engine, collection_id: int) -> None:
    with writing(engine) as conn:
        conn.execute(delete(Collection).where(Collection.id == collection_id))
