"""Browser sign-in: a session cookie (HttpOnly, SameSite=Lax) plus a CSRF token for writes."""
from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from app import auth
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


@router.post("/session", response_model=Me, responses={401: {"model": ErrorOut}, **BODY_ERRORS})
async def create_session(body: SignIn, response: Response, request: Request, engine: EngineDep, settings: SettingsDep) -> Me:
    if settings.auth != "on":
        return Me(name=auth.LOCAL.name, is_admin=True, auth=False, csrf_token=None)
    found = await run_in_threadpool(lambda: auth.sign_in(engine, body.name, password=body.password, token=body.token))
    if found is None:
        raise HTTPException(401, "wrong name, password or token")
    identity, session_id = found
    response.set_cookie(auth.SESSION_COOKIE, session_id, max_age=auth.SESSION_DAYS * 86400, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/")
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
