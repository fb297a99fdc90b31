"""`embedlab submit` and `embedlab login` against a real server with accounts on (EMBEDLAB_AUTH=on)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.auth import create_user
from app.config import Settings
from app.store.db import get_engine, init_db
from tests.conftest import free_port, wait_for

SPEC = {"dataset": "digits", "steps": 20, "eval_every": 10}


@pytest.fixture
def team_server(home, env, procs):
    """A server with accounts (no worker: submitted jobs stay queued), and ada's API token."""
    engine = get_engine(Settings(home=home).db_url)
    init_db(engine)
    _, token = create_user(engine, "ada", password=None, is_admin=False)
    engine.dispose()
    port = free_port()
    procs.start("serve", "--port", str(port), "--workers", "0", env={**env, "EMBEDLAB_AUTH": "on"})
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(url), 60, 0.2, "the server to answer")
    return url, token


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/login", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def embedlab(tmp_path: Path, env: dict, *args: str, stdin: str | None = None, **extra: str) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, with its own config folder and none of the caller's EMBEDLAB_SERVER/TOKEN."""
    clean = {k: v for k, v in env.items() if k not in ("EMBEDLAB_SERVER", "EMBEDLAB_URL", "EMBEDLAB_TOKEN")}
    run_env = {**clean, "XDG_CONFIG_HOME": str(tmp_path / "config"), **extra}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=run_env, input=stdin, capture_output=True, text=True, timeout=120)


def jobs_of(url: str, token: str) -> list[dict]:
    return httpx.get(f"{url}/api/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()["jobs"]


def test_submit_sends_the_token_from_the_flag_or_the_environment(team_server, tmp_path, env):
    url, token = team_server
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**SPEC, "name": "from the flag"}))

    refused = embedlab(tmp_path, env, "submit", str(spec), "--server", url)
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0 and "no token was sent" in refused.stderr and "embedlab login" in refused.stderr

    wrong = embedlab(tmp_path, env, "submit", str(spec), "--server", url, "--token", "not-a-token")
    assert wrong.returncode == 1 and "the token was refused" in wrong.stderr

    by_flag = embedlab(tmp_path, env, "submit", str(spec), "--server", url, "--token", token)
    assert by_flag.returncode == 0, by_flag.stderr
    by_env = embedlab(
        tmp_path, env, "submit", "-", stdin=json.dumps({**SPEC, "name": "from the env"}), EMBEDLAB_SERVER=url, EMBEDLAB_TOKEN=token
    )
    assert by_env.returncode == 0, by_env.stderr
    owned = {j["id"]: (j["name"], j["owner"]) for j in jobs_of(url, token)}
    assert owned == {int(by_flag.stdout): ("from the flag", "ada"), int(by_env.stdout): ("from the env", "ada")}


def test_login_saves_the_token_for_its_owner_only(team_server, tmp_path, env):
    url, token = team_server
    bad = embedlab(tmp_path, env, "login", "--server", url, stdin="not-a-token\n")
    assert bad.returncode == 1 and "the token was refused" in bad.stderr
    assert not (tmp_path / "config" / "embedlab" / "login.json").exists()

    ok = embedlab(tmp_path, env, "login", "--server", url, stdin=f"{token}\n")
    assert ok.returncode == 0, ok.stderr
    assert f"signed in to {url} as ada" in ok.stdout
    saved = tmp_path / "config" / "embedlab" / "login.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(saved.parent.stat().st_mode) == 0o700
    assert json.loads(saved.read_text()) == {"server": url, "token": token}

    # No --server, no token: both come from the saved login.
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**SPEC, "name": "after login"}))
    sent = embedlab(tmp_path, env, "submit", str(spec))
    assert sent.returncode == 0, sent.stderr
    assert [j["name"] for j in jobs_of(url, token)] == ["after login"]


@pytest.mark.parametrize("content, says", [(None, "no spec file"), ("{not json", "is not JSON: "), ("[1, 2]", "must hold a JSON object")])
def test_a_missing_or_broken_spec_file_is_one_line(tmp_path, env, content, says):
    spec = tmp_path / "spec.json"
    if content is not None:
        spec.write_text(content)
    result = embedlab(tmp_path, env, "submit", str(spec), "--server", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert result.stderr.startswith("embedlab: ") and says in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
