"""Shared fixtures: a fresh EMBEDLAB_HOME per test, the app, real server and worker processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.store.db import get_engine, init_db

# Numba's compile cache (UMAP projections at the end of every job) shared by all tests and the
# processes they start: each test has its own EMBEDLAB_HOME, and a cold compile costs minutes.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "embedlab" / "numba-tests"))
# Tests run workers in their own process after UMAP ran there (API tests); a worker forks each attempt, and
# GNU OpenMP, Numba's default threading layer here, kills a forked child of a process that used it (SIGTERM).
# An `embedlab worker` never runs Numba itself, so only the test process needs the fork-safe layer.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

# Short leases so lease-expiry tests take seconds, not minutes.
TEST_ENV = {
    "EMBEDLAB_OFFLINE": "true",
    "EMBEDLAB_LEASE_SECONDS": "4",
    "EMBEDLAB_HEARTBEAT_SECONDS": "0.5",
    "EMBEDLAB_DEMO": "false",
    "EMBEDLAB_RETRY_BACKOFF_SECONDS": "0.5",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every item a unique node id. Schemathesis's `schema.parametrize()` names its items by operation
    (`test_x[POST /api/jobs]`) but leaves them the function's node id, and pytest-xdist, which `make test` runs
    the suite with, schedules by node id: one operation of the 33 would be tested. A pytest that changes how a
    node id is built fails here rather than dropping tests."""
    seen: set[str] = set()
    for item in items:
        if "[" in item.name and "[" not in item.nodeid and item.parent is not None:
            item._id = item.parent.id.child(item.name)  # what pytest itself derives from a parametrized name
        assert item.nodeid not in seen, f"two tests share the node id {item.nodeid}"
        seen.add(item.nodeid)


POSTGRES_ADMIN_URL = os.environ.get("EMBEDLAB_TEST_POSTGRES_URL", "postgresql+psycopg://root@/postgres?host=/var/run/postgresql")


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped after. Skips when there is no server,
    except in CI (CI=true), where .ci/run starts one and its absence is a failure."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"embedlab_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
        reason = f"PostgreSQL not reachable: {type(e).__name__}: {str(e).splitlines()[0]}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def wait_for(predicate: Callable[[], object], timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def train_one(settings: Settings, spec) -> int:
    """Train `spec` to the end with an in-process worker on `settings`' database; the job's id (asserted succeeded)."""
    from app.store import jobs
    from trainer.worker import Worker

    engine = get_engine(settings.db_url)
    init_db(engine)
    job = jobs.submit(engine, spec)
    Worker(settings, threads=1).run(max_jobs=1, exit_when_idle=True)
    assert jobs.get(engine, job.id).status == "succeeded", jobs.get(engine, job.id).error
    return job.id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    """Environment for processes started by a test: same home, same database."""
    return {**os.environ, **TEST_ENV, "EMBEDLAB_HOME": str(home), "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(home=home, lease_seconds=4, heartbeat_seconds=0.5, demo=False, retry_backoff_seconds=0.5)


@pytest.fixture
def engine(settings: Settings):
    engine = get_engine(settings.db_url)
    init_db(engine)
    return engine


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


class Processes:
    """Starts embedlab processes and makes sure none outlives the test."""

    def __init__(self, env: dict[str, str], logdir: Path):
        self.env, self.logdir, self.procs = env, logdir, []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.logdir / f"proc{len(self.procs)}-{args[0]}.log", "wb")
        p = subprocess.Popen([sys.executable, "-m", "app.cli", *args], env=env or self.env, stdout=log, stderr=subprocess.STDOUT)
        p.log_path = log.name  # type: ignore[attr-defined]
        self.procs.append(p)
        return p

    def worker(self, *args: str) -> subprocess.Popen:
        return self.start("worker", "--threads", "1", "--device", "cpu", *args)

    def server(self, workers: int = 0) -> str:
        port = free_port()
        self.start("serve", "--port", str(port), "--workers", str(workers))
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/api/jobs", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60, 0.2, "the server to answer")
        return url

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def procs(env: dict[str, str], tmp_path: Path) -> Iterator[Processes]:
    p = Processes(env, tmp_path)
    yield p
    p.stop_all()


class SmallDisk:
    """A real tmpfs of a few MB: writes there meet a genuinely full filesystem (ENOSPC, SQLITE_FULL, SIGBUS for
    memory maps), not a simulated one."""

    def __init__(self, path: Path):
        self.path = path
        self.filler = path / ".filler"

    def fill(self, leave: int = 0) -> None:
        """Take every free byte but `leave`."""
        with open(self.filler, "ab") as f:
            while (room := shutil.disk_usage(self.path).free - leave) > 0:
                try:
                    f.write(b"\0" * min(room, 1 << 20))
                    f.flush()
                except OSError:
                    break

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """An 8 MB tmpfs mounted for the test (needs root, as in the dev container and CI's container)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture
def builds(monkeypatch) -> list[int]:
    """Each NeighborIndex.build's point count; each build takes 0.2 s longer, so that concurrent callers overlap."""
    from app.explorer.neighbors import NeighborIndex

    calls: list[int] = []
    real = NeighborIndex.build.__func__

    def counted(cls, vectors, *args, **kwargs):
        calls.append(len(vectors))
        time.sleep(0.2)
        return real(cls, vectors, *args, **kwargs)

    monkeypatch.setattr(NeighborIndex, "build", classmethod(counted))
    return calls
