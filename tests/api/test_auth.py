"""Access control through the live service: API keys, the refusal to serve open, CORS; and the
middleware's key id in ``request.state`` on a small app of its own."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request

from tests.service import RunningService, free_port, run_service, service_env
from video_emotions.api.auth import ApiKeyMiddleware, hash_key, is_loopback_host, parse_api_keys
from video_emotions.errors import InputError

#: Seconds a `serve` that must refuse may take to exit, or one that must start to answer.
START_S = 60.0
ALLOWED = "https://a.example"
ALSO_ALLOWED = "https://b.example"
#: Routes that need a key, with the method and what they answer given one.
GUARDED = [
    ("GET", "/v1/models", 200),
    ("GET", "/docs", 200),
    ("GET", "/openapi.json", 200),
    ("POST", "/analyse_video?session_id=1&interview_id=1", 404),  # no such interview
]


@dataclass
class Keys:
    """The key `video-emotions keys new --id ci` printed, its VE_API_KEYS entry, and a second key."""

    key: str
    entry: str
    other: str


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    made = subprocess.run(
        [sys.executable, "-m", "video_emotions", "keys", "new", "--id", "ci"],
        env=service_env(tmp_path_factory.mktemp("keys")),
        capture_output=True,
        text=True,
        timeout=START_S,
    )
    assert made.returncode == 0, made.stderr
    assert "shown only this once" in made.stdout
    lines = [line.strip() for line in made.stdout.splitlines()]
    key = lines[lines.index(next(line for line in lines if line.startswith("API key ci"))) + 1]
    entry = next(line for line in lines if line.startswith("ci:"))
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", key), made.stdout  # token_urlsafe(32)
    assert entry == f"ci:{hash_key(key)}"
    return Keys(key=key, entry=entry, other="another-key-for-the-second-entry")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Iterator[RunningService]:
    """A service with two keys and two CORS origins."""
    with run_service(
        tmp_path_factory.mktemp("auth"),
        VE_API_KEYS=f"{keys.entry}, second:{hash_key(keys.other)}",
        VE_CORS_ORIGINS=f"{ALLOWED},{ALSO_ALLOWED}/",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def open_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """A service on every address (0.0.0.0) without keys, as VE_ALLOW_OPEN=true lets it."""
    with run_service(tmp_path_factory.mktemp("open"), VE_HOST="0.0.0.0", VE_ALLOW_OPEN="true") as running:
        yield running


def call(service: RunningService, method: str, path: str, **headers: str) -> httpx.Response:
    return httpx.request(method, f"{service.url}{path}", headers=headers, timeout=30)


def test_health_answers_without_a_key(service: RunningService) -> None:
    response = call(service, "GET", "/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize(("method", "path", "_status"), GUARDED)
def test_every_other_route_needs_a_key(service: RunningService, method: str, path: str, _status: int) -> None:
    response = call(service, method, path)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    detail = response.json()["detail"]
    assert "Authorization: Bearer KEY" in detail and "X-API-Key: KEY" in detail


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-a-key-we-know"},
        {"X-API-Key": "not-a-key-we-know"},
        {"Authorization": "Basic not-a-key-we-know"},
    ],
    ids=["bearer", "x-api-key", "basic"],
)
def test_a_wrong_key_is_refused_and_not_quoted(service: RunningService, headers: dict[str, str]) -> None:
    response = call(service, "GET", "/v1/models", **headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert "not-a-key-we-know" not in response.text
    assert "Authorization: Bearer KEY" in response.json()["detail"]


@pytest.mark.parametrize(("method", "path", "status"), GUARDED)
@pytest.mark.parametrize("header", ["Authorization", "X-API-Key"])
def test_the_right_key_by_either_header_is_let_in(
    service: RunningService, keys: Keys, header: str, method: str, path: str, status: int
) -> None:
    value = f"Bearer {keys.key}" if header == "Authorization" else keys.key
    response = call(service, method, path, **{header: value})
    assert response.status_code == status, response.text


def test_each_listed_key_is_let_in(service: RunningService, keys: Keys) -> None:
    for key in (keys.key, keys.other):
        assert call(service, "GET", "/v1/models", Authorization=f"bearer {key}").status_code == 200


def test_keys_hashes_and_the_authorization_header_stay_out_of_the_log(
    service: RunningService, keys: Keys
) -> None:
    for header, value in (("Authorization", f"Bearer {keys.key}"), ("X-API-Key", keys.key)):
        assert call(service, "GET", "/v1/models", **{header: value}).status_code == 200
    assert call(service, "GET", "/v1/models", Authorization="Bearer wrong-key-0123").status_code == 401
    log = service.log.read_text()
    assert '"GET /v1/models HTTP/1.1" 200' in log and '"GET /v1/models HTTP/1.1" 401' in log
    for secret in (keys.key, hash_key(keys.key), keys.other, hash_key(keys.other), "wrong-key-0123"):
        assert secret not in log
    assert "Bearer" not in log
    assert "API keys required on every route but GET /health: ci, second" in log


def test_a_preflight_from_an_allowed_origin_is_answered_without_a_key(service: RunningService) -> None:
    for origin in (ALLOWED, ALSO_ALLOWED):
        response = call(
            service,
            "OPTIONS",
            "/v1/analyses",
            Origin=origin,
            **{
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == origin
        allowed_methods = response.headers["access-control-allow-methods"]
        assert {m.strip() for m in allowed_methods.split(",")} == {"GET", "POST", "DELETE"}
        allowed_headers = response.headers["access-control-allow-headers"].lower()
        assert {"authorization", "x-api-key", "content-type"} <= {
            h.strip() for h in allowed_headers.split(",")
        }


def test_cors_headers_go_to_allowed_origins_only(service: RunningService, keys: Keys) -> None:
    auth = {"Authorization": f"Bearer {keys.key}"}
    allowed = call(service, "GET", "/v1/models", Origin=ALLOWED, **auth)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    # A refusal reaches the page too, so that it can say a key is missing.
    refused = call(service, "GET", "/v1/models", Origin=ALLOWED)
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ALLOWED

    other = call(service, "GET", "/v1/models", Origin="https://evil.example", **auth)
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    preflight = call(
        service,
        "OPTIONS",
        "/v1/models",
        Origin="https://evil.example",
        **{"Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_serving_beyond_loopback_without_keys_is_refused(tmp_path: Path) -> None:
    port = free_port()
    started = subprocess.run(
        [sys.executable, "-m", "video_emotions", "serve", "--host", "0.0.0.0", "--port", str(port)],
        env=service_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=START_S,
    )
    assert started.returncode == 2, started.stdout + started.stderr
    message = " ".join(started.stderr.split())
    assert "refusing to serve on 0.0.0.0" in message
    for what in ("VE_API_KEYS", "video-emotions keys new", "VE_ALLOW_OPEN=true", "127.0.0.1"):
        assert what in message, message


def test_a_malformed_key_list_stops_the_start_naming_the_entry_not_its_text(tmp_path: Path) -> None:
    env = service_env(tmp_path, VE_API_KEYS=f"ci:{hash_key('k')},pasted-the-key-itself")
    started = subprocess.run(
        [sys.executable, "-m", "video_emotions", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_S,
    )
    assert started.returncode == 2, started.stdout + started.stderr
    message = " ".join(started.stderr.split())
    assert "VE_API_KEYS entry 2 is not KEY_ID:SHA256_HEX" in message
    assert "pasted-the-key-itself" not in started.stdout + started.stderr


def test_allow_open_serves_beyond_loopback_and_warns(open_service: RunningService) -> None:
    log = open_service.log.read_text()
    assert "WARNING" in log and "VE_ALLOW_OPEN=true: the API on 0.0.0.0 is open" in log
    assert "Uvicorn running on http://0.0.0.0:" in log
    # No keys: every route answers without one.
    assert call(open_service, "GET", "/v1/models").status_code == 200


def test_cors_is_off_by_default(open_service: RunningService) -> None:
    response = call(open_service, "GET", "/health", Origin=ALLOWED)
    assert response.status_code == 200
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]
    preflight = call(
        open_service, "OPTIONS", "/v1/models", Origin=ALLOWED, **{"Access-Control-Request-Method": "GET"}
    )
    assert not [name for name in preflight.headers if name.lower().startswith("access-control-")]


def test_keys_new_refuses_an_id_that_would_break_the_list(tmp_path: Path) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "video_emotions", "keys", "new", "--id", "a,b:c"],
        env=service_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=START_S,
    )
    assert made.returncode == 2 and "--id must be" in made.stderr


# The pieces, without a service ---------------------------------------------------------------


def test_parse_api_keys() -> None:
    digest = hash_key("secret")
    assert digest == "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
    assert parse_api_keys(None) == {} and parse_api_keys(" , ") == {}
    assert parse_api_keys(f" a:{digest.upper()} ,b.2_x-y:{digest}") == {"a": digest, "b.2_x-y": digest}
    for text, position in (
        ("secret", 1),
        (f"a:{digest},b:{digest[:-1]}", 2),
        (f"a:{digest},:{digest}", 2),
        (f"a:{digest},,a:{digest}", 3),
        (f"a b:{digest}", 1),
    ):
        with pytest.raises(InputError, match=f"VE_API_KEYS entry {position} ") as refused:
            parse_api_keys(text)
        assert digest[:-1] not in str(refused.value) and "secret" not in str(refused.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("api.example.com", False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def _echo_app(keys: dict[str, str]) -> FastAPI:
    """An app whose one route answers the key id the middleware put on ``request.state``."""
    app = FastAPI()

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, str | None]:
        return {"api_key_id": request.state.api_key_id}

    app.add_middleware(ApiKeyMiddleware, keys=keys)
    return app


def get(app: FastAPI, path: str, **headers: str) -> httpx.Response:
    """GET ``path`` from ``app`` in this process (no server, no lifespan)."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(send())


def test_the_callers_key_id_is_on_request_state() -> None:
    app = _echo_app({"ci": hash_key("k1"), "ops": hash_key("k2")})
    assert get(app, "/whoami", **{"X-API-Key": "k2"}).json() == {"api_key_id": "ops"}
    assert get(app, "/whoami", Authorization="Bearer k1").json() == {"api_key_id": "ci"}
    assert get(app, "/whoami", **{"X-API-Key": "k3"}).status_code == 401
    assert get(_echo_app({}), "/whoami").json() == {"api_key_id": None}


def test_routes_added_after_the_middleware_need_a_key_too() -> None:
    app = _echo_app({"ci": hash_key("k1")})
    app.add_api_route("/later", lambda: {"ok": True})
    assert get(app, "/later").status_code == 401
    assert get(app, "/later", **{"X-API-Key": "k1"}).json() == {"ok": True}
