"""What the dashboard asks of the server, timed on a real server process on loopback.

1. Opening a job with 100,000 logged steps: GET /api/jobs/{id}/metrics (the job page's
   first read; target < 1 s), and a zoomed read of 10,000 steps.
2. The jobs list with 1,000 jobs: GET /api/jobs (one page of 50, filtered, far pages) and GET /.
3. Live delay: a point written through app.store (as a worker writes it) until its SSE event
   reaches a client, median and p95, against a direct database read of the same point in the same run.

Everything is written into a temporary EMBEDLAB_HOME; loops are bounded.
Usage: .venv/bin/python bench/dashboard.py [--steps 100000] [--jobs 1000] [--samples 60]
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.spec import JobSpec  # noqa: E402
from app.store import jobs, metrics  # noqa: E402
from app.store.db import get_engine, init_db  # noqa: E402
from bench.load import start_server  # noqa: E402

# What static/job.js reads on opening a job: the loss and retrieval charts, then the per-step diagnostics.
PAGE_NAMES = "train/loss,val/loss,val/precision_at_1,val/r_precision,val/mean_average_precision_at_r"
HARDNESS = ("train/triplets_easy", "train/triplets_semihard", "train/triplets_hard")
DIAGNOSTIC_NAMES = ",".join((*HARDNESS, "train/active_pairs"))
VAL_NAMES = ("val/loss", "val/precision_at_1", "val/r_precision", "val/mean_average_precision_at_r", "val/distance_overlap")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def claimed_job(engine, name: str, steps: int) -> jobs.Claim:
    """A job in `running` with a lease held by this script, so metrics.append accepts its points."""
    row = jobs.submit(
        engine, JobSpec(name=name, steps=steps, priority=100), owner="bench", max_attempts=1
    )  # claimed before the queued list
    claim = jobs.claim(engine, "bench", devices=("auto", "cpu"), lease_seconds=3600, run_device="cpu")
    assert claim is not None and claim.job_id == row.id, "another job was claimed"
    return claim


def log_run(engine, claim: jobs.Claim, steps: int, eval_every: int) -> int:
    """A triplet job's worth of points: train/loss and the three hardness shares per step, val/* at each evaluation."""
    rng = np.random.default_rng(0)
    loss = 0.3 * np.exp(-np.arange(1, steps + 1) / (steps / 4)) + 0.02 * rng.random(steps)
    now, written, batch = time.time(), 0, []
    for step in range(1, steps + 1):
        batch += [metrics.Point("train/loss", step, float(loss[step - 1]), now), *(metrics.Point(n, step, 1 / 3, now) for n in HARDNESS)]
        if step % eval_every == 0:
            batch += [metrics.Point(n, step, float(rng.random()), now) for n in VAL_NAMES]
        if len(batch) >= 20_000 or step == steps:
            assert metrics.append(engine, claim.job_id, claim.attempt, claim.token, batch)
            written += len(batch)
            batch = []
    return written


