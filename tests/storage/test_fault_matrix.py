"""The fault matrix: the service in production's shape (PostgreSQL, S3) meets a database down at
start, a database lost in the middle of a run, storage down and a remote model that never answers.

Each test records the outcome it saw in ``MATRIX``; the last one lists it (the README's
"Reliability" section quotes it). In none is a row left half written or a job left running.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.jobs.conftest import ingest, long_face_video
from tests.media import face_video
from tests.models.endpoints import LOOPBACK, silent_endpoint
from tests.proxy import TcpProxy
from tests.service import RunningService, run_service
from tests.storage.conftest import create_bucket, production_env, upgraded_database
from video_emotions.storage.db import Database

TIMEOUT = 120
#: fault -> what the service did, as seen by the tests below.
MATRIX: dict[str, str] = {}


@dataclass
class Deployment:
    service: RunningService
    database: TcpProxy
    storage: TcpProxy
    observer: Database  # the test's own connection, not through the proxy

    def settle(self, job_id: str) -> Any:
        """The job once it has ended (never left running), read straight from the database."""
        deadline = time.monotonic() + TIMEOUT
        while (job := self.observer.job(job_id)) is None or job.active:
            assert time.monotonic() < deadline, f"job {job_id} still {job.status if job else 'missing'}"
            time.sleep(0.2)
        return job

    def rows(self, interview: int) -> list[Any]:
        return [row["video_emotions"] for row in self.observer.results_rows(interview) if row["speaker"] == 0]

    def all_or_nothing(self, interview: int) -> str:
        """``all`` or ``none`` of the candidate rows written, in results and in our own table."""
        rows = self.rows(interview)
        stored = len(self.observer.segment_results(interview))
        video_ok = self.observer.interview(interview)["video_ok"]
        if all(rows) and stored == len(rows) and video_ok:
            return "all"
        assert not any(rows) and stored == 0 and not video_ok, (rows, stored, video_ok)
        return "none"


@pytest.fixture(scope="module")
def deployment(
    pg_database: Callable[..., str], s3_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """The service reaching PostgreSQL and S3 through proxies the tests cut; the database down at start."""
    data_dir = tmp_path_factory.mktemp("faults")
    url = upgraded_database(pg_database, data_dir)
    direct = make_url(url)
    database = TcpProxy(direct.host or "127.0.0.1", direct.port or 5432)
    s3 = make_url(s3_server.replace("http://", "postgresql://"))  # host and port of the S3 server
    storage = TcpProxy(s3.host or "127.0.0.1", s3.port or 80)
    storage.open()
    via_proxy = direct.set(port=database.port).render_as_string(hide_password=False)
    env = production_env(via_proxy, f"http://127.0.0.1:{storage.port}", create_bucket(s3_server))
    observer = Database(url)
    try:
        with run_service(data_dir, healthy=False, **env) as service:
            yield Deployment(service, database, storage, observer)
    finally:
        database.close()
        storage.close()
        observer.dispose()


def test_database_down_at_start(deployment: Deployment, tmp_path: Path) -> None:
    """The service starts degraded, says why, refuses requests with 503, and serves once it answers."""
    url = deployment.service.url
    health = httpx.get(f"{url}/health", timeout=10)
    assert health.status_code == 503, health.text
    assert health.json()["status"] == "degraded" and "cannot open the database" in health.json()["reason"]
    refused = httpx.post(f"{url}/analyse_video", params={"session_id": 1, "interview_id": 1}, timeout=10)
    assert refused.status_code == 503 and "not ready" in refused.json()["detail"], refused.text
    assert refused.headers["retry-after"]
    page = httpx.get(f"{url}/", timeout=10)  # the page still loads, and shows what its calls answer
    assert page.status_code == 200 and httpx.get(f"{url}/static/app.js", timeout=10).status_code == 200

    deployment.database.open()
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/health", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the service did not recover once the database answered"
        time.sleep(0.5)
    ingest(deployment.service, face_video(tmp_path / "face.mp4", 3.0), 1, 1, 3.0, turn=1.0)
    done = httpx.post(f"{url}/analyse_video", params={"session_id": 1, "interview_id": 1}, timeout=TIMEOUT)
    assert done.status_code == 200, done.text
    assert deployment.all_or_nothing(1) == "all"
    MATRIX["database down at start"] = (
        "service up, /health 503 degraded with the reason, requests 503 with Retry-After; "
        "serves within seconds of the database answering"
    )


def test_database_lost_in_the_middle_of_a_run(deployment: Deployment, tmp_path: Path) -> None:
    """Every connection dropped and refused for 4 s while a job runs: the run goes on without
    recording its progress, and writes everything once the database is back (a write that meets
    the outage fails and runs again, VE_MAX_ATTEMPTS); nothing is half written, the job ends."""
    video = long_face_video(tmp_path / "long.mp4", 2.0, fps=10)
    ingest(deployment.service, video, 1, 2, 120.0)
    url = deployment.service.url
    response = httpx.post(f"{url}/v1/analyses", json={"session_id": 1, "interview_id": 2, "interval": 0.1})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + TIMEOUT
    while not any(c["samples_done"] > 0 for c in deployment.observer.chunks(job_id)):
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.05)
    deployment.database.close()
    time.sleep(4)
    assert deployment.all_or_nothing(2) == "none"
    deployment.database.open()
    job = deployment.settle(job_id)
    outcomes = [a["outcome"] for a in deployment.observer.attempts(job_id)]
    written = deployment.all_or_nothing(2)
    assert (job.status, written) in (("succeeded", "all"), ("failed", "none")), (job.status, outcomes)
    assert outcomes[-1] in ("succeeded", "failed") and "running" not in outcomes, outcomes
    assert "progress not recorded" in deployment.service.log.read_text()  # the run met the outage
    MATRIX["database lost in the middle of a run"] = (
        f"the run goes on (progress not recorded while the database is away); job {job.status} "
        f"after attempts {outcomes}; rows: {written} written"
    )


def test_storage_down(deployment: Deployment, tmp_path: Path) -> None:
    """S3 unreachable: a request is refused with 503 and the reason, no job is left, nothing is
    written; with storage back the same request succeeds."""
    ingest(deployment.service, face_video(tmp_path / "face.mp4", 3.0), 1, 3, 3.0, turn=1.0)
    url = deployment.service.url
    deployment.storage.close()
    try:
        started = time.monotonic()
        refused = httpx.post(
            f"{url}/analyse_video", params={"session_id": 1, "interview_id": 3}, timeout=TIMEOUT
        )
        seconds = time.monotonic() - started
    finally:
        deployment.storage.open()
    assert refused.status_code == 503, refused.text
    assert "does not answer" in refused.json()["detail"]
    assert deployment.all_or_nothing(3) == "none"
    assert all(not job.active for job in deployment.observer.jobs_for_interview(3))
    done = httpx.post(f"{url}/analyse_video", params={"session_id": 1, "interview_id": 3}, timeout=TIMEOUT)
    assert done.status_code == 200, done.text
    assert deployment.all_or_nothing(3) == "all"
    MATRIX["storage down"] = (
        f"request refused with 503 in {seconds:.0f} s ('{refused.json()['detail'][:60]}…'), nothing written; "
        "the same request succeeds once storage answers"
    )


def test_a_remote_model_that_never_answers(tmp_path: Path) -> None:
    """yolo_cloud's endpoint accepts connections and never answers: the request ends within its
    timeout, served by the default engine and saying why (VE_STRICT_MODELS=true: refused)."""
    with silent_endpoint() as endpoint:
        with run_service(
            tmp_path / "lenient", VE_REMOTE_URL=endpoint, VE_REMOTE_TIMEOUT="1", VE_OUTBOUND_ALLOW=LOOPBACK
        ) as service:
            ingest(service, face_video(tmp_path / "face.mp4", 3.0), 1, 1, 3.0, turn=1.0)
            params = {"session_id": 1, "interview_id": 1, "model_type": "yolo_cloud"}
            started = time.monotonic()
            served = httpx.post(f"{service.url}/analyse_video", params=params, timeout=TIMEOUT)
            seconds = time.monotonic() - started
            assert served.status_code == 200, served.text
            job = service.ctx.db.job(served.headers["x-job-id"])
            assert job is not None and job.engine != "yolo_cloud" and job.note, job
        with run_service(
            tmp_path / "strict",
            VE_REMOTE_URL=endpoint,
            VE_REMOTE_TIMEOUT="1",
            VE_OUTBOUND_ALLOW=LOOPBACK,
            VE_STRICT_MODELS="true",
        ) as strict:
            ingest(strict, face_video(tmp_path / "face2.mp4", 3.0), 1, 1, 3.0, turn=1.0)
            refused = httpx.post(f"{strict.url}/analyse_video", params=params, timeout=TIMEOUT)
            assert refused.status_code == 422, refused.text
            assert all(row["video_emotions"] is None for row in strict.ctx.db.results_rows(1))
    MATRIX["remote model times out"] = (
        f"answered in {seconds:.0f} s by {job.engine} ({job.note}); with VE_STRICT_MODELS=true: 422 "
        f"'{refused.json()['detail'][:80]}…', nothing written"
    )


def test_the_matrix_lists_every_fault() -> None:
    assert set(MATRIX) == {
        "database down at start",
        "database lost in the middle of a run",
        "storage down",
        "remote model times out",
    }, "run the whole module: each fault's test fills in its row"
    text = "\n".join(f"| {fault} | {outcome} |" for fault, outcome in MATRIX.items())
    print(f"\nfault matrix:\n{text}")
    out = os.environ.get("VE_FAULT_MATRIX_OUT")
    if out:
        Path(out).write_text(json.dumps(MATRIX, indent=1))
