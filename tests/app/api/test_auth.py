"""Accounts on: every route needs an identity, owners and admins, sessions with CSRF."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route

from app import auth
from app.auth import MIN_PASSWORD_LENGTH, create_user, is_public
from app.config import Settings
from app.main import create_app
from app.signin_limit import ADDRESS_LIMIT, NAME_LIMIT, WINDOW_SECONDS, Refused, SignInLimiter, address_key
from app.store import jobs
from app.store.db import get_engine

JOB = {"dataset": "digits", "steps": 10}


@pytest.fixture
def team(home):
    settings = Settings(home=home, auth="on", demo=False)
    app = create_app(settings)
    engine = get_engine(settings.db_url)
    _, admin = create_user(engine, "ada", password="correct horse battery", is_admin=True)
    _, bob = create_user(engine, "bob", password="bob's long password", is_admin=False)
    _, cy = create_user(engine, "cy", password=None, is_admin=False)
    with TestClient(app) as client:
        yield client, {"ada": admin, "bob": bob, "cy": cy}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def all_routes(routes):
    """Every endpoint of the app, through included routers (however FastAPI nests them)."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from all_routes(route.original_router.routes)
        elif isinstance(route, (APIRoute, Route)):
            yield route


def test_every_route_refuses_a_request_without_identity(team):
    client, tokens = team
    job_id = client.post("/api/jobs", json=JOB, headers=bearer(tokens["bob"])).json()["id"]
    checked = 0
    for route in all_routes(client.app.routes):
        if is_public(route.path):
            continue
        path = route.path.replace("{job_id}", str(job_id)).replace("{sweep_id}", "1").replace("{artifact}", "checkpoint")
        path = path.replace("{index}", "0").replace("{name}", "x").replace("{path:path}", "x")
        for method in route.methods - {"HEAD", "OPTIONS"}:
            r = client.request(method, path, follow_redirects=False)
            if path.startswith("/api/"):
                assert r.status_code == 401, (method, path, r.status_code)
            else:
                assert r.status_code == 303 and r.headers["location"].startswith("/login"), (method, path)
            checked += 1
    assert checked >= 10


