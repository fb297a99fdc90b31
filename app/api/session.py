"""Browser sign-in: a session cookie (HttpOnly, SameSite=Lax) plus a CSRF token for writes."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from app import auth, signin_limit
from app.api.deps import EngineDep, IdentityDep, SettingsDep
from app.api.schemas import BODY_ERRORS, ErrorOut
from app.store import users
from app.text import Text

router = APIRouter(prefix="/api", tags=["session"])


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field("", max_length=100)
    password: str | None = Field(None, max_length=1000)
    token: str | None = Field(None, max_length=1000)


class Me(BaseModel):
    name: str
    is_admin: bool
    auth: bool
    csrf_token: str | None


def limiter(request: Request) -> signin_limit.SignInLimiter:
    """One per app (tests may set their own on app.state before the first sign-in)."""
    state = request.app.state
    if getattr(state, "sign_in_limiter", None) is None:
        state.sign_in_limiter = signin_limit.SignInLimiter()
    return state.sign_in_limiter


THROTTLED = {
    429: {
        "model": ErrorOut,
        "description": "Too many failed sign-ins for this name or from this address",
        "headers": {"Retry-After": {"description": "Seconds until the next try", "schema": {"type": "integer"}}},
    }
}


@router.post("/session", response_model=Me, responses={401: {"model": ErrorOut}, **THROTTLED, **BODY_ERRORS})
async def create_session(body: SignIn, response: Response, request: Request, engine: EngineDep, settings: SettingsDep) -> Me | JSONResponse:
    if settings.auth != "on":
        return Me(name=auth.LOCAL.name, is_admin=True, auth=False, csrf_token=None)
    name = None if body.token else body.name  # a token sign-in names nobody: only its address counts
    address = signin_limit.address_key(request.client.host if request.client else None)
    attempt = limiter(request).attempt(name, address)
    if isinstance(attempt, signin_limit.Refused):
        return JSONResponse({"detail": attempt.reason}, status_code=429, headers={"Retry-After": str(attempt.retry_after)})
    found = await run_in_threadpool(lambda: auth.sign_in(engine, body.name, password=body.password, token=body.token))
    if found is None:
        raise HTTPException(401, "wrong name, password or token")
    limiter(request).succeeded(name, address, attempt)
    identity, session_id = found
    response.set_cookie(
        auth.SESSION_COOKIE,
        session_id,
        max_age=auth.SESSION_DAYS * 86400,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return Me(name=identity.name, is_admin=identity.is_admin, auth=True, csrf_token=identity.csrf_token)


@router.delete("/session", status_code=204)
def delete_session(request: Request, response: Response, engine: EngineDep) -> Response:
    cookie = request.cookies.get(auth.SESSION_COOKIE)
    if cookie:
        users.close_session(engine, auth.hash_token(cookie))
    response = Response(status_code=204)
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


@router.get("/me", response_model=Me)
def get_me(identity: IdentityDep, settings: SettingsDep) -> Me:
    return Me(name=identity.name, is_admin=identity.is_admin, auth=settings.auth == "on", csrf_token=identity.csrf_token)
