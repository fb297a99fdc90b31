"""The Alembic migrations build the schema the models describe, and an older database is upgraded without loss."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from app.spec import JobSpec
from app.store import jobs, metrics, schema
from app.store.db import get_engine, init_db
from app.store.models import Base


def test_migrations_build_the_models_schema(settings):
    engine = get_engine(settings.db_url)
    init_db(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def _old_job(engine, spec: JobSpec) -> dict:
    """A job written with the 0002 schema's columns only (jobs.submit reads back today's columns)."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    row = dict(name=spec.name, owner="local", spec=json.dumps(spec.model_dump(mode="json")), dataset=spec.dataset, loss=spec.loss,
               margin=spec.margin, device=spec.device, priority=0, status="queued", attempts=0, max_attempts=3,
               cancel_requested=False, step=0, total_steps=spec.steps, summary="{}", created_at=now, updated_at=now)
    with engine.begin() as conn:
        job_id = conn.execute(text(f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)}) RETURNING id"), row).scalar_one()
    return {"id": job_id}


def test_a_database_behind_is_refused_then_upgraded_with_its_data(settings):
    engine = create_engine(settings.db_url)  # not the cached engine: init_db would have created the newest schema
    schema.upgrade(engine, "0002")
    job = _old_job(engine, JobSpec(dataset="digits"))
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
