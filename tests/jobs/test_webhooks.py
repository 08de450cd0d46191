"""Webhooks of /v1/analyses jobs, received by a loopback HTTP server: signed (Standard Webhooks),
retried after a 5xx with the same webhook-id, the job's record as the body, each try on the record."""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.jobs.conftest import ingest
from tests.media import face_video
from tests.service import RunningService, run_service
from video_emotions.storage.blobs import video_key

#: Seconds any wait in these tests may take before it counts as a failure.
DEADLINE_S = 120.0
POLL_S = 0.1
#: The service's first retry of a webhook comes this long after the first try (less a margin).
FIRST_BACKOFF_S = 1.0


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@dataclass
class Received:
    """One request the receiver took: when, its path, headers (names lower-cased) and raw body."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A loopback HTTP server that records every request; it answers 500 to the first ``failures``
    POSTs, 200 after."""

    failures: int
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/video-emotions"

    def wait_for(self, count: int, timeout: float = DEADLINE_S) -> list[Received]:
        """The first ``count`` requests, once they came; fail after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests[:count])
                taken = len(self.requests)
            if time.monotonic() > deadline:
                pytest.fail(f"the receiver got {taken} requests within {timeout:g} s, not {count}")
            time.sleep(POLL_S)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver that fails the first POST (500) and takes every later one (200)."""
    yield from serve(Receiver(failures=1))


@pytest.fixture
def taking_receiver() -> Iterator[Receiver]:
    """A receiver that takes every POST (200)."""
    yield from serve(Receiver(failures=0))


def serve(receiver: Receiver) -> Iterator[Receiver]:
    """Run ``receiver`` on 127.0.0.1, a free port, in a thread, until the test ends."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with receiver.lock:
                receiver.requests.append(
                    Received(
                        time.monotonic(), self.path, {k.lower(): v for k, v in self.headers.items()}, body
                    )
                )
                status = 500 if len(receiver.requests) <= receiver.failures else 200
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    receiver.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=receiver.server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def secret() -> str:
    return new_secret()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, secret: str) -> Iterator[RunningService]:
    """A service that signs webhooks with ``secret``; one worker; allowed to post to loopback."""
    with run_service(
        tmp_path_factory.mktemp("webhooks"), VE_WEBHOOK_SECRET=secret, VE_OUTBOUND_ALLOW="127.0.0.1"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def short_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return face_video(tmp_path_factory.mktemp("videos") / "face.mp4", 6.0)


def submit(service: RunningService, **body: Any) -> dict[str, Any]:
    """POST /v1/analyses, which must queue a new job; its record."""
    response = httpx.post(f"{service.url}/v1/analyses", json=body, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


def deliveries(service: RunningService, job_id: str, count: int) -> list[dict[str, Any]]:
    """The job's recorded webhook deliveries, once there are ``count`` (each is recorded just after
    the receiver answered)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        response = httpx.get(f"{service.url}/v1/analyses/{job_id}", timeout=30)
        assert response.status_code == 200, response.text
        found = response.json()["deliveries"]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id}: {len(found)} deliveries recorded, not {count}: {found}")
        time.sleep(POLL_S)


def verified(secret: str, request: Received) -> dict[str, Any]:
    """The request's body as JSON, once its signature checks out under ``secret``."""
    return Webhook(secret).verify(request.body, request.headers)


