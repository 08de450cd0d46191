"""Celery in production's shape: the service and two real workers as subprocesses, PostgreSQL as the
database, moto's S3 server as storage, Redis (or RabbitMQ) as the broker.

A long interview is fanned out in chunks of whole segments over both workers, and its rows equal
those of one unchunked run of the same interview; a worker SIGKILLed mid-chunk loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.jobs.conftest import WorkerProcess, ingest, run_worker
from tests.service import RunningService, run_service, service_env
from tests.storage.conftest import create_bucket, production_env, upgraded_database
from video_emotions.jobs.local import LocalExecutor
from video_emotions.jobs.queueing import queue_analysis

#: Speech per chunk: the 4-minute test video's 3 minutes of candidate speech make 6 chunks.
CHUNK_SECONDS = 30
TIMEOUT = 240
#: The test video's length: speech tiles it, candidate 12 s, interviewer 4 s.
LONG_SECONDS = 240.0
WORKERS = ("w1", "w2")


@dataclass
class Deployment:
    service: RunningService
    worker_env: dict[str, str]
    log_dir: Path

    def workers(self, stack: ExitStack) -> dict[str, WorkerProcess]:
        return {
            name: stack.enter_context(run_worker(self.worker_env, name, log_dir=self.log_dir))
            for name in WORKERS
        }

    def submit(self, interview_id: int, **body: Any) -> str:
        response = httpx.post(
            f"{self.service.url}/v1/analyses",
            json={"session_id": 1, "interview_id": interview_id, **body},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def record(self, job_id: str) -> dict[str, Any]:
        return httpx.get(f"{self.service.url}/v1/analyses/{job_id}", timeout=30).json()

    def wait(self, job_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while (record := self.record(job_id))["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, f"job {job_id} did not end: {record}"
            time.sleep(0.2)
        return record


@contextmanager
def celery_deployment(
    tmp_path: Path, pg_database: Callable[..., str], s3_server: str, broker_url: str, queue: str, **extra: str
) -> Iterator[Deployment]:
    data_dir = tmp_path / "data"
    settings = production_env(
        upgraded_database(pg_database, data_dir),
        s3_server,
        create_bucket(s3_server),
        VE_EXECUTOR="celery",
        VE_BROKER_URL=broker_url,
        VE_QUEUE=queue,
        VE_CHUNK_SECONDS=str(CHUNK_SECONDS),
        **extra,
    )
    with run_service(data_dir, **settings) as service:
        yield Deployment(service, service_env(data_dir, **settings), tmp_path / "logs")


def written(service: RunningService, interview_id: int) -> list[tuple[Any, ...]]:
    """What an interview's results hold, segment by segment, ids aside (to compare two interviews)."""
    ctx = service.ctx
    rows = [(r["start"], r["end"], r["video_emotions"]) for r in ctx.db.results_rows(interview_id)]
    stored = [
        (s["start_ms"], s["end_ms"], s["summary"], s["frames"]) for s in ctx.db.segment_results(interview_id)
    ]
    return [*rows, *stored]


def single_worker_run(service: RunningService, interview_id: int, interval: float) -> list[tuple[Any, ...]]:
    """The interview analysed in one piece by one worker (the local executor, in this process)."""
    ctx = service.ctx
    executor = LocalExecutor(ctx, workers=1)
    queued = queue_analysis(
        ctx,
        executor,
        session_id=1,
        interview_id=interview_id,
        model_type="default",
        engine="default",
        segments=ctx.db.candidate_segments(interview_id),
        interval=interval,
    )
    executor.shutdown()
    job = ctx.db.job(queued.job_id)
    assert job is not None and job.status == "succeeded", job
    assert len(ctx.db.chunks(job.id)) == 1
    return written(service, interview_id)


