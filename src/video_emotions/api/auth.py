"""Access control: API keys (kept as sha256 hashes), CORS, and the refusal to serve open beyond loopback.

``VE_API_KEYS`` is ``KEY_ID:SHA256_HEX[,KEY_ID:SHA256_HEX...]``, the hex sha256 of each key's UTF-8
text (``video-emotions keys new`` makes a key and its entry). When it lists any key, every request
but ``GET /health``, the web page (``GET /`` and its files under ``/static/``, which hold no data:
the page asks for a key and sends it itself) and CORS preflights (which browsers send without
credentials) must carry one,
as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``; the caller's key id is then
``request.state.api_key_id`` (None when no keys are configured). The check is an ASGI middleware,
so it covers /docs, /openapi.json and every route added later. Keys, hashes and the
Authorization header are never logged nor quoted in an answer.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
from collections.abc import Mapping

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from video_emotions.config import Settings
from video_emotions.errors import InputError

logger = logging.getLogger(__name__)

#: A key id: what VE_API_KEYS and the audit log name a key by.
KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")

#: The routes that answer without a key: (method, path).
OPEN_ROUTES = frozenset({("GET", "/health"), ("GET", "/"), ("HEAD", "/")})
#: Paths under which GET (and HEAD) answer without a key: the web page's files.
OPEN_PREFIXES = ("/static/",)
CORS_METHODS = ("GET", "POST", "DELETE")
CORS_HEADERS = ("Authorization", "X-API-Key", "Content-Type")
#: Response headers a browser's script may read: where a queued job is, which job answered.
CORS_EXPOSE = ("Location", "X-Job-Id")

HOW_TO_SEND = "send it as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
MISSING_KEY = (
    f"this API needs a key: {HOW_TO_SEND} (the operator makes keys with `video-emotions keys new` "
    "and lists them in VE_API_KEYS)"
)
INVALID_KEY = f"the API key sent is not one this service accepts: {HOW_TO_SEND}, with a valid key"


def hash_key(key: str) -> str:
    """The hex sha256 of ``key``'s UTF-8 text: what VE_API_KEYS holds instead of the key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A new random API key (32 random bytes, URL-safe base64)."""
    return secrets.token_urlsafe(32)


def parse_api_keys(text: str | None) -> dict[str, str]:
    """``VE_API_KEYS`` as key id → lower-case hex sha256.

    A malformed entry is an InputError naming its position (1 for the first) and never its text,
    which may be a key pasted where its hash belongs.
    """
    keys: dict[str, str] = {}
    for position, raw in enumerate((text or "").split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        key_id, sep, digest = entry.partition(":")
        key_id, digest = key_id.strip(), digest.strip()
        if not sep or not KEY_ID.fullmatch(key_id) or not SHA256_HEX.fullmatch(digest):
            raise InputError(
                f"VE_API_KEYS entry {position} is not KEY_ID:SHA256_HEX (a key id of letters, digits, "
                "'.', '_' or '-', a colon, then the 64 hex digits of the key's sha256; "
                "`video-emotions keys new` prints such an entry)"
            )
        if key_id in keys:
            raise InputError(f"VE_API_KEYS entry {position} repeats the key id of an earlier entry")
        keys[key_id] = digest.lower()
    return keys


def presented_key(headers: Headers) -> str | None:
    """The key a request carries: ``Authorization: Bearer KEY``, else ``X-API-Key: KEY``."""
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key", "").strip() or None


def route_path(scope: Scope) -> str:
    """The request's path below the application's root path (what routes are matched on)."""
    path: str = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


class ApiKeyMiddleware:
    """Refuses (401) every request without a valid key but ``GET /health``, the web page (``GET /``,
    ``/static/...``) and CORS preflights; puts the caller's key id in ``request.state.api_key_id``.
    With no keys it lets everything by."""

    def __init__(self, app: ASGIApp, keys: Mapping[str, str]) -> None:
        self.app = app
        self._keys = tuple((key_id, digest.encode("ascii")) for key_id, digest in keys.items())

    def identify(self, key: str) -> str | None:
        """The id of the configured key ``key`` is, or None; compares every hash in constant time."""
        digest = hash_key(key).encode("ascii")
        found = None
        for key_id, expected in self._keys:
            if hmac.compare_digest(digest, expected) and found is None:
                found = key_id
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["api_key_id"] = None
        headers = Headers(scope=scope)
        method = scope.get("method", "GET")
        preflight = method == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers
        path = route_path(scope)
        page_file = method in ("GET", "HEAD") and path.startswith(OPEN_PREFIXES)
        if not self._keys or preflight or (method, path) in OPEN_ROUTES or page_file:
            await self.app(scope, receive, send)
            return
        key = presented_key(headers)
        key_id = self.identify(key) if key is not None else None
        if key_id is None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            refusal = JSONResponse(
                {"detail": MISSING_KEY if key is None else INVALID_KEY},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await refusal(scope, receive, send)
            return
        scope["state"]["api_key_id"] = key_id
        await self.app(scope, receive, send)


def cors_origins(text: str) -> list[str]:
    """``VE_CORS_ORIGINS`` as a list of origins (a trailing slash dropped: an Origin has none)."""
    return [origin.strip().rstrip("/") for origin in text.split(",") if origin.strip()]


def add_access_control(app: FastAPI, settings: Settings) -> None:
    """Add the API key check and, with ``VE_CORS_ORIGINS``, CORS to ``app``.

    CORS goes outside the key check: preflights are answered before any key is asked for, and a
    401 carries the CORS headers a browser needs to show it to the page.
    """
    keys = parse_api_keys(settings.api_keys)
    app.add_middleware(ApiKeyMiddleware, keys=keys)
    if keys:
        logger.info("API keys required on every route but GET /health: %s", ", ".join(keys))
    origins = cors_origins(settings.cors_origins)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSE,
        )


def is_loopback_host(host: str) -> bool:
    """Whether listening on ``host`` keeps the API on this machine: 127.0.0.0/8, ::1, localhost."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, settings: Settings) -> str | None:
    """Whether ``serve`` may listen on ``host``: InputError for a malformed VE_API_KEYS, or for a
    non-loopback address without keys unless VE_ALLOW_OPEN; the warning to log when the API is
    open beyond loopback (VE_ALLOW_OPEN=true), else None."""
    keys = parse_api_keys(settings.api_keys)
    if keys or is_loopback_host(host):
        return None
    if not settings.allow_open:
        raise InputError(
            f"refusing to serve on {host}, beyond loopback, without API keys: anyone who reaches the "
            "port could use the API. Set VE_API_KEYS (make a key with `video-emotions keys new`), or "
            "listen on 127.0.0.1 (VE_HOST or --host), or set VE_ALLOW_OPEN=true when only a private "
            "network reaches the port"
        )
    return (
        f"VE_ALLOW_OPEN=true: the API on {host} is open, without API keys, to whoever reaches the port; "
        "keep the port on a private network"
    )
