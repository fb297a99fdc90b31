"""One database poll per watched job, however many browsers watch it.

A Feed polls the job row and its new metric points every POLL_SECONDS and keeps the
recent batches; each stream serves its client from them, and reads the database itself
only to catch up from an older event id. The feed reads the database, not process
memory, so points written by workers on any host arrive.
"""

from __future__ import annotations

import asyncio
from collections import deque

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app.store import jobs, metrics
from app.store.rows import JobRow

POLL_SECONDS = 0.25
KEPT_BATCHES = 256
READ_LIMIT = 5000  # points per database read


class Feed:
    def __init__(self, engine: Engine, job_id: int, start_id: int):
        self.engine, self.job_id = engine, job_id
        self.cursor = start_id  # last event id seen
        self.batches: deque[tuple[int, int, list[dict]]] = deque(maxlen=KEPT_BATCHES)  # (after_id, last_id, points)
        self.job: JobRow | None = None
        self.viewers = 0
        self.tick = asyncio.Event()
        self.task: asyncio.Task | None = None

    def oldest_covered(self) -> int:
        return self.batches[0][0] if self.batches else self.cursor

    def points_after(self, cursor: int) -> list[dict] | None:
        """Points after `cursor` from memory, or None when the client is behind what the feed kept."""
        if cursor < self.oldest_covered():
            return None
        return [p for _, last, batch in self.batches if last > cursor for p in batch if p["id"] > cursor]

    async def run(self) -> None:
        while self.viewers > 0:
            # Job first, points second: a worker flushes its points before it records the end,
            # so a terminal status read here comes with every point of the job. Every point, so
            # the read goes on past one `since` page; and the job is published only with them,
            # since a stream ends as soon as it sees a terminal job and no newer point.
            job = await run_in_threadpool(jobs.get, self.engine, self.job_id)
            while points := await run_in_threadpool(metrics.since, self.engine, self.job_id, self.cursor, READ_LIMIT):
                self.batches.append((self.cursor, points[-1]["id"], points))
                self.cursor = points[-1]["id"]
                if len(points) < READ_LIMIT:
                    break
            self.job = job
            self.tick.set()
            self.tick = asyncio.Event()
            await asyncio.sleep(POLL_SECONDS)


class Feeds:
    """The feeds of one app, created on the first viewer and stopped after the last leaves."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.by_job: dict[int, Feed] = {}

    async def join(self, job_id: int) -> Feed:
        feed = self.by_job.get(job_id)
        if feed is None:
            start = await run_in_threadpool(metrics.latest_id, self.engine, job_id)
            # Another viewer of the job may have created its feed during the read: share that one.
            feed = self.by_job.setdefault(job_id, Feed(self.engine, job_id, start))
        feed.viewers += 1
        if feed.task is None or feed.task.done():
            feed.task = asyncio.create_task(feed.run())
        return feed

    def leave(self, feed: Feed) -> None:
        feed.viewers -= 1
        if feed.viewers <= 0 and self.by_job.get(feed.job_id) is feed:
            del self.by_job[feed.job_id]
