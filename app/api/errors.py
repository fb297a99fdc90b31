"""Every refused request answers JSON that names the field and the reason."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from app.api.deps import SignInRequired
from app.files import free_bytes, human_bytes, is_disk_full
from app.spec import SpecError

RETRY_AFTER_SECONDS = 60  # a full disk waits for a person to free space


def error_item(field: str, reason: str, loc: list | None = None, kind: str = "value_error") -> dict:
    """`field` and `reason` for people; `loc`, `msg` and `type` keep FastAPI's documented 422 shape."""
    return {"field": field, "reason": reason, "loc": loc or ["body", *field.split(".")], "msg": reason, "type": kind}


def field_error(field: str, reason: str, status: int = 422) -> JSONResponse:
    return JSONResponse({"detail": [error_item(field, reason)]}, status_code=status)


def _field_of(error: dict) -> str:
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, SpecError):
        return cause.field
    loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
    return ".".join(loc) or "body"


def _reason_of(error: dict) -> str:
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, SpecError):
        return cause.reason
    if error.get("type") == "extra_forbidden":
        return "unknown field (check the spelling; see GET /api/datasets and the docs for the job spec)"
    return error.get("msg", "invalid")


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and content_type and "json" not in content_type and "multipart" not in content_type:
            return field_error("body", f"send JSON with Content-Type: application/json (got {content_type!r})", 415)
        if any(e.get("type") == "json_invalid" for e in errors):
            return field_error("body", "the request body is not valid JSON", 400)
        if any(e.get("type") in ("model_attributes_type", "dict_type") and tuple(e.get("loc", ())) == ("body",) for e in errors):
            return field_error("body", "the request body must be a JSON object", 400)
        detail = [error_item(_field_of(e), _reason_of(e), list(e.get("loc", ())), e.get("type", "value_error")) for e in errors]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(SignInRequired)
    async def on_sign_in_required(request: Request, _exc: SignInRequired) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(
                {"detail": "sign in: send Authorization: Bearer <token>"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    @app.exception_handler(SpecError)
    async def on_spec_error(_request: Request, exc: SpecError) -> JSONResponse:
        return field_error(exc.field, exc.reason)

    # A write refused because the disk is full (SQLite's "database or disk is full", ENOSPC, PostgreSQL's
    # disk_full) is the server's condition, not the request's fault: 503 with the reason; reads go on working.
    async def on_storage_error(request: Request, exc: Exception) -> JSONResponse:
        if not is_disk_full(exc):
            raise exc
        home = request.app.state.settings.home_path
        detail = (
            f"the server's disk is full, so nothing can be stored now ({human_bytes(free_bytes(home))} free in EMBEDLAB_HOME); "
            "what is stored can still be read. Try again once space has been freed."
        )
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    app.add_exception_handler(SQLAlchemyError, on_storage_error)
    app.add_exception_handler(OSError, on_storage_error)
