"""The command line's side of the API: which server, which token, and one-line errors instead of tracebacks.

The token comes from `--token`, else EMBEDLAB_TOKEN, else the file `embedlab login` wrote
($XDG_CONFIG_HOME/embedlab/login.json, or ~/.config/embedlab/login.json), which only its
owner can read (0600 in a 0700 folder): a token is a password.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_SERVER = "http://127.0.0.1:8000"


class ClientError(Exception):
    """A problem the user can fix, said in one line."""


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "embedlab" / "login.json"


def saved_login() -> dict[str, str]:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ClientError(f"cannot read {path}: {e}; run `embedlab login` again") from None
    return {k: v for k, v in data.items() if k in ("server", "token") and isinstance(v, str)} if isinstance(data, dict) else {}


def save_login(server: str, token: str) -> Path:
    """Write the file readable by its owner only: created 0600 (never briefly wider), folder 0700."""
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"server": server, "token": token}, f)
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class Client:
    server: str
    token: str | None

    @classmethod
    def resolve(cls, server: str | None, token: str | None) -> Client:
        """Flags and environment first (typer fills both), then the saved login; the saved token only for its own server."""
        saved = saved_login()
        server = (server or saved.get("server") or DEFAULT_SERVER).rstrip("/")
        if token is None and saved.get("server", "").rstrip("/") == server:
            token = saved.get("token")
        return cls(server, token or None)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), **({"Authorization": f"Bearer {self.token}"} if self.token else {})}
        try:
            r = httpx.request(method, f"{self.server}{path}", headers=headers, timeout=kwargs.pop("timeout", 30), **kwargs)
        except httpx.HTTPError as e:
            raise ClientError(f"cannot reach {self.server}: {e}") from None
        if r.status_code == 401:
            said = "no token was sent" if not self.token else "the token was refused"
            raise ClientError(f"{self.server} requires an account: {said}; use --token, EMBEDLAB_TOKEN or `embedlab login`")
        return r


def read_spec(source: str, stdin_text: str | None = None) -> str:
    """The spec file's text, checked to be a JSON object ('-' reads standard input)."""
    name = "standard input" if source == "-" else source
    try:
        text = stdin_text if source == "-" else Path(source).read_text()
    except FileNotFoundError:
        raise ClientError(f"no spec file {source}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ClientError(f"cannot read {name}: {getattr(e, 'strerror', None) or e}") from None
    try:
        spec = json.loads(text or "")
    except ValueError as e:
        raise ClientError(f"{name} is not JSON: {e}") from None
    if not isinstance(spec, dict):
        raise ClientError(f"{name} must hold a JSON object (the job spec), not {type(spec).__name__}")
    return text or ""


def refusal_lines(r: httpx.Response) -> list[str]:
    """The server's reasons, one line each: `field: reason` for a wrong spec."""
    detail = r.json().get("detail") if r.headers.get("content-type", "").startswith("application/json") else r.text
    return [
        f"{item['field']}: {item['reason']}" if isinstance(item, dict) else str(item)
        for item in (detail if isinstance(detail, list) else [detail])
    ]
