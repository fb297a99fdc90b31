"""Accounts on (EMBEDLAB_AUTH=on), in Chromium: sign in, write through the pages with the CSRF token, owners, sign out."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.auth import create_user
from app.config import Settings
from app.signin_limit import NAME_LIMIT
from app.store.db import get_engine, init_db
from tests.conftest import TEST_ENV, Processes, free_port, wait_for
from tests.e2e.conftest import screenshot, wait_js
from tests.e2e.test_dashboard import SMALL, fill_form, real_errors

pytestmark = pytest.mark.e2e
PASSWORD = "correct horse battery"


class Team:
    def __init__(self, url: str, tokens: dict[str, str]):
        self.url, self.tokens = url, tokens


@pytest.fixture(scope="module")
def team(tmp_path_factory) -> Iterator[Team]:
    root = tmp_path_factory.mktemp("e2e-auth")
    home = root / "home"
    home.mkdir()
    engine = get_engine(Settings(home=Path(home)).db_url)
    init_db(engine)
    tokens = {name: create_user(engine, name, password=PASSWORD, is_admin=name == "ada")[1] for name in ("ada", "bob")}
    engine.dispose()
    env = {**os.environ, **TEST_ENV, "EMBEDLAB_HOME": str(home), "EMBEDLAB_AUTH": "on", "PYTHONUNBUFFERED": "1"}
    env.pop("EMBEDLAB_DATABASE_URL", None)
    procs = Processes(env, root)
    port = free_port()
    procs.start("serve", "--port", str(port), "--workers", "0")
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/login", timeout=2).status_code == 200  # /api/jobs answers 401 now
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 60, 0.2, "the server to answer")
        yield Team(url, tokens)
    finally:
        procs.stop_all()


def sign_in(page, name: str, password: str) -> None:
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("#login-form button[type=submit]")


def test_sign_in_submit_cancel_sign_out(team, page):
    page.goto(f"{team.url}/jobs/new")
    assert re.search(r"/login\?next=/jobs/new$", page.url), page.url
    assert page.locator("nav.nav").count() == 0  # nothing to navigate to before signing in
    screenshot(page, "login")

    sign_in(page, "ada", "not the password")
    error = page.locator("#login-error")
    error.wait_for(state="visible")
    assert error.inner_text() == "Wrong name, password or token."

    sign_in(page, "ada", PASSWORD)
    page.wait_for_url(f"{team.url}/jobs/new")
    assert "ada" in page.locator(".account").inner_text()

    # The form's POST carries X-CSRF-Token (from GET /api/me): without it the API would answer 403.
    fill_form(page, {**SMALL, "name": "signed in"})
    page.click("#submit")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    job = httpx.get(f"{team.url}/api/jobs/{job_id}", headers={"Authorization": f"Bearer {team.tokens['ada']}"}).json()
    assert job["owner"] == "ada" and job["status"] == "queued"

    page.on("dialog", lambda d: d.accept())
    page.click("#cancel")
    wait_js(page, "document.getElementById('status').textContent === 'cancelled'")
    assert not real_errors(page)

    page.click("#sign-out")
    page.wait_for_url(re.compile(r"/login"))
    page.goto(f"{team.url}/")
    assert "/login?next=/" in page.url


def test_someone_elses_job_cannot_be_cancelled(team, page):
    made = httpx.post(
        f"{team.url}/api/jobs", json={**SMALL, "name": "ada's job"}, headers={"Authorization": f"Bearer {team.tokens['ada']}"}
    )
    assert made.status_code == 201, made.text
    job_id = made.json()["id"]
    page.goto(f"{team.url}/login?next=/jobs/{job_id}")
    # An API token also signs in (under "Use an API token instead").
    page.click("summary")
    page.fill("input[name=token]", team.tokens["bob"])
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{team.url}/jobs/{job_id}")
    assert "bob" in page.locator(".account").inner_text()
    page.on("dialog", lambda d: d.accept())
    page.locator("#cancel").wait_for(state="visible")
    page.click("#cancel")
    message = page.locator("#action-error")
    message.wait_for(state="visible")
    assert "only ada (the owner) or an admin can change this job" in message.inner_text()
    assert page.locator("#status").inner_text() == "queued"
    screenshot(page, "job-cancel-refused")


def test_too_many_wrong_passwords_show_the_wait(team, page):
    page.goto(f"{team.url}/login")
    error = page.locator("#login-error")
    for _ in range(NAME_LIMIT):
        sign_in(page, "nobody-here", "not the password")
        wait_js(page, "document.getElementById('login-error').textContent === 'Wrong name, password or token.'")
        page.evaluate("document.getElementById('login-error').textContent = ''")
    sign_in(page, "nobody-here", "not the password")
    wait_js(page, "document.getElementById('login-error').textContent.startsWith('Too many')")
    assert re.fullmatch(r"Too many failed sign-ins for the name 'nobody-here': try again in \d+ min \d+ s\.", error.inner_text())
    assert not real_errors(page)
