"""Oversized bodies are refused with 413 before the server reads them; nothing is stored."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

from app.middleware import DEFAULT_LIMIT


def test_a_job_spec_over_the_limit_is_413_and_not_stored(client):
    padding = "x" * (DEFAULT_LIMIT + 10)
    r = client.post("/api/jobs", content=f'{{"dataset": "digits", "name": "{padding}"}}', headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert "larger than this route accepts (1,024 KiB)" in r.json()["detail"]
    assert client.get("/api/jobs").json()["total"] == 0
    assert client.post("/api/jobs", json={"dataset": "digits"}).status_code == 201  # a normal spec still goes through


def test_a_chunked_body_is_cut_off_at_the_limit(client):
    def chunks():
        yield b'{"dataset": "digits", "name": "'
        for _ in range(DEFAULT_LIMIT // 65536 + 2):
            yield b"y" * 65536
        yield b'"}'

    r = client.post("/api/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert client.get("/api/jobs").json()["total"] == 0


def test_a_declared_10_gib_body_is_refused_at_once(procs):
    """Over a real socket: the headers alone get the answer; the server never waits for the 10 GiB."""
    url = urlparse(procs.server())
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        started = time.monotonic()
        s.sendall(
            b"POST /api/jobs/1/neighbors HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 10737418240\r\n\r\n"
        )
        reply = b""
        while chunk := s.recv(4096):  # the server closes the connection after its answer
            reply += chunk
        reply = reply.decode()
        assert time.monotonic() - started < 5
    assert reply.startswith("HTTP/1.1 413"), reply
    assert "larger than this route accepts (21,504 KiB)" in reply
