"""Accounts, API tokens and browser sessions. Secrets are stored hashed, never as given."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, delete, insert, select

from app.store.db import reading, writing
from app.store.models import Session, User, utcnow

PUBLIC = (User.id, User.name, User.is_admin, User.created_at)


def add(engine: Engine, name: str, *, token_hash: str, password_hash: str | None, is_admin: bool) -> dict:
    with writing(engine) as conn:
        user_id = conn.execute(
            insert(User)
            .values(name=name, token_hash=token_hash, password_hash=password_hash, is_admin=is_admin, created_at=utcnow())
            .returning(User.id)
        ).scalar_one()
        return dict(conn.execute(select(*PUBLIC).where(User.id == user_id)).mappings().one())


def exists(engine: Engine, name: str) -> bool:
    with reading(engine) as conn:
        return conn.execute(select(User.id).where(User.name == name)).first() is not None


def by_token_hash(engine: Engine, token_hash: str) -> dict | None:
    with reading(engine) as conn:
        row = conn.execute(select(*PUBLIC).where(User.token_hash == token_hash)).mappings().first()
        return dict(row) if row else None


def password_hash_of(engine: Engine, name: str) -> tuple[dict, str | None] | None:
    with reading(engine) as conn:
        row = conn.execute(select(*PUBLIC, User.password_hash).where(User.name == name)).mappings().first()
    if row is None:
        return None
    return {k: row[k] for k in ("id", "name", "is_admin", "created_at")}, row["password_hash"]


def open_session(engine: Engine, user_id: int, *, id_hash: str, csrf_token: str, expires_at: datetime) -> None:
    with writing(engine) as conn:
        conn.execute(delete(Session).where(Session.expires_at < utcnow()))
        conn.execute(insert(Session).values(id_hash=id_hash, user_id=user_id, csrf_token=csrf_token, expires_at=expires_at))


def by_session(engine: Engine, id_hash: str) -> tuple[dict, str] | None:
    """The user and the session's CSRF token, while the session is valid."""
    stmt = (
        select(*PUBLIC, Session.csrf_token)
        .join(Session, Session.user_id == User.id)
        .where(Session.id_hash == id_hash, Session.expires_at > utcnow())
    )
    with reading(engine) as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None:
        return None
    return {k: row[k] for k in ("id", "name", "is_admin", "created_at")}, row["csrf_token"]


def close_session(engine: Engine, id_hash: str) -> None:
    with writing(engine) as conn:
        conn.execute(delete(Session).where(Session.id_hash == id_hash))
