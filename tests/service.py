"""Our own service started as a subprocess on a free loopback port, as a caller meets it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from video_emotions.config import Settings
from video_emotions.context import ServiceContext

#: The README walk-through's segments of woman2.mp4 (ms): two of the candidate, one of the interviewer.
WALKTHROUGH_SEGMENTS = [
    {"start": 0, "end": 2000, "speaker": 0},
    {"start": 2000, "end": 3000, "speaker": 1},
    {"start": 3000, "end": 4600, "speaker": 0},
]


def write_walkthrough_segments(path: Path) -> Path:
    path.write_text(json.dumps(WALKTHROUGH_SEGMENTS))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningService:
    url: str
    env: dict[str, str]
    settings: Settings
    log: Path
    process: subprocess.Popen[bytes] | None = None
    _ctx: ServiceContext | None = None

    @property
    def ctx(self) -> ServiceContext:
        """A context on the service's database and storage, made on first use (the database may
        be unreachable when the service starts)."""
        if self._ctx is None:
            self._ctx = ServiceContext.from_settings(self.settings)
        return self._ctx

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python -m video_emotions ARGS`` with the service's settings (its database and storage)."""
        return subprocess.run(
            [sys.executable, "-m", "video_emotions", *args], env=self.env, capture_output=True, text=True
        )

    def ingest_walkthrough(self, video: Path, session: int, *interviews: int) -> None:
        """``ingest`` ``video`` as each of ``interviews`` of ``session``, with the walk-through's segments."""
        segments = write_walkthrough_segments(self.settings.data_dir / "walkthrough-segments.json")
        for interview in interviews:
            ids = ["--session", str(session), "--interview", str(interview)]
            done = self.cli("ingest", str(video), *ids, "--segments", str(segments))
            assert done.returncode == 0, done.stderr

    def peak_rss_mb(self) -> float:
        """The service process's peak resident memory so far (VmHWM), in MiB."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024


def service_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VE_") or k == "VE_MODEL_DIR"}
    env["VE_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


@contextmanager
def run_service(data_dir: Path, *, healthy: bool = True, **extra: str) -> Iterator[RunningService]:
    """Start the service; wait until ``/health`` says ok (with ``healthy=False``: until it answers
    at all, as a service serving degraded does)."""
    port = free_port()
    env = service_env(data_dir, VE_PORT=str(port), **extra)
    log = data_dir / "service.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "video_emotions", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200 or not healthy:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"service did not start:\n{log.read_text()}")
            time.sleep(0.2)
        settings = Settings(
            data_dir=data_dir, **{k[3:].lower(): v for k, v in extra.items() if k.startswith("VE_")}
        )
        running = RunningService(url, env, settings, log, process)
        yield running
        if running._ctx is not None:
            running._ctx.db.dispose()
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
