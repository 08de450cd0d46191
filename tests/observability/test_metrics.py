"""The metrics' parts on their own: route labels from the HTTP middleware, the jobs collector, the
multiprocess folder's clean-up."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from video_emotions.observability.metrics import (
    HttpMetricsMiddleware,
    JobsCollector,
    clear_multiprocess_dir,
    render_api_metrics,
)

HTTP = "video_emotions_http_request_seconds_count"


def requests_seen(method: str, route: str, status: str) -> float:
    return REGISTRY.get_sample_value(HTTP, {"method": method, "route": route, "status": status}) or 0.0


class Client:
    """Requests straight to an ASGI app, as a server would pass them on."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def request(self, method: str, path: str) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, path)

        return asyncio.run(send())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def delete(self, path: str) -> httpx.Response:
        return self.request("DELETE", path)


@pytest.fixture(scope="module")
def client() -> Client:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("broken on purpose")

    app.add_middleware(HttpMetricsMiddleware)
    return Client(app)


def test_routes_are_labelled_by_template_never_by_raw_path(client: Client) -> None:
    before = requests_seen("GET", "/things/{thing_id}", "200")
    for thing_id in (1, 22, 333):
        assert client.get(f"/things/{thing_id}").status_code == 200
    assert requests_seen("GET", "/things/{thing_id}", "200") == before + 3
    assert client.get("/things/not-a-number").status_code == 422
    assert requests_seen("GET", "/things/{thing_id}", "422") >= 1


def test_unknown_paths_are_unmatched_and_wrong_methods_keep_the_template(client: Client) -> None:
    before = requests_seen("GET", "unmatched", "404")
    assert client.get("/no/such/4711").status_code == 404
    assert requests_seen("GET", "unmatched", "404") == before + 1
    assert client.delete("/things/5").status_code == 405
    assert requests_seen("DELETE", "/things/{thing_id}", "405") >= 1
    assert client.get("/broken").status_code == 500
    assert requests_seen("GET", "/broken", "500") >= 1
    routes = {
        sample.labels["route"]
        for family in text_string_to_metric_families(generate_latest(REGISTRY).decode())
        for sample in family.samples
        if "route" in sample.labels
    }
    raw = ("/things/1", "/things/22", "/things/333", "not-a-number", "/no/such", "4711", "/things/5")
    assert not any(part in route for route in routes for part in raw), routes


def test_jobs_collector_gives_every_state() -> None:
    registry = CollectorRegistry()
    registry.register(JobsCollector(lambda: {"succeeded": 2, "failed": 1}))
    assert registry.get_sample_value("video_emotions_jobs", {"state": "succeeded"}) == 2
    assert registry.get_sample_value("video_emotions_jobs", {"state": "failed"}) == 1
    assert registry.get_sample_value("video_emotions_jobs", {"state": "queued"}) == 0
    assert registry.get_sample_value("video_emotions_jobs", {"state": "cancelled"}) == 0


def test_a_database_that_does_not_answer_leaves_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> dict[str, int]:
        raise ConnectionError("database down")

    text = render_api_metrics(broken).decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert "video_emotions_jobs" not in names and "video_emotions_http_request_seconds" in names
    assert "could not count the jobs" in caplog.text


def test_clearing_the_multiprocess_folder_keeps_living_processes_files(tmp_path: Path) -> None:
    dead = 2**22 + 4711  # above Linux's largest pid: no such process
    with pytest.raises(ProcessLookupError):
        os.kill(dead, 0)
    ours = tmp_path / f"counter_{os.getpid()}.db"
    parent = tmp_path / f"histogram_{os.getppid()}.db"
    stale = [tmp_path / f"counter_{dead}.db", tmp_path / f"gauge_livesum_{dead}.db"]
    other = tmp_path / "notes.txt"
    for path in (ours, parent, *stale, other):
        path.write_bytes(b"")
    assert clear_multiprocess_dir(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ours.name, parent.name, other.name])
