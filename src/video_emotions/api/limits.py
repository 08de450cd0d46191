"""A bound on request bodies (VE_MAX_REQUEST_MB): a larger one is refused with 413 before the
application reads it (by its Content-Length), or as soon as it passes the bound (chunked). A route
may have a bound of its own instead (the video upload: VE_MAX_UPLOAD_MB)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: A bound: the most bytes, and the setting that says so (named in the 413).
Bound = tuple[int, str]


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        *,
        per_route: Mapping[tuple[str, str], Bound] | None = None,
    ) -> None:
        """``per_route``: (method, path) → the bound of that route instead of ``max_bytes``."""
        self.app = app
        self.max_bytes = max_bytes
        self.per_route = dict(per_route or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = (scope.get("method", ""), scope.get("path", ""))
        max_bytes, setting = self.per_route.get(route, (self.max_bytes, "VE_MAX_REQUEST_MB"))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            await self._refuse(send, max_bytes, setting)
            return
        received = 0
        started = refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes and not refused:
                    # Answer now and let the application see the client gone: it stops reading.
                    refused = True
                    if not started:
                        await self._refuse(send, max_bytes, setting)
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counting_receive, tracking_send)

    async def _refuse(self, send: Send, max_bytes: int, setting: str) -> None:
        limit = max_bytes / 1_000_000
        body: dict[str, Any] = {"detail": f"the request body is over {limit:g} MB ({setting})"}
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
