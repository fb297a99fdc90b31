"""Schema versions through Alembic: `embedlab db upgrade` applies them.

An empty database is brought to the latest version on first start (so `make run` needs no
extra step); a database with an older version is refused until someone upgrades it on
purpose, because a migration on a shared database is a decision, not a side effect.
"""

from __future__ import annotations

import logging
from pathlib import Path

logging.getLogger("alembic").setLevel(logging.WARNING)  # before importing alembic: it logs its plugins at import

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy import Engine, inspect  # noqa: E402

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaBehind(RuntimeError):
    """The database's schema is older than this embedlab: `embedlab db upgrade` first."""


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def ensure_current(engine: Engine) -> None:
    """Create the schema on an empty database; refuse one that is behind."""
    now = current(engine)
    if now is None and not inspect(engine).has_table("jobs"):
        upgrade(engine)
        return
    if now != head():
        raise SchemaBehind(
            f"the database schema is at {now or 'an unversioned state'}, this embedlab needs {head()}: run `embedlab db upgrade`"
        )
