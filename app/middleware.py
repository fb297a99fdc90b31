"""Refuse oversized request bodies with 413 before they are read into memory or spooled to disk.

A declared Content-Length over the limit is refused without reading a byte; a chunked body is counted
as it arrives and refused at the first byte past the limit. Job and sweep specs are a few KiB, so one
MiB is generous; the image upload of the explorer gets its own, larger limit.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MiB = 1024 * 1024
DEFAULT_LIMIT = 1 * MiB


def _too_large(limit: int) -> str:
    return f"the request body is larger than this route accepts ({limit // 1024:,} KiB)"


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int = DEFAULT_LIMIT, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.larger = larger or {}  # path suffix -> limit, e.g. {"/neighbors": 21 * MiB}

    def limit_for(self, path: str) -> int:
        return next((n for suffix, n in self.larger.items() if path.endswith(suffix)), self.limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            body = json.dumps({"detail": _too_large(limit)}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # raised inside the route's body read: the error handlers answer 413
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, counted, send)