def test_a_succeeded_job_is_posted_signed_and_retried_after_a_5xx(
    service: RunningService, secret: str, receiver: Receiver, short_video: Path
) -> None:
    """The receiver fails the first POST: the second, a second or more later, carries the same
    webhook-id; both are signed, carry the job's record, and the record lists both tries."""
    ingest(service, short_video, 1, 10, 6.0, turn=2.0)
    job = submit(service, session_id=1, interview_id=10, callback_url=receiver.url)
    assert job["callback_url"] == receiver.url

    first, second = receiver.wait_for(2)
    assert first.path == second.path == "/hooks/video-emotions"
    for request in (first, second):
        assert request.headers["content-type"] == "application/json"
        payload = verified(secret, request)
        assert payload["id"] == job["id"]
        assert payload["state"] == "succeeded"
        assert payload["progress"] == 1.0
        assert payload["error"] is None
        assert payload["interview_id"] == 10 and payload["session_id"] == 1
        assert payload["callback_url"] == receiver.url
        assert {"download", "analyse", "write"} <= set(payload["stages"])
        assert [a["outcome"] for a in payload["attempts"]] == ["succeeded"]
        assert "deliveries" not in payload
        with pytest.raises(WebhookVerificationError):
            Webhook(new_secret()).verify(request.body, request.headers)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    assert second.at - first.at >= FIRST_BACKOFF_S * 0.9

    # A tampered body does not verify either.
    tampered = first.body.replace(b'"succeeded"', b'"failed"', 1)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, first.headers)

    recorded = deliveries(service, job["id"], 2)
    assert [(d["attempt"], d["status_code"], d["error"]) for d in recorded] == [
        (1, 500, None),
        (2, 200, None),
    ]
    assert {d["webhook_id"] for d in recorded} == {first.headers["webhook-id"]}


def test_a_failed_job_is_posted_with_its_error(
    service: RunningService, secret: str, taking_receiver: Receiver, short_video: Path
) -> None:
    """An interview whose stored video is no video: the job fails, and its webhook says why."""
    ingest(service, short_video, 2, 20, 6.0, turn=2.0)
    service.ctx.blobs.put(video_key(2, 20, "raw.mp4"), os.urandom(64 * 1024))
    job = submit(service, session_id=2, interview_id=20, callback_url=taking_receiver.url)

    (request,) = taking_receiver.wait_for(1)
    payload = verified(secret, request)
    assert payload["id"] == job["id"]
    assert payload["state"] == "failed"
    assert payload["error"]["kind"] == "input"
    assert "does not decode" in payload["error"]["message"], payload["error"]
    assert payload["progress"] < 1.0

    record = httpx.get(f"{service.url}/v1/analyses/{job['id']}", timeout=30).json()
    assert record["state"] == "failed"
    assert record["error"] == payload["error"]
    assert [(d["attempt"], d["status_code"]) for d in deliveries(service, job["id"], 1)] == [(1, 200)]
    assert all(row["video_emotions"] is None for row in service.ctx.db.results_rows(20))
    assert service.ctx.db.segment_results(20) == []


def test_a_cancelled_job_is_posted_once(
    service: RunningService, secret: str, taking_receiver: Receiver, short_video: Path, long_video: Path
) -> None:
    """A job cancelled while it waits behind another (one worker) is posted as cancelled, once."""
    ingest(service, long_video, 3, 30, 240.0, turn=2.0)
    ingest(service, short_video, 3, 31, 6.0, turn=2.0)
    ahead = submit(service, session_id=3, interview_id=30, interval=0.25)
    job = submit(service, session_id=3, interview_id=31, callback_url=taking_receiver.url)
    assert job["state"] == "queued"
    cancelled = httpx.delete(f"{service.url}/v1/analyses/{job['id']}", timeout=30)
    assert cancelled.status_code == 200, cancelled.text

    (request,) = taking_receiver.wait_for(1)
    payload = verified(secret, request)
    assert payload["id"] == job["id"]
    assert payload["state"] == "cancelled"
    assert payload["attempts"] == []
    assert payload["error"] is None
    assert [(d["attempt"], d["status_code"]) for d in deliveries(service, job["id"], 1)] == [(1, 200)]
    assert len(taking_receiver.requests) == 1
    ahead_record = httpx.get(f"{service.url}/v1/analyses/{ahead['id']}", timeout=30).json()
    assert ahead_record["state"] == "succeeded" and ahead_record["deliveries"] == []
