"""Engine and transactions.

SQLite: every connection sets WAL, busy_timeout and foreign keys, and write
transactions start with BEGIN IMMEDIATE (a deferred transaction that reads and then
writes gets SQLITE_BUSY at once, ignoring busy_timeout). PostgreSQL needs nothing special.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Connection, Engine, Executable, create_engine, event
from sqlalchemy.engine import make_url


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """One engine per URL per process (workers are separate processes with their own)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _sqlite_setup(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    return engine


NETWORK_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "ceph", "glusterfs", "lustre", "gpfs", "afs"}


MOUNTS = "/proc/mounts"


def filesystem_type(path: Path, mounts: str | None = None) -> str | None:
    """The type of the filesystem holding `path` (longest matching mount point)."""
    try:
        lines = Path(mounts or MOUNTS).read_text().splitlines()
    except OSError:
        return None
    best, kind = "", None
    resolved = str(path.resolve())
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and (resolved == parts[1] or resolved.startswith(parts[1].rstrip("/") + "/")) and len(parts[1]) >= len(best):
            best, kind = parts[1], parts[2]
    return kind


def sqlite_location_problem(url: str, mounts: str | None = None) -> str | None:
    """SQLite's locking needs one host and a local disk; say why a location will not do."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    kind = filesystem_type(Path(parsed.database).parent, mounts)
    if kind in NETWORK_FILESYSTEMS:
        return (
            f"the SQLite database {parsed.database} is on a network filesystem ({kind}); SQLite's locks do not work there. "
            "Keep EMBEDLAB_HOME's database on a local disk, or use PostgreSQL (EMBEDLAB_DATABASE_URL=postgresql+psycopg://...) "
            "for several hosts"
        )
    return None


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


def fetch_tuples(conn: Connection, stmt: Executable) -> list[tuple]:
    """Rows as plain DB-API tuples, for reads of 100,000 rows (a long metric series) where building
    SQLAlchemy Row objects would cost more than the query itself."""
    compiled = stmt.compile(dialect=conn.dialect)
    params = compiled.construct_params()
    args = tuple(params[k] for k in compiled.positiontup) if compiled.positional else params
    cursor = conn.connection.cursor()
    try:
        cursor.execute(compiled.string, args)
        return cursor.fetchall()
    finally:
        cursor.close()


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        yield conn


def init_db(engine: Engine) -> None:
    """Create the schema on an empty database; raise SchemaBehind on an outdated one."""
    from app.store.schema import ensure_current

    ensure_current(engine)
