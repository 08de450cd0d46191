"""Prometheus metrics, with the official client.

Where each one lives:

- ``video_emotions_jobs{state}``: counted in ``ve_jobs`` at scrape time (:class:`JobsCollector`),
  so the API's ``/metrics`` shows every job, whichever process ran it.
- ``video_emotions_http_request_seconds{method,route,status}``: the API process (middleware).
- ``video_emotions_samples_analysed_total``, ``video_emotions_stage_seconds{stage}``,
  ``video_emotions_model_seconds{engine}``: the process that runs the analysis, the API with the
  local executor, each Celery worker with ``VE_EXECUTOR=celery`` (``video-emotions worker
  --metrics-port N``; a prefork pool's children need ``PROMETHEUS_MULTIPROC_DIR``).

When ``PROMETHEUS_MULTIPROC_DIR`` is set, every process writes its values to files there and an
exposition reads them all (``MultiProcessCollector``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

__all__ = [
    "CONTENT_TYPE_LATEST",
    "HTTP_REQUEST_SECONDS",
    "MODEL_SECONDS",
    "SAMPLES_ANALYSED",
    "STAGE_SECONDS",
    "HttpMetricsMiddleware",
    "JobsCollector",
    "clear_multiprocess_dir",
    "exposition_registry",
    "observe_stage",
    "render_api_metrics",
    "route_label",
    "serve_worker_metrics",
    "time_model",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The route label of a request that matched no route (a 404): raw paths never become labels.
UNMATCHED = "unmatched"

SAMPLES_ANALYSED = Counter(
    "video_emotions_samples_analysed", "Sampled frames analysed (with a face or without), in this process."
)
STAGE_SECONDS = Histogram(
    "video_emotions_stage_seconds",
    "Seconds a chunk spent per stage: download (the video), analyse (decoding and inference), "
    "write (the job's results, one transaction).",
    ["stage"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
MODEL_SECONDS = Histogram(
    "video_emotions_model_seconds",
    "Seconds of one batch's inference (engine.estimate), by the engine that ran.",
    ["engine"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
HTTP_REQUEST_SECONDS = Histogram(
    "video_emotions_http_request_seconds",
    "Seconds from a request's arrival to its response's end, by method, route template and status.",
    ["method", "route", "status"],
    # /analyse_video answers once the analysis is written: up to the caller's 300 s.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


def observe_stage(stage: str, seconds: float) -> None:
    STAGE_SECONDS.labels(stage=stage).observe(seconds)


@contextmanager
def time_model(engine: str) -> Iterator[None]:
    """Observe the seconds of the block (one batch's inference) under ``engine``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        MODEL_SECONDS.labels(engine=engine).observe(time.perf_counter() - started)


class JobsCollector:
    """``video_emotions_jobs{state}``: the jobs in the database by state, counted when scraped.

    Every state is given (0 when none). A database that does not answer is logged and the
    family left out, so that the rest of the scrape still comes through.
    """

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        from video_emotions.storage.schema import JOB_STATES  # not for analysis.py, which imports us

        try:
            counts = self._counts()
        except Exception:
            logger.warning("metrics: could not count the jobs by state", exc_info=True)
            return []
        family = GaugeMetricFamily(
            "video_emotions_jobs", "Jobs in ve_jobs by state, counted at scrape time.", labels=["state"]
        )
        for state in [*JOB_STATES, *sorted(set(counts) - set(JOB_STATES))]:
            family.add_metric([state], counts.get(state, 0))
        return [family]


class _ThisProcess:
    """The default registry's metrics (ours and the process's), for a registry of our own."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def exposition_registry() -> CollectorRegistry:
    """A registry of what this process exposes: every process's values in ``PROMETHEUS_MULTIPROC_DIR``
    when that is set, else this process's own."""
    registry = CollectorRegistry()
    if multiprocess_dir() is not None:
        MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    return registry


def render_api_metrics(job_counts: Callable[[], dict[str, int]]) -> bytes:
    """The API's ``/metrics`` page: this process's metrics and the jobs by state (database)."""
    registry = exposition_registry()
    registry.register(JobsCollector(job_counts))
    return generate_latest(registry)


def clear_multiprocess_dir(path: Path) -> int:
    """Remove the value files that processes no longer alive left in ``path`` (a previous run's),
    as prometheus_client asks before a run; returns how many. Only ``*_PID.db`` files are touched:
    this process's own and those of living processes stay."""
    removed = 0
    for file in path.glob("*_*.db"):
        pid = file.stem.rsplit("_", 1)[1]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        file.unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def serve_worker_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Serve a worker's metrics on ``host:port`` (a thread of this process).

    With ``PROMETHEUS_MULTIPROC_DIR``, the values of every process of the worker (the prefork
    pool's children, where the chunks run) are read from there, after an earlier run's files are
    cleared; without it, only this main process's, where no chunk runs with a prefork pool: said
    in a warning. Call it before the pool forks.
    """
    directory = multiprocess_dir()
    if directory is None:
        logger.warning(
            "worker metrics on %s:%d hold this main process only: the prefork pool's children, "
            "where chunks run, are not in them; set %s to an empty folder of this worker's own",
            host,
            port,
            MULTIPROC_ENV,
        )
    elif not directory.is_dir():
        raise NotADirectoryError(f"{MULTIPROC_ENV}={directory} is not a folder")
    else:
        removed = clear_multiprocess_dir(directory)
        if removed:
            logger.info("removed %d metric files an earlier run left in %s", removed, directory)
    start_http_server(port, addr=host, registry=exposition_registry())
    logger.info("worker metrics at http://%s:%d/metrics", host, port)


def route_label(scope: Scope) -> str:
    """The path template of the route a request went to (``/v1/analyses/{job_id}``), or
    ``unmatched``: never the raw path, whose ids would make a series each."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    app = scope.get("app")
    routes = getattr(getattr(app, "router", None), "routes", [])
    partial = None
    for candidate in routes:
        match, _child = candidate.matches(scope)
        if match is Match.FULL:
            return getattr(candidate, "path", UNMATCHED)
        if match is Match.PARTIAL and partial is None:
            partial = candidate  # the path matches, the method does not (405)
    return getattr(partial, "path", UNMATCHED) if partial is not None else UNMATCHED


class HttpMetricsMiddleware:
    """Observes ``video_emotions_http_request_seconds`` for every HTTP request (a plain ASGI
    middleware: it leaves the request's streams and disconnects alone)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        outcome = "500"
        try:
            await self.app(scope, receive, send_status)
            outcome = str(status) if status is not None else "500"
        except asyncio.CancelledError:
            outcome = str(status) if status is not None else "499"  # the caller left
            raise
        except Exception:
            outcome = str(status) if status is not None else "500"
            raise
        finally:
            HTTP_REQUEST_SECONDS.labels(
                method=scope.get("method", "GET"), route=route_label(scope), status=outcome
            ).observe(time.perf_counter() - started)