def timed_get(client: httpx.Client, path: str, repeat: int, **params) -> dict:
    times, size = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(path, params=params)
        times.append(time.perf_counter() - t0)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
        size = len(r.content)
    return {"median_ms": round(1000 * statistics.median(times), 1), "max_ms": round(1000 * max(times), 1), "bytes": size}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def stream_delay(base: str, engine, samples: int) -> dict:
    """Write one point at a time; time until the SSE client has it, and until a direct read of the database has it."""
    claim = claimed_job(engine, "bench: live", samples + 10)
    received: dict[int, float] = {}
    ready = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{base}/api/jobs/{claim.job_id}/stream", timeout=httpx.Timeout(10, read=30)) as r:
            for line in r.iter_lines():
                ready.set()
                if line.startswith("data: ") and '"points"' in line:
                    now = time.perf_counter()
                    for p in json.loads(line[6:])["points"]:
                        received.setdefault(p["step"], now)
                if line.startswith("event: end"):
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    ready.wait(10)
    time.sleep(0.5)
    sse, direct = [], []
    for step in range(1, samples + 1):
        t0 = time.perf_counter()
        assert metrics.append(engine, claim.job_id, claim.attempt, claim.token, [metrics.Point("train/loss", step, 1.0, time.time())])
        rows = metrics.since(engine, claim.job_id, metrics.latest_id(engine, claim.job_id) - 1)
        direct.append(time.perf_counter() - t0)
        assert rows and rows[-1]["step"] == step
        deadline = time.monotonic() + 5
        while step not in received and time.monotonic() < deadline:
            time.sleep(0.001)
        assert step in received, f"step {step} never arrived"
        sse.append(received[step] - t0)
        time.sleep(random.uniform(0.05, 0.3))  # out of phase with the server's poll
    jobs.finish(engine, claim.job_id, claim.token, "succeeded")
    listener.join(10)
    return {
        "samples": samples,
        "sse_median_ms": round(1000 * statistics.median(sse), 1),
        "sse_p95_ms": round(1000 * percentile(sse, 0.95), 1),
        "direct_read_median_ms": round(1000 * statistics.median(direct), 1),
        "direct_read_p95_ms": round(1000 * percentile(direct, 0.95), 1),
        "sse_over_direct_median": round(statistics.median(sse) / statistics.median(direct), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=60, help="points timed through the live stream")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as home:
        engine = get_engine(Settings(home=Path(home)).db_url)
        init_db(engine)
        t0 = time.perf_counter()
        long_run = claimed_job(engine, "bench: 100k steps", args.steps)
        points = log_run(engine, long_run, args.steps, eval_every=100)
        # The list: jobs in every state, the long run among them.
        specs = [JobSpec(name=f"bench list {i}", steps=300, margin=round(0.05 * (i % 10), 2)) for i in range(args.jobs - 2)]
        jobs.submit_many(engine, specs, owner="bench", max_attempts=1)
        setup_s = time.perf_counter() - t0

        port = free_port()
        server = start_server(home, port, workers=0)
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                job = f"/api/jobs/{long_run.job_id}"
                client.get(f"{job}/metrics")  # warm: first connection, page cache
                mid = args.steps // 2
                report = {
                    "setup": {"metric_points": points, "jobs": args.jobs, "seconds": round(setup_s, 1)},
                    "open_job_100k_steps": {
                        "metrics_all_names": timed_get(client, f"{job}/metrics", args.repeat),
                        "metrics_page_names": timed_get(client, f"{job}/metrics", args.repeat, names=PAGE_NAMES),
                        "then_diagnostics": timed_get(client, f"{job}/metrics", args.repeat, names=DIAGNOSTIC_NAMES),
                        "zoom_10k_steps": timed_get(
                            client, f"{job}/metrics", args.repeat, names="train/loss,val/loss", step_min=mid - 5000, step_max=mid + 5000
                        ),
                        "job_page_html": timed_get(client, f"/jobs/{long_run.job_id}", args.repeat),
                        "target_ms": 1000,
                    },
                    "list_1000_jobs": {
                        "api_jobs_first_page": timed_get(client, "/api/jobs", args.repeat, limit=50),
                        "api_jobs_last_page": timed_get(client, "/api/jobs", args.repeat, limit=50, offset=args.jobs - 50),
                        "api_jobs_search": timed_get(client, "/api/jobs", args.repeat, limit=50, q="list 99"),
                        "api_jobs_status_filter": timed_get(client, "/api/jobs", args.repeat, limit=50, status="queued"),
                        "jobs_page_html": timed_get(client, "/", args.repeat),
                    },
                }
            report["live_delay"] = stream_delay(base, engine, args.samples)
        finally:
            server.terminate()
            server.wait(30)
    print(json.dumps(report, indent=1))
    opened = report["open_job_100k_steps"]["metrics_page_names"]["median_ms"]
    diagnostics = report["open_job_100k_steps"]["then_diagnostics"]["median_ms"]
    print(
        f"\nopen a 100k-step job: {opened} ms (target < 1000 ms: {'met' if opened < 1000 else 'MISSED'}), its hardness chart {diagnostics} ms later; "
        f"live delay median {report['live_delay']['sse_median_ms']} ms, p95 {report['live_delay']['sse_p95_ms']} ms, "
        f"{report['live_delay']['sse_over_direct_median']}x a direct database read"
    )


if __name__ == "__main__":
    main()
