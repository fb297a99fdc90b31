"""Who is asking: API tokens (Authorization: Bearer), browser sessions (cookie + CSRF), or nobody.

With EMBEDLAB_AUTH=off everyone is the single local user. With it on, every route but
the few in PUBLIC_PATHS needs an identity; that rule is applied once, to the whole app,
so a new route cannot forget it. Tokens are only read from the Authorization header,
never from the URL (URLs end up in logs and browser history).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from fastapi import HTTPException, Request
from sqlalchemy import Engine

from app.store import users
from app.store.models import utcnow

SESSION_COOKIE = "embedlab_session"
SESSION_DAYS = 14
MIN_PASSWORD_LENGTH = 10
# Reachable without an identity: the sign-in page and call, static files, the API schema and its docs.
PUBLIC_PATHS = ("/login", "/api/session", "/static/", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Identity:
    name: str
    is_admin: bool
    csrf_token: str | None = None  # set for browser sessions

    def may_change(self, owner: str) -> bool:
        return self.is_admin or self.name == owner


LOCAL = Identity("local", True)


def hash_token(token: str) -> str:
    """Tokens are long random strings: a plain SHA-256 is enough and keeps lookups indexed."""
    return hashlib.sha256(token.encode()).hexdigest()


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    return f"scrypt${salt.hex()}${_scrypt(password, salt).hex()}"


# Checked when a name is unknown or has no password, so that every name costs one scrypt (no timing tell).
_DUMMY_HASH = f"scrypt${'00' * 16}${'00' * 64}"


def check_password(password: str, stored: str | None) -> bool:
    usable = bool(stored) and stored.startswith("scrypt$") and stored.count("$") == 2
    _, salt, digest = (stored if usable else _DUMMY_HASH).split("$")
    matches = hmac.compare_digest(_scrypt(password, bytes.fromhex(salt)).hex(), digest)
    return usable and matches


def create_user(engine: Engine, name: str, *, password: str | None, is_admin: bool) -> tuple[dict, str]:
    """A new account and its API token (shown once, stored hashed)."""
    if not name or len(name) > 100 or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ValueError("a user name is 1-100 letters, digits, '-', '_' or '.'")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if users.exists(engine, name):
        raise ValueError(f"user {name!r} already exists")
    token = "el_" + secrets.token_urlsafe(32)
    user = users.add(
        engine, name, token_hash=hash_token(token), password_hash=hash_password(password) if password else None, is_admin=is_admin
    )
    return user, token


def sign_in(engine: Engine, name: str, *, password: str | None = None, token: str | None = None) -> tuple[Identity, str] | None:
    """Check a name + password (or an API token) and open a session; returns the identity and the cookie value."""
    user = None
    if token:
        user = users.by_token_hash(engine, hash_token(token))
    elif password is not None:
        found = users.password_hash_of(engine, name)
        # Unknown names and password-less accounts hash too: the same work as a wrong password.
        if check_password(password, found[1] if found else None) and found:
            user = found[0]
    if user is None:
        return None
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    users.open_session(
        engine, user["id"], id_hash=hash_token(session_id), csrf_token=csrf, expires_at=utcnow() + timedelta(days=SESSION_DAYS)
    )
    return Identity(user["name"], user["is_admin"], csrf), session_id


def identify(request: Request, engine: Engine, auth_on: bool) -> Identity | None:
    if not auth_on:
        return LOCAL
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        user = users.by_token_hash(engine, hash_token(token.strip()))
        return Identity(user["name"], user["is_admin"]) if user else None
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        found = users.by_session(engine, hash_token(cookie))
        if found:
            user, csrf = found
            return Identity(user["name"], user["is_admin"], csrf)
    return None


def is_public(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in PUBLIC_PATHS)


def check_csrf(request: Request, identity: Identity) -> None:
    """Cookie-authenticated writes must echo the session's CSRF token (a header a foreign page cannot set)."""
    if identity.csrf_token is None or request.method in SAFE_METHODS:
        return
    sent = request.headers.get("x-csrf-token", "")
    if not hmac.compare_digest(sent, identity.csrf_token):
        raise HTTPException(403, "missing or wrong X-CSRF-Token header")
