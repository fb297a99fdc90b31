"""docker-compose.yml and the Dockerfile (no Docker engine here): structure, and every command exists."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml
from typer.testing import CliRunner

from app.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def runs(argv: list[str]) -> None:
    """The CLI accepts `argv` (embedlab ...): with --help appended, click parses every option
    (an unknown command or option exits 2) and then prints help instead of running it."""
    assert argv[0] == "embedlab", argv
    result = CliRunner().invoke(cli, [*argv[1:], "--help"])
    assert result.exit_code == 0, (argv, result.output)


def test_services_and_their_contract():
    c = compose()
    assert set(c["services"]) == {"db", "app", "worker"}
    db = c["services"]["db"]
    assert db["image"].startswith("postgres:16") and "healthcheck" in db and db["volumes"]
    for name in ("app", "worker"):
        svc = c["services"][name]
        assert svc["build"] == "."
        assert svc["environment"]["EMBEDLAB_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert svc["depends_on"]["db"]["condition"] == "service_healthy"
        assert any(v.endswith(":/data") for v in svc["volumes"])  # one shared artifact store
    gpu = c["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert "container_name" not in c["services"]["worker"]  # so --scale worker=N works


def test_every_command_named_exists_in_the_cli():
    c = compose()
    for svc in c["services"].values():
        if "command" in svc and svc.get("build"):
            runs(svc["command"])
    for line in (ROOT / "docker-compose.yml").read_text().splitlines():  # the commands in its header comment
        if "embedlab " in line and line.lstrip().startswith("#"):
            argv = shlex.split(line.split("run --rm app", 1)[-1]) if "run --rm app" in line else None
            if argv:
                runs(argv)
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = next(line for line in dockerfile.splitlines() if line.startswith("CMD"))
    runs(yaml.safe_load(cmd[4:]))
