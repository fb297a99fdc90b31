"""The store's tests run against SQLite and a real PostgreSQL server (a fresh database per test)."""
from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.store.db import get_engine

ADMIN_URL = os.environ.get("EMBEDLAB_TEST_POSTGRES_URL", "postgresql+psycopg://root@/postgres?host=/var/run/postgresql")


def _postgres_reachable() -> str | None:
    try:
        with create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
        return f"{type(e).__name__}: {str(e).splitlines()[0]}"


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, home) -> Settings:
    base = dict(home=home, lease_seconds=4, heartbeat_seconds=0.5, demo=False, retry_backoff_seconds=0.5)
    if request.param == "sqlite":
        yield Settings(**base)
        return
    problem = _postgres_reachable()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {problem}")
        pytest.skip(f"PostgreSQL not reachable: {problem}")
    name = f"embedlab_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield Settings(**base, database_url=url)
    get_engine(url).dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
