"""Real brokers and real Celery workers for the job tests: Redis and RabbitMQ on loopback, workers
started as ``python -m video_emotions worker`` subprocesses, and long test-built face videos.

Redis is the server at 127.0.0.1:6379 (one database number for this test run, flushed at the start;
``VE_TEST_REDIS_URL`` names another), RabbitMQ the one at 127.0.0.1:5672 (``VE_TEST_RABBITMQ_URL``).
Without them the tests skip, unless REQUIRE_SERVICES=1 (CI), where they fail. PostgreSQL and S3 come
from the storage tests' fixtures, imported here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import kombu
import numpy as np
import pytest
import redis

from tests.media import encode_video, face_frame
from tests.service import RunningService, free_port, run_service, service_env
from tests.storage.conftest import (
    create_bucket,
    pg_database,
    postgres_admin,
    s3_bucket,
    s3_server,
    unavailable,
)

__all__ = [
    "create_bucket",
    "free_port",
    "pg_database",
    "postgres_admin",
    "run_service",
    "s3_bucket",
    "s3_server",
    "service_env",
]

#: Redis database number for this test run (the service's own default is 0, so it is left alone).
REDIS_TEST_DB = 9
REDIS_URL = os.environ.get("VE_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{REDIS_TEST_DB}")
RABBITMQ_URL = os.environ.get("VE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")

#: In ``long_face_video``: from 20 s on, every 20th second starts 2 s of blank grey frames (no face).
BLANK_EVERY_S = 20
BLANK_FOR_S = 2
#: The ``long_video`` fixture's length.
LONG_VIDEO_MINUTES = 4.0

WORKER_READY_S = 60
WORKER_STOP_S = 20


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test run's Redis database URL, flushed once at the start so no stale message leaks in."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=5)
    try:
        client.ping()
        client.flushdb()
    except (redis.RedisError, OSError) as exc:
        unavailable(f"Redis is not reachable at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The RabbitMQ broker's URL, once it accepts an AMQP connection."""
    connection = kombu.Connection(RABBITMQ_URL, connect_timeout=3)
    try:
        connection.connect()
    except (*connection.connection_errors, OSError) as exc:
        unavailable(f"RabbitMQ is not reachable at {RABBITMQ_URL}: {exc}")
    finally:
        connection.release()
    return RABBITMQ_URL


@pytest.fixture
def queue_name() -> str:
    """A queue name of this test's own, so runs sharing a broker cannot collide."""
    return f"ve-test-{uuid4().hex[:8]}"


@dataclass
class WorkerProcess:
    """A Celery worker subprocess, leader of its own process group (with its pool children)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def _signal_group(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the worker's whole process group, if any of it is left."""
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once (a crash), then reap the worker."""
        self._signal_group(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = WORKER_STOP_S) -> None:
        """SIGTERM the process group (warm shutdown), SIGKILL after ``timeout`` s, then clear up."""
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        self.kill()  # pool children left behind, or a worker that would not stop

    def log_text(self) -> str:
        """What the worker has written to its log so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextmanager
def run_worker(
    env: dict[str, str],
    name: str,
    *,
    concurrency: int = 1,
    queues: str | None = None,
    log_dir: Path,
    options: Sequence[str] = (),
) -> Iterator[WorkerProcess]:
    """Start ``python -m video_emotions worker [options]``, wait for Celery's "ready.", stop it on exit."""
    command = [sys.executable, "-m", "video_emotions", "worker", "--concurrency", str(concurrency)]
    command += ["--name", name, *options]
    if queues is not None:
        command += ["--queues", queues]
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    worker = WorkerProcess(name, process, log)
    try:
        deadline = time.monotonic() + WORKER_READY_S
        while "ready." not in worker.log_text():
            if process.poll() is not None:
                raise RuntimeError(
                    f"worker {name} exited ({process.returncode}) before ready:\n{worker.log_text()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} not ready in {WORKER_READY_S} s:\n{worker.log_text()}")
            time.sleep(0.2)
        yield worker
    finally:
        worker.stop()


def blank_at(second: float) -> bool:
    """Whether ``long_face_video`` shows a blank frame (no face) at this time."""
    return second >= BLANK_EVERY_S and second % BLANK_EVERY_S < BLANK_FOR_S


def long_face_video(path: Path, minutes: float, *, fps: int = 5, size: tuple[int, int] = (320, 180)) -> Path:
    """A ``minutes`` long video of the astronaut's face (``size`` is width, height), blank at ``blank_at``."""
    face = face_frame(*size)
    blank = np.full_like(face, 128)
    count = round(minutes * 60 * fps)
    frames = (blank if blank_at(i / fps) else face for i in range(count))
    return encode_video(path, frames, fps=fps, gop=2 * fps)


def speech_segments(seconds: float, *, turn: float = 12.0) -> list[dict]:
    """Ingest-format segments (ms) tiling ``seconds``: candidate (0) ``turn`` s, then interviewer (1) 4 s."""
    total = round(seconds * 1000)
    lengths = {0: round(turn * 1000), 1: 4000}
    segments: list[dict] = []
    start, speaker = 0, 0
    while start < total:
        end = min(start + lengths[speaker], total)
        segments.append({"start": start, "end": end, "speaker": speaker})
        start, speaker = end, 1 - speaker
    return segments


def ingest(
    service: RunningService, video: Path, session: int, interview: int, seconds: float, *, turn: float = 12.0
) -> None:
    """Register ``video`` as an interview with ``seconds`` of alternating speech (``speech_segments``),
    as an operator does: ``video-emotions ingest`` with the service's settings."""
    segments = service.log.parent / f"segments-{session}-{interview}.json"  # the service's data folder
    segments.write_text(json.dumps(speech_segments(seconds, turn=turn)))
    done = service.cli(
        "ingest",
        str(video),
        "--session",
        str(session),
        "--interview",
        str(interview),
        "--segments",
        str(segments),
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="session")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-minute face video (``long_face_video``), built once for the test run."""
    return long_face_video(tmp_path_factory.mktemp("long-video") / "long.mp4", LONG_VIDEO_MINUTES)
