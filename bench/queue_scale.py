"""The queue under 4 competing worker processes, on SQLite and on PostgreSQL.

Each process claims, heartbeats and finishes jobs as fast as it can (the queue alone, no
training), until 200 jobs are done. Prints claims per second per store and checks that
every job ran exactly once and none is left running.

Usage: .venv/bin/python bench/queue_scale.py [--jobs 200] [--workers 4] [--postgres postgresql+psycopg://root@/postgres?host=/var/run/postgresql]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.spec import JobSpec  # noqa: E402
from app.store import jobs  # noqa: E402
from app.store.db import get_engine, init_db  # noqa: E402


def work(url: str, name: str, out) -> None:
    engine = get_engine(url)
    ran, idle = [], 0
    while idle < 50:
        c = jobs.claim(engine, name, devices=("auto",), lease_seconds=30, run_device="cpu")
        if c is None:
            idle += 1
            time.sleep(0.01)
            continue
        jobs.heartbeat(engine, c.job_id, c.token, step=1, steps_per_second=None, lease_seconds=30)
        jobs.finish(engine, c.job_id, c.token, "succeeded", step=1)
        ran.append(c.job_id)
    out.put(ran)


def measure(url: str, n_jobs: int, n_workers: int) -> dict:
    engine = get_engine(url)
    init_db(engine)
    ids = [j.id for j in jobs.submit_many(engine, [JobSpec(dataset="digits", steps=1)] * n_jobs, owner="bench", max_attempts=1)]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=work, args=(url, f"w{i}", out)) for i in range(n_workers)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    ran = [j for _ in procs for j in out.get(timeout=600)]
    elapsed = time.perf_counter() - t0 - 0.5  # the idle polls before each process exits
    for p in procs:
        p.join()
    counts = Counter(ran)
    statuses = Counter(jobs.get(engine, i).status for i in ids)
    return {
        "jobs": n_jobs,
        "workers": n_workers,
        "claims_per_s": round(len(ran) / elapsed, 1),
        "exactly_once": sorted(counts) == sorted(ids) and set(counts.values()) == {1},
        "statuses": dict(statuses),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--postgres", default="postgresql+psycopg://root@/postgres?host=/var/run/postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps({"sqlite": measure(f"sqlite:///{tmp}/q.db", args.jobs, args.workers)}), flush=True)
    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    name = f"embedlab_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
        print(json.dumps({"postgresql": measure(url, args.jobs, args.workers)}), flush=True)
        get_engine(url).dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
