"""Request bodies are bounded (VE_MAX_REQUEST_MB): a larger one gets 413 and the service goes on."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.service import RunningService, run_service


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with run_service(tmp_path_factory.mktemp("limits"), VE_MAX_REQUEST_MB="0.01") as running:
        yield running


def test_a_body_over_the_limit_is_refused_by_its_length(service: RunningService) -> None:
    big = {"session_id": 1, "interview_id": 1, "model_type": "x" * 20_000}
    response = httpx.post(f"{service.url}/v1/analyses", json=big, timeout=30)
    assert response.status_code == 413, response.text
    assert "over 0.01 MB (VE_MAX_REQUEST_MB)" in response.json()["detail"]
    small = httpx.post(f"{service.url}/v1/analyses", json={"session_id": 1, "interview_id": 1}, timeout=30)
    assert small.status_code == 404, small.text  # read and checked as usual


def test_a_chunked_body_is_cut_once_it_passes_the_limit(service: RunningService) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"session_id": 1, "interview_id": 1, "model_type": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    response = httpx.post(
        f"{service.url}/v1/analyses",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413, response.text
    assert httpx.get(f"{service.url}/health", timeout=10).json() == {"status": "ok"}


def test_a_content_length_that_is_no_number_is_refused(service: RunningService) -> None:
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"POST /v1/analyses HTTP/1.1\r\nHost: x\r\nContent-Length: 1e9\r\n\r\n")
        answer = conn.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 4"), answer
