"""The live stream (SSE) of a job, against a real server process: order, resume, end.

Points are written straight through app.store, as a worker would (claim, append with the
lease token, finish), so each test controls exactly what was written and when.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from app.spec import JobSpec
from app.store import jobs, metrics

READ_TIMEOUT = 20.0  # a stream silent this long fails the test instead of hanging it


class Lease:
    """A job claimed by the test, playing the worker."""

    def __init__(self, engine, name: str = "stream test"):
        jobs.submit(engine, JobSpec(name=name, steps=100_000), owner="local")
        claim = jobs.claim(engine, "test-worker", devices=("auto", "cpu"), lease_seconds=120, run_device="cpu")
        assert claim is not None
        self.engine, self.id, self.claim = engine, claim.job_id, claim

    def write(self, start: int, stop: int, name: str = "train/loss") -> None:
        points = [metrics.Point(name, step, 1.0 / step, time.time()) for step in range(start, stop)]
        assert metrics.append(self.engine, self.id, self.claim.attempt, self.claim.token, points)

    def finish(self, status: str = "succeeded") -> None:
        assert jobs.finish(self.engine, self.id, self.claim.token, status)  # type: ignore[arg-type]


def events(url: str, headers: dict[str, str] | None = None) -> Iterator[dict]:
    """Parse an SSE response into {"event", "id", "data"} dicts (comments and retry lines skipped)."""
    with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(5.0, read=READ_TIMEOUT)) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        event: dict = {}
        for line in response.iter_lines():
            if not line:
                if "event" in event:
                    event["data"] = json.loads(event["data"])
                    yield event
                event = {}
            elif line.startswith(("event: ", "id: ", "data: ")):
                key, _, value = line.partition(": ")
                event[key] = value


def points_of(collected: list[dict]) -> list[dict]:
    return [p for e in collected if e["event"] == "metrics" for p in e["data"]["points"]]


def steps_of(collected: list[dict], name: str = "train/loss") -> list[int]:
    return [p["step"] for p in points_of(collected) if p["name"] == name]


@pytest.fixture
def base(procs) -> str:
    return procs.server(workers=0)


def test_events_arrive_in_order_and_the_stream_closes_at_the_end(base, engine):
    job = Lease(engine)
    job.write(1, 101)
    collected, wrote_more = [], False
    for event in events(f"{base}/api/jobs/{job.id}/stream?after=0"):
        collected.append(event)
        if event["event"] == "metrics" and not wrote_more:
            wrote_more = True  # the rest arrives while the stream is open
            job.write(101, 201)
            job.write(1, 5, name="val/precision_at_1")
            job.finish()
    # The iterator ended: the server closed the stream after `end`.
    kinds = [e["event"] for e in collected]
    assert kinds[-1] == "end" and collected[-1]["data"] == {"status": "succeeded"}
    assert "status" in kinds
    assert steps_of(collected) == list(range(1, 201))
    assert steps_of(collected, "val/precision_at_1") == [1, 2, 3, 4]
    ids = [int(e["id"]) for e in collected if e["event"] == "metrics"]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert int(collected[-1]["id"]) == metrics.latest_id(engine, job.id)
    assert points_of(collected)[0] == {"name": "train/loss", "step": 1, "value": 1.0, "attempt": 1}


def test_resume_by_last_event_id_without_duplicates(base, engine):
    job = Lease(engine)
    job.write(1, 51)
    first = next(e for e in events(f"{base}/api/jobs/{job.id}/stream") if e["event"] == "metrics")
    assert steps_of([first]) == list(range(1, 51))
    job.write(51, 81)
    job.finish()
    # The browser's EventSource reconnects with Last-Event-ID; `?after=` does the same for a first connection.
    for how in ({"headers": {"Last-Event-ID": first["id"]}, "query": ""}, {"headers": {}, "query": f"?after={first['id']}"}):
        resumed = list(events(f"{base}/api/jobs/{job.id}/stream{how['query']}", how["headers"]))
        assert steps_of(resumed) == list(range(51, 81))
        assert resumed[-1]["event"] == "end"
    # Both given: the later one wins, so a reconnect never goes back.
    both = list(events(f"{base}/api/jobs/{job.id}/stream?after=0", {"Last-Event-ID": first["id"]}))
    assert steps_of(both) == list(range(51, 81))


def test_a_finished_job_streams_its_points_then_ends(base, engine):
    job = Lease(engine)
    job.write(1, 11)
    job.finish("failed")
    t0 = time.monotonic()
    collected = list(events(f"{base}/api/jobs/{job.id}/stream?after=0"))
    assert time.monotonic() - t0 < 5
    assert steps_of(collected) == list(range(1, 11))
    assert collected[-1] == {"event": "end", "id": str(metrics.latest_id(engine, job.id)), "data": {"status": "failed"}}
    status = next(e for e in collected if e["event"] == "status")["data"]
    assert status["status"] == "failed" and status["progress"]["total"] == 100_000
    assert status["started_at"] and status["finished_at"] and "steps_per_second" in status  # what the job page shows


def test_metrics_then_stream_from_its_last_event_id_misses_nothing(base, engine):
    """What the job page does: load the series, then stream from `last_event_id`."""
    job = Lease(engine)
    job.write(1, 31)
    loaded = httpx.get(f"{base}/api/jobs/{job.id}/metrics").json()
    assert loaded["series"]["train/loss"]["step"] == list(range(1, 31))
    job.write(31, 61)
    job.finish()
    rest = list(events(f"{base}/api/jobs/{job.id}/stream?after={loaded['last_event_id']}"))
    assert steps_of(rest) == list(range(31, 61))


def test_the_end_comes_after_every_point_of_a_big_final_burst(base, engine):
    """A burst larger than one database read, written just before the job ends, is delivered in full
    before `end` (a watcher holds the job's feed open, as a browser on the job page would)."""
    for _ in range(3):
        job = Lease(engine)
        job.write(1, 2)
        first_id = metrics.latest_id(engine, job.id)
        watcher = threading.Thread(target=lambda job=job: list(events(f"{base}/api/jobs/{job.id}/stream")), daemon=True)
        watcher.start()
        time.sleep(0.6)  # the feed is polling
        job.write(2, 12_002)
        job.finish()
        collected = list(events(f"{base}/api/jobs/{job.id}/stream?after={first_id}"))
        assert collected[-1]["event"] == "end"
        assert steps_of(collected) == list(range(2, 12_002))
        watcher.join(10)


def test_two_watchers_see_the_same_points(base, engine):
    job = Lease(engine)
    job.write(1, 21)
    results: list[list[int]] = [[], []]

    def watch(i: int) -> None:
        results[i] = steps_of(list(events(f"{base}/api/jobs/{job.id}/stream?after=0")))

    threads = [threading.Thread(target=watch, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.8)
    job.write(21, 41)
    time.sleep(0.3)
    job.write(41, 61)
    job.finish()
    for t in threads:
        t.join(30)
    assert results[0] == results[1] == list(range(1, 61))


def test_unknown_job_is_404(base):
    r = httpx.get(f"{base}/api/jobs/999999/stream", timeout=5)
    assert r.status_code == 404


@pytest.mark.parametrize("header", [b"\xb2", b"12x", b"-5", b"9" * 5000, b"9" * 20])
def test_an_odd_last_event_id_is_ignored_or_bounded(base, engine, header):
    """Latin-1 digits such as '²' pass str.isdigit() but not int(): the stream must not answer 500."""
    job = Lease(engine)
    job.write(1, 4)
    job.finish()
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT) as s:
        s.sendall(b"GET /api/jobs/%d/stream HTTP/1.1\r\nHost: test\r\nLast-Event-ID: %s\r\nConnection: close\r\n\r\n" % (job.id, header))
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b"event: end" in answer
    if header.isdigit() and len(header) <= 20:
        assert b"event: metrics" not in answer  # an id past every point: nothing to resend
    else:
        assert b'"step":3' in answer  # ignored: the stream starts from the beginning
