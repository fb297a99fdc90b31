"""Rendering every HTML page, with the one Content-Security-Policy.

The pages carry no inline script: what a script needs from the server travels in
data- attributes, and every page answers with a policy that only allows scripts
from this origin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.store.rows import STATUSES, TERMINAL

templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent.parent / "templates")


def policy(eval_scripts: bool = False) -> str:
    """Plotly draws SVG charts with inline style attributes and a <style> element of its own: styles may be
    inline, scripts may not. `eval_scripts` only for the explorer, whose WebGL scatter (regl) builds code with `Function`."""
    script = "'self' 'unsafe-eval'" if eval_scripts else "'self'"
    return (
        f"default-src 'self'; script-src {script}; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


CSP = policy()


def render(request: Request, template: str, context: dict[str, Any], status_code: int = 200, eval_scripts: bool = False) -> HTMLResponse:
    identity = getattr(request.state, "identity", None)
    settings = request.app.state.settings
    # The job statuses reach the scripts from here only (static/common.js reads them off <body>).
    context = {"user": identity, "auth_on": settings.auth == "on", "job_statuses": STATUSES, "terminal_statuses": TERMINAL, **context}
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers["Content-Security-Policy"] = policy(eval_scripts)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response
