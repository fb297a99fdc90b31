"""The Alembic migrations build the schema the models describe, and an older database is upgraded without loss."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.spec import JobSpec
from app.store import jobs, metrics, schema
from app.store.db import get_engine, init_db
from app.store.models import Base


def test_migrations_build_the_models_schema(settings):
    engine = get_engine(settings.db_url)
    init_db(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_a_database_behind_is_refused_then_upgraded_with_its_data(settings):
    engine = create_engine(settings.db_url)  # not the cached engine: init_db would have created the newest schema
    schema.upgrade(engine, "0002")
    job = jobs.submit(engine, JobSpec(dataset="digits"))
    claim = jobs.claim(engine, "w", devices=("auto",), lease_seconds=60, run_device="cpu")
    assert metrics.append(engine, job["id"], claim.attempt, claim.token, [metrics.Point("train/loss", s, 1.0 / s, 0) for s in range(1, 101)])

    with pytest.raises(schema.SchemaBehind, match="embedlab db upgrade"):
        init_db(engine)
    schema.upgrade(engine)
    init_db(engine)  # now current
    assert "ix_metrics_series" in {ix["name"] for ix in inspect(engine).get_indexes("metrics")}
    loss = metrics.series(engine, job["id"], ["train/loss"])["train/loss"]
    assert loss["step"] == list(range(1, 101)) and loss["value"][-1] == pytest.approx(0.01)
    engine.dispose()
