"""The Alembic migrations build the schema the models describe, and an older database is upgraded without loss."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from app.spec import JobSpec
from app.store import jobs, metrics, schema, workers
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
    # Rows written as that version's schema holds them (today's store functions name columns it does not have yet).
    with engine.begin() as conn:
        spec = JobSpec(dataset="digits")
        conn.execute(
            text(
                "INSERT INTO jobs (id, name, owner, spec, dataset, loss, margin, device, priority, status, attempts, max_attempts, "
                "cancel_requested, step, total_steps, summary, created_at, updated_at) VALUES (1, 'old', 'local', :spec, 'digits', "
                "'triplet', 0.2, 'auto', 0, 'running', 1, 3, false, 100, 300, '{}', :now, :now)"
            ),
            {"spec": json.dumps(spec.model_dump(mode="json")), "now": datetime(2026, 1, 1)},
        )
        conn.execute(
            text("INSERT INTO metrics (job_id, attempt, name, step, value, wall_time) VALUES (1, 1, 'train/loss', :step, :value, 0)"),
            [{"step": s, "value": 1.0 / s} for s in range(1, 101)],
        )
    job = {"id": 1}

    with pytest.raises(schema.SchemaBehind, match="embedlab db upgrade"):
        init_db(engine)
    schema.upgrade(engine)
    init_db(engine)  # now current
    assert "ix_metrics_series" in {ix["name"] for ix in inspect(engine).get_indexes("metrics")}
    loss = metrics.series(engine, job["id"], ["train/loss"])["train/loss"]
    assert loss["step"] == list(range(1, 101)) and loss["value"][-1] == pytest.approx(0.01)
    kept = jobs.get(engine, job["id"])
    assert kept.name == "old" and kept.step == 100 and kept.phase is None
    engine.dispose()


def test_jobs_and_workers_from_before_devices_run_on_one_device(settings):
    """Migration 0007: a job queued and a worker registered before it read as one device, and the job is claimed as before."""
    engine = create_engine(settings.db_url)
    schema.upgrade(engine, "0005")
    with engine.begin() as conn:
        spec = JobSpec(dataset="digits").model_dump(mode="json")
        spec.pop("devices")  # as that version stored it
        conn.execute(
            text(
                "INSERT INTO jobs (id, name, owner, spec, dataset, loss, margin, device, priority, status, attempts, max_attempts, "
                "cancel_requested, step, total_steps, summary, created_at, updated_at) VALUES (1, 'old', 'local', :spec, 'digits', "
                "'triplet', 0.2, 'auto', 0, 'queued', 0, 3, false, 0, 300, '{}', :now, :now)"
            ),
            {"spec": json.dumps(spec), "now": datetime(2026, 1, 1)},
        )
        conn.execute(
            text(
                "INSERT INTO workers (id, host, pid, device, version, started_at, last_heartbeat) "
                "VALUES ('h:1:a', 'h', 1, 'cpu', '0', :now, :now)"
            ),
            {"now": datetime(2026, 1, 1)},
        )
    schema.upgrade(engine)
    init_db(engine)
    assert workers.list_workers(engine)[0].devices == 1
    claim = jobs.claim(engine, "w", devices=("auto", "cpu"), lease_seconds=30, run_device="cpu")
    assert claim is not None and claim.job_id == 1 and JobSpec.model_validate(claim.spec).devices == 1
    engine.dispose()
