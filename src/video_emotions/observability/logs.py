"""Log lines as text (as always) or as one JSON object a line, with the job a line belongs to.

``job_context(job_id, chunk)`` marks everything logged inside it, in this thread and in the
threads started with a copy of the context (the frame sampler), as belonging to that job: a
JSON line then carries ``job_id`` (and ``chunk``). A ``contextvars.ContextVar`` holds it, so
concurrent jobs in one process never mix their ids.

With ``VE_LOG_FORMAT=json`` a long-running process (``serve``, ``worker``) also routes what
native libraries write straight to its stdout and stderr (LiteRT's "INFO: Created TensorFlow
Lite XNNPACK delegate", Celery's shutdown notices) through the logger, one JSON line each, so
that the whole stream parses.
"""

from __future__ import annotations

import atexit
import contextvars
import faulthandler
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Any

from video_emotions.config import Settings

#: Today's text format, kept as it is.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: A native library's line that names its level, e.g. LiteRT's "INFO: Created ...".
_NATIVE_LEVEL = re.compile(r"^\s*(DEBUG|INFO|WARNING|WARN|ERROR|FATAL|CRITICAL)\b")
_NATIVE_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
    "CRITICAL": logging.CRITICAL,
}


@dataclass(frozen=True)
class JobTag:
    job_id: str
    chunk: int | None = None


_current_job: contextvars.ContextVar[JobTag | None] = contextvars.ContextVar("ve_job", default=None)


@contextmanager
def job_context(job_id: str, chunk: int | None = None) -> Iterator[None]:
    """Tag every line logged inside (in this context) with ``job_id`` and ``chunk``."""
    token = _current_job.set(JobTag(job_id, chunk))
    try:
        yield
    finally:
        _current_job.reset(token)


def current_job() -> JobTag | None:
    """The job the code running now belongs to, if any."""
    return _current_job.get()


class JobContextFilter(logging.Filter):
    """Puts the current job's ``job_id`` and ``chunk`` on each record (unless given with ``extra``).

    A handler's filter runs in the thread that logs, so it sees that thread's context.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        tag = _current_job.get()
        if tag is not None:
            if getattr(record, "job_id", None) is None:
                record.job_id = tag.job_id
            if getattr(record, "chunk", None) is None and tag.chunk is not None:
                record.chunk = tag.chunk
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (ISO 8601, UTC), level, logger, message, job_id, chunk,
    and exception (the traceback's text) or stack when the record has one."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC)
        document: dict[str, Any] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None)
        if job_id is not None:
            document["job_id"] = job_id
        chunk = getattr(record, "chunk", None)
        if chunk is not None:
            document["chunk"] = chunk
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["exception"] = record.exc_text
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(document, ensure_ascii=False, default=str)


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler configure_logging installs (and replaces when called again).

    Once the native streams are captured, a failure to write is dropped instead of reported on
    sys.stderr, which is then a pipe back into logging, where the report would loop.
    """

    def handleError(self, record: logging.LogRecord) -> None:
        if _captured is None:
            super().handleError(record)


def configure_logging(settings: Settings, *, capture_native: bool = False, level: int = logging.INFO) -> None:
    """Set up the root logger for ``settings.log_format``; calling it again replaces what it set.

    ``capture_native`` (for ``serve`` and ``worker``, with the json format): route what is written
    to the process's stdout and stderr file descriptors (native libraries, Celery's signal
    handlers, stray prints) through the logger as JSON lines, and give uncaught exceptions a
    JSON line too. Never for a process whose streams others own (pytest).
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(handler)
    json_format = settings.log_format == "json"
    stream: IO[str] = sys.stderr
    if json_format and capture_native:
        stream = _capture_native_streams()
        _log_uncaught_exceptions()
    handler = _OurHandler(stream)
    handler.addFilter(JobContextFilter())
    handler.setFormatter(JsonFormatter() if json_format else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    if json_format:
        logging.captureWarnings(True)


def adopt_celery_loggers() -> None:
    """Celery's worker gives its task logger and the multiprocessing logger handlers of its own
    (in its format) even when the root logger is ours: route both to the root logger instead."""
    from celery import signals

    def adopt(**_kwargs: Any) -> None:
        from celery.utils.log import get_multiprocessing_logger, task_logger

        for own in (task_logger, get_multiprocessing_logger()):
            if own is not None:
                own.handlers = [h for h in own.handlers if isinstance(h, _OurHandler)]
                own.propagate = True

    signals.after_setup_logger.connect(adopt, weak=False)
    signals.after_setup_task_logger.connect(adopt, weak=False)


_captured: IO[str] | None = None


def _capture_native_streams() -> IO[str]:
    """Point fds 1 and 2 at pipes read by threads that log each line; return a stream on the
    original stderr for our handler. Done once per process (forked children share the pipes)."""
    global _captured
    if _captured is not None:
        return _captured
    _flush_python_streams()
    original = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
    # A crash's traceback (SIGSEGV, SIGABRT) goes straight to the original stderr: nothing to lose.
    faulthandler.enable(file=original)
    readers = []
    for fd, name, default in ((1, "stdout", logging.INFO), (2, "stderr", logging.WARNING)):
        read_end, write_end = os.pipe()
        saved = os.dup(fd)
        os.dup2(write_end, fd)
        os.close(write_end)
        reader = threading.Thread(
            target=_relay, args=(read_end, logging.getLogger(name), default), name=f"{name}-relay"
        )
        reader.daemon = True
        reader.start()
        readers.append((fd, saved, reader))

    def restore() -> None:
        # Give the relays what was written last: put the original fds back, closing the pipes'
        # write ends here (a forked child still holding one keeps its relay open: joined briefly).
        _flush_python_streams()
        for fd, saved, reader in readers:
            os.dup2(saved, fd)
            reader.join(timeout=1.0)

    atexit.register(restore)
    _captured = original
    return original


def _flush_python_streams() -> None:
    for python_stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):
            python_stream.flush()


def _relay(read_end: int, logger: logging.Logger, default: int) -> None:
    """Log each line written to the pipe, at the level it names (``INFO: ...``) or ``default``."""
    with os.fdopen(read_end, "rb") as pipe:
        for raw in pipe:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not line.strip():
                continue
            named = _NATIVE_LEVEL.match(line)
            logger.log(_NATIVE_LEVELS[named.group(1)] if named else default, "%s", line)


def _log_uncaught_exceptions() -> None:
    """An uncaught exception (main thread or another) becomes one log line with its traceback."""
    logger = logging.getLogger("uncaught")

    def main_hook(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, traceback)
            return
        logger.critical("uncaught exception", exc_info=(kind, value, traceback))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        exc_info = (args.exc_type, args.exc_value, args.exc_traceback)
        logger.error("uncaught exception in thread %s", name, exc_info=exc_info)  # type: ignore[arg-type]

    sys.excepthook = main_hook
    threading.excepthook = thread_hook
