"""Load on loopback: concurrent job submissions while workers train and SSE clients stay connected.

Starts a real server with embedded workers on a temporary EMBEDLAB_HOME, opens `streams`
SSE connections on a running job, fires `submissions` POST /api/jobs at once, and checks
that every submission was stored exactly once with no 5xx. Bounded in count and time.

Usage: .venv/bin/python bench/load.py [--submissions 200] [--streams 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import served  # noqa: E402

TRAINING = {"dataset": "digits", "steps": 100_000, "eval_every": 1000, "classes_per_batch": 4, "samples_per_class": 8}


async def hold_stream(client: httpx.AsyncClient, url: str, stop: asyncio.Event, received: list[int]) -> None:
    async with client.stream("GET", url, timeout=None) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("event: metrics"):
                received.append(1)
            if stop.is_set():
                return


async def load(base: str, submissions: int, streams: int) -> dict:
    limits = httpx.Limits(max_connections=submissions + streams + 10)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        running = (await client.post("/api/jobs", json={**TRAINING, "name": "load: training"})).json()
        stop, received = asyncio.Event(), []
        holders = [asyncio.create_task(hold_stream(client, f"/api/jobs/{running['id']}/stream", stop, received)) for _ in range(streams)]
        await asyncio.sleep(1.0)

        async def submit(i: int) -> tuple[int, float, str]:
            t0 = time.perf_counter()
            r = await client.post("/api/jobs", json={"dataset": "digits", "steps": 5, "eval_every": 5, "name": f"load-{i}"})
            return r.status_code, time.perf_counter() - t0, r.text

        results = await asyncio.gather(*(submit(i) for i in range(submissions)))
        stop.set()
        await asyncio.sleep(0.5)
        for h in holders:
            h.cancel()
        await client.post(f"/api/jobs/{running['id']}/cancel")
        names = []
        offset = 0
        while True:
            page = (await client.get("/api/jobs", params={"q": "load-", "limit": 500, "offset": offset})).json()
            names += [j["name"] for j in page["jobs"]]
            offset += 500
            if offset >= page["total"]:
                break
    latencies = sorted(r[1] for r in results)
    codes = [r[0] for r in results]
    return {
        "submissions": submissions,
        "streams": streams,
        "created": codes.count(201),
        "server_errors": sum(c >= 500 for c in codes),
        "database_locked": sum("database is locked" in r[2] for r in results),
        "stored_once": sorted(names) == sorted(f"load-{i}" for i in range(submissions)),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
        "stream_events": len(received),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "EMBEDLAB_HOME": home, "EMBEDLAB_DEMO": "false", "EMBEDLAB_THREADS": "1"}
        with served(env, workers=args.workers, port=args.port) as (url, _server):
            time.sleep(8)  # let the workers import torch and start training
            print(json.dumps(asyncio.run(load(url, args.submissions, args.streams)), indent=1))


if __name__ == "__main__":
    main()