def assert_fanned_out(record: dict[str, Any], deployment: Deployment) -> None:
    assert record["state"] == "succeeded", record
    assert record["chunks"] >= 5 and record["segments"]["done"] == record["segments"]["total"]
    assert record["workers"] == [f"celery@{name}" for name in WORKERS]
    chunks = deployment.service.ctx.db.chunks(record["id"])
    assert all(c["state"] == "done" for c in chunks)
    speech = [sum(s["end_ms"] - s["start_ms"] for s in c["result"]) / 1000 for c in chunks]
    assert all(seconds >= CHUNK_SECONDS for seconds in speech[:-1]), speech


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_two_workers_share_a_queue_and_fan_out_a_long_interview(
    broker: str,
    long_video: Path,
    woman2_mp4: Path,
    pg_database: Callable[..., str],
    s3_server: str,
    queue_name: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    broker_url = request.getfixturevalue(f"{broker}_url")
    with (
        celery_deployment(tmp_path, pg_database, s3_server, broker_url, queue_name) as deployment,
        ExitStack() as stack,
    ):
        service = deployment.service
        for interview in (1, 2):
            ingest(service, long_video, 1, interview, LONG_SECONDS)
        for interview in (3, 4):
            ingest(service, woman2_mp4, 1, interview, 4.6, turn=2.0)
        deployment.workers(stack)
        long_job = deployment.submit(1)
        short_job = deployment.submit(3)
        # The Interviewz call queues on the same workers and answers once its job is written.
        legacy = httpx.post(
            f"{service.url}/analyse_video",
            params={"session_id": 1, "interview_id": 4, "model_type": "default"},
            timeout=TIMEOUT,
        )
        assert legacy.status_code == 200 and legacy.json() == {"status": "ok"}, legacy.text
        record = deployment.wait(long_job)
        assert_fanned_out(record, deployment)
        assert record["stages"]["analyse"] > 0 and "write" in record["stages"]
        for job_id in (short_job, legacy.headers["x-job-id"]):
            short = deployment.wait(job_id)
            assert short["state"] == "succeeded" and short["chunks"] == 1, short
        assert service.ctx.db.interview(4)["video_ok"] is True
        assert written(service, 1) == single_worker_run(service, 2, interval=1.0)


def test_a_worker_killed_mid_chunk_loses_nothing(
    long_video: Path,
    pg_database: Callable[..., str],
    s3_server: str,
    redis_url: str,
    queue_name: str,
    tmp_path: Path,
) -> None:
    """SIGKILL (the worker and its pool child) while it analyses a chunk: the chunk goes to the other
    worker once its visibility timeout has passed, and the job's rows equal an undisturbed run's."""
    interval = 0.25  # chunks of a few seconds, so that one is caught half done
    with (
        celery_deployment(
            tmp_path, pg_database, s3_server, redis_url, queue_name, VE_VISIBILITY_TIMEOUT="6"
        ) as deployment,
        ExitStack() as stack,
    ):
        for interview in (1, 2):
            ingest(deployment.service, long_video, 1, interview, LONG_SECONDS)
        workers = deployment.workers(stack)
        job_id = deployment.submit(1, interval=interval)
        db = deployment.service.ctx.db
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert time.monotonic() < deadline, "no chunk was seen half done"
            running = {a["chunk"]: a["worker"] for a in db.attempts(job_id) if a["outcome"] == "running"}
            half_done = [
                c["chunk"] for c in db.chunks(job_id) if c["state"] == "pending" and c["samples_done"] > 0
            ]
            caught = [chunk for chunk in half_done if chunk in running]
            if caught:
                break
            time.sleep(0.02)
        chunk, victim = caught[0], running[caught[0]]
        workers[victim.removeprefix("celery@")].kill()

        record = deployment.wait(job_id)
        assert record["state"] == "succeeded", record
        runs = [a for a in record["attempts"] if a["chunk"] == chunk]
        assert [(a["worker"], a["outcome"]) for a in runs[:1]] == [(victim, "lost")], runs
        survivor = f"celery@{next(name for name in WORKERS if f'celery@{name}' != victim)}"
        assert (survivor, "succeeded") in [(a["worker"], a["outcome"]) for a in runs[1:]], runs
        assert written(deployment.service, 1) == single_worker_run(deployment.service, 2, interval=interval)
