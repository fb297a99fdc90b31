"""The jobs `embedlab serve` queues on an empty database, so a first visit has something to look at.

One worker takes them in order. The first is small enough to finish in about a minute on two
cores, and with `split: samples` (validation images of the classes it trains on) its retrieval
visibly improves over step 0 (MAP@R 0.43 -> 0.92 measured, bench/demo.py); the second is the
longer mnist5k run that is still training, live, when the visitor comes back to the jobs list.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from app.config import Settings
from app.spec import JobSpec
from app.store import jobs

log = logging.getLogger("embedlab")

DEMO_SPECS = [
    {
        "name": "demo 1/2: triplet on digits, a quick finished run",
        "dataset": "digits",
        "split": "samples",
        "loss": "triplet",
        "margin": 0.2,
        "miner": "semihard",
        "steps": 80,
        "eval_every": 20,
    },
    {
        "name": "demo 2/2: triplet m=0.2 on mnist5k, a longer live run",
        "dataset": "mnist5k",
        "loss": "triplet",
        "margin": 0.2,
        "miner": "semihard",
        "steps": 1500,
        "eval_every": 100,
    },
]


def queue_demo(engine: Engine, settings: Settings) -> list[int]:
    """Queue the demo jobs when the database has no job at all (and EMBEDLAB_DEMO is on); their ids."""
    if not settings.demo or jobs.list_jobs(engine, limit=1)[1]:
        return []
    rows = jobs.submit_many(engine, [JobSpec.model_validate(s) for s in DEMO_SPECS], owner="local", max_attempts=settings.max_attempts)
    log.info("empty database: queued demo jobs %s", ", ".join(str(r.id) for r in rows))
    return [r.id for r in rows]
