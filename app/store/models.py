"""ORM tables. Classes singular, tables plural; all times are UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, TypeDecorator, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite has no 64-bit autoincrement for BIGINT; use INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, returns aware UTC (SQLite keeps no time zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """The metadata every table below registers with (Alembic compares against it)."""


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(100), default="local")
    sweep_id: Mapped[int | None] = mapped_column(ForeignKey("sweeps.id"), index=True)
    # A search's trial: the Optuna trial number inside the search's study (one job per trial and seed).
    search_id: Mapped[int | None] = mapped_column(ForeignKey("searches.id"), index=True)
    trial_number: Mapped[int | None] = mapped_column(Integer)
    spec: Mapped[dict] = mapped_column(JSON)
    # Denormalised from the spec for the queue and the jobs page.
    dataset: Mapped[str] = mapped_column(String(50))
    loss: Mapped[str] = mapped_column(String(50))
    margin: Mapped[float] = mapped_column(Float)
    device: Mapped[str] = mapped_column(String(20), default="auto")
    devices: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # ranks of one data-parallel job
    priority: Mapped[int] = mapped_column(Integer, default=0)

    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    run_device: Mapped[str | None] = mapped_column(String(50))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)

    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int] = mapped_column(Integer)
    steps_per_second: Mapped[float | None] = mapped_column(Float)
    phase: Mapped[str | None] = mapped_column(String(100))  # after the steps: "laying out embeddings: 40%"
    summary: Mapped[dict] = mapped_column(JSON, default=dict)  # latest value of each val/ metric
    error: Mapped[str | None] = mapped_column(Text)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_jobs_queue", "status", "priority", "id"),)


class Metric(Base):
    """Append-only; a step written by two attempts of a job is kept once per attempt."""

    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column(Float)  # NULL for NaN/inf
    wall_time: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("job_id", "name", "attempt", "step", name="uq_metrics_point"),
        Index("ix_metrics_job_id", "job_id", "id"),
        # A series read in step order straight from the index, values included: no sort, no table lookups.
        Index("ix_metrics_series", "job_id", "name", "step", "attempt", "value"),
    )


class JobLog(Base):
    """What a user should know about a run: skipped files, classes left out, warnings."""

    __tablename__ = "job_logs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(10))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Sweep(Base):
    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(100), default="local")
    spec: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Search(Base):
    """An Optuna study run on the queue: its trials are jobs with this search_id (app/search.py)."""

    __tablename__ = "searches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(100), default="local")
    spec: Mapped[dict] = mapped_column(JSON)
    study_name: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="running")  # running, finished, cancelled
    # A short lock so that one process at a time asks the sampler (the server's loop and workers all may).
    advancing_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(50))
    devices: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # the most ranks a job it claims may have
    version: Mapped[str] = mapped_column(String(50))
    current_job_id: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_heartbeat: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(300))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Session(Base):
    """A browser sign-in: the cookie holds a random id, the table only its hash."""

    __tablename__ = "sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


def _adopt_optuna_tables() -> None:
    """Optuna's study tables (its RDBStorage) live in embedlab's database and are created by embedlab's
    migration 0004, so that one Alembic history (one alembic_version table, which Optuna would also claim) covers them."""
    from optuna.storages._rdb import models as optuna_models

    for table in optuna_models.BaseModel.metadata.sorted_tables:
        if table.name not in Base.metadata.tables:
            table.to_metadata(Base.metadata)


_adopt_optuna_tables()


class Collection(Base):
    """Embeddings brought from elsewhere (`embedlab import`, POST /api/collections), explored like a job's.

    Its files live under EMBEDLAB_HOME/collections/<id>/ (app/explorer/collections.py): the checked
    arrays, then projection.npz once the layout is done.
    """

    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(100), default="local")
    status: Mapped[str] = mapped_column(String(20), default="laying out")  # laying out, ready, failed
    points: Mapped[int] = mapped_column(Integer)
    dims: Mapped[int] = mapped_column(Integer)
    classes: Mapped[int] = mapped_column(Integer, default=0)  # 0: no labels
    space: Mapped[str] = mapped_column(String(20))  # cosine or euclidean (app.distance.Space)
    images: Mapped[str | None] = mapped_column(Text)  # the image folder (inside a data root), resolved
    source: Mapped[dict] = mapped_column(JSON, default=dict)  # the files it came from and their formats
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
