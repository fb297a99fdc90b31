"""The store's tests run against SQLite and a real PostgreSQL server (a fresh database per test)."""

from __future__ import annotations

import pytest

from app.config import Settings
from tests.conftest import postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, home) -> Settings:
    base = dict(home=home, lease_seconds=4, heartbeat_seconds=0.5, demo=False, retry_backoff_seconds=0.5)
    if request.param == "sqlite":
        yield Settings(**base)
        return
    with postgres_database() as url:
        yield Settings(**base, database_url=url)