def test_tokens(team):
    client, tokens = team
    assert client.get("/api/jobs", headers=bearer("el_wrong")).status_code == 401
    assert client.get("/api/jobs", headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.get("/api/jobs", params={"token": tokens["bob"]}).status_code == 401  # never from the URL
    assert client.get("/api/jobs", headers=bearer(tokens["bob"])).status_code == 200
    assert client.get("/api/me", headers=bearer(tokens["cy"])).json()["name"] == "cy"


def test_only_owner_or_admin_may_cancel(team, home):
    client, tokens = team
    job = client.post("/api/jobs", json=JOB, headers=bearer(tokens["bob"])).json()
    assert job["owner"] == "bob"
    assert client.get(f"/api/jobs/{job['id']}", headers=bearer(tokens["cy"])).status_code == 200  # everyone reads
    r = client.post(f"/api/jobs/{job['id']}/cancel", headers=bearer(tokens["cy"]))
    assert r.status_code == 403 and "bob" in r.json()["detail"]
    assert client.post(f"/api/jobs/{job['id']}/cancel", headers=bearer(tokens["ada"])).json()["status"] == "cancelled"
    sweep = client.post("/api/sweeps", json={"base": JOB, "grid": {"margin": [0.1, 0.2]}}, headers=bearer(tokens["bob"])).json()
    assert client.post(f"/api/sweeps/{sweep['id']}/cancel", headers=bearer(tokens["cy"])).status_code == 403
    assert client.post(f"/api/sweeps/{sweep['id']}/cancel", headers=bearer(tokens["bob"])).status_code == 200


def test_browser_session_needs_csrf_for_writes(team):
    client, _ = team
    assert client.post("/api/session", json={"name": "bob", "password": "wrong password!"}).status_code == 401
    r = client.post("/api/session", json={"name": "bob", "password": "bob's long password"})
    assert r.status_code == 200
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    csrf = r.json()["csrf_token"]
    assert client.get("/api/jobs").status_code == 200  # the cookie alone reads
    assert client.post("/api/jobs", json=JOB).status_code == 403  # but does not write
    assert client.post("/api/jobs", json=JOB, headers={"X-CSRF-Token": "nope"}).status_code == 403
    made = client.post("/api/jobs", json=JOB, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201 and made.json()["owner"] == "bob"
    assert client.delete("/api/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get("/api/jobs").status_code == 401


def test_passwords_and_names(home):
    engine = get_engine(Settings(home=home).db_url)
    from app.store.db import init_db

    init_db(engine)
    with pytest.raises(ValueError, match=f"at least {MIN_PASSWORD_LENGTH}"):
        create_user(engine, "dee", password="short", is_admin=False)
    with pytest.raises(ValueError, match="letters"):
        create_user(engine, "../x", password=None, is_admin=False)
    create_user(engine, "dee", password=None, is_admin=False)
    with pytest.raises(ValueError, match="already exists"):
        create_user(engine, "dee", password=None, is_admin=False)


def test_cli_user_add_prints_token_last_and_serve_refuses_open_bind(env):
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "user", "add", "eve", "--admin"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    assert token.startswith("el_") and len(token) > 30
    refused = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--host", "0.0.0.0", "--workers", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "EMBEDLAB_AUTH=on" in refused.stderr and "Traceback" not in refused.stderr


def test_per_user_running_limit(engine):
    from app.spec import JobSpec

    for owner in ("bob", "bob", "cy"):
        jobs.submit(engine, JobSpec(dataset="digits"), owner=owner)
    take = lambda: jobs.claim(engine, "w", devices=("auto",), lease_seconds=30, run_device="cpu", max_running_per_user=1)  # noqa: E731
    first, second = take(), take()
    assert jobs.get(engine, first.job_id).owner == "bob" and jobs.get(engine, second.job_id).owner == "cy"
    assert take() is None  # bob's second job waits for his first
    jobs.finish(engine, first.job_id, first.token, "succeeded")
    assert jobs.get(engine, take().job_id).owner == "bob"


# -- sign-in throttling --------------------------------------------------------


class Clock:
    """The limiter's time, moved by the test (no sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def throttled(team):
    """The team's app with its sign-in limiter on a test clock; a client per address."""
    client, _ = team
    clock = Clock()
    client.app.state.sign_in_limiter = SignInLimiter(clock=clock)
    clients = {}

    def from_address(host: str) -> TestClient:
        if host not in clients:
            clients[host] = TestClient(client.app, client=(host, 40000))
        return clients[host]

    return from_address, clock


def test_wrong_passwords_then_429_even_for_the_right_one(throttled):
    from_address, clock = throttled
    alice = from_address("10.0.0.1")
    for _ in range(NAME_LIMIT):
        assert alice.post("/api/session", json={"name": "bob", "password": "a wrong guess"}).status_code == 401
    r = alice.post("/api/session", json={"name": "bob", "password": "bob's long password"})
    assert r.status_code == 429 and "set-cookie" not in r.headers
    wait = int(r.headers["retry-after"])
    assert 0 < wait <= WINDOW_SECONDS and "too many failed sign-ins for the name 'bob'" in r.json()["detail"]
    # From another address too (the name is what is guessed), but another name from there is unaffected.
    other = from_address("10.0.0.2")
    assert other.post("/api/session", json={"name": "bob", "password": "bob's long password"}).status_code == 429
    assert other.post("/api/session", json={"name": "ada", "password": "correct horse battery"}).status_code == 200
    # After the window the right password works, and it clears the name's count.
    clock.now += wait
    assert alice.post("/api/session", json={"name": "bob", "password": "bob's long password"}).status_code == 200
    assert alice.post("/api/session", json={"name": "bob", "password": "a wrong guess"}).status_code == 401


def test_one_address_guessing_many_names_is_limited_alone(throttled):
    from_address, clock = throttled
    guesser = from_address("10.0.0.3")
    for i in range(ADDRESS_LIMIT):
        assert guesser.post("/api/session", json={"name": f"user{i % 5}", "password": "a wrong guess"}).status_code == 401
    r = guesser.post("/api/session", json={"name": "ada", "password": "correct horse battery"})
    assert r.status_code == 429 and "from this address" in r.json()["detail"] and int(r.headers["retry-after"]) > 0
    # A token sign-in from that address is refused as well; every other address signs in.
    assert guesser.post("/api/session", json={"token": "el_guess"}).status_code == 429
    assert from_address("10.0.0.4").post("/api/session", json={"name": "ada", "password": "correct horse battery"}).status_code == 200
    clock.now += WINDOW_SECONDS
    assert guesser.post("/api/session", json={"name": "ada", "password": "correct horse battery"}).status_code == 200


def test_parallel_guesses_cannot_outrun_the_count(throttled):
    from concurrent.futures import ThreadPoolExecutor

    from_address, _ = throttled
    guesser = from_address("10.0.0.5")
    with ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(
                lambda _: guesser.post("/api/session", json={"name": "ada", "password": "a wrong guess"}).status_code, range(3 * NAME_LIMIT)
            )
        )
    assert codes.count(401) == NAME_LIMIT and codes.count(429) == 2 * NAME_LIMIT


def test_the_limiter_memory_is_bounded():
    clock = Clock()
    limiter = SignInLimiter(max_keys=1000, clock=clock)
    for i in range(20_000):
        assert not isinstance(limiter.attempt(f"name{i}", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"), Refused)
    assert len(limiter.names.keys) == 1000 and len(limiter.addresses.keys) == 1000
    assert all(len(times) <= limiter.name_limit for times in limiter.names.keys.values())
    # The most recent keys are the ones kept: the last name is still counted.
    for _ in range(NAME_LIMIT - 1):
        limiter.attempt("name19999", "192.0.2.1")
    assert isinstance(limiter.attempt("name19999", "192.0.2.2"), Refused)


def test_ipv6_clients_are_counted_per_64_prefix():
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9") != address_key("2001:db8:1:3::1")
    assert address_key("192.0.2.7") == "192.0.2.7" and address_key(None) == "?"


def test_unknown_names_cost_the_same_hashing_as_real_ones(team, monkeypatch):
    client, _ = team
    calls: list[tuple[int, int]] = []
    real = auth._scrypt

    def counted(password: str, salt: bytes) -> bytes:
        calls.append((len(password), len(salt)))
        return real(password, salt)

    monkeypatch.setattr(auth, "_scrypt", counted)
    # A real name with a wrong password, a real name without a password, an unknown name: one scrypt each, same shape.
    for name in ("bob", "cy", "nobody-by-that-name"):
        calls.clear()
        r = client.post("/api/session", json={"name": name, "password": "a wrong guess"})
        assert r.status_code == 401 and r.json()["detail"] == "wrong name, password or token"
        assert calls == [(len("a wrong guess"), 16)], name
