"""JSON log lines, the job a line belongs to (also from the frame sampler's thread), and a process's
native output routed through the logger."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from video_emotions.domain import Sample, Segment
from video_emotions.observability.logs import JobContextFilter, JsonFormatter, current_job, job_context
from video_emotions.video import parallel


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(JobContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> Iterator[Collect]:
    handler = Collect()
    logger = logging.getLogger("tests.observability")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_json_line_fields() -> None:
    record = logging.LogRecord("video_emotions.x", logging.WARNING, __file__, 1, "%d frames", (3,), None)
    document = json.loads(JsonFormatter().format(record))
    assert document.keys() == {"time", "level", "logger", "message"}
    fields = [document[key] for key in ("level", "logger", "message")]
    assert fields == ["WARNING", "video_emotions.x", "3 frames"]
    at = datetime.fromisoformat(document["time"].replace("Z", "+00:00"))
    assert at.utcoffset() == timedelta(0) and abs(datetime.now(UTC) - at) < timedelta(minutes=1)


def test_json_line_carries_the_exception() -> None:
    try:
        raise ValueError("bad frame")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    document = json.loads(JsonFormatter().format(record))
    assert "Traceback" in document["exception"] and "ValueError: bad frame" in document["exception"]


def test_job_context_tags_lines_and_is_undone(collected: Collect) -> None:
    logger = logging.getLogger("tests.observability")
    with job_context("job-1", 2):
        assert current_job() is not None
        logger.info("inside")
        with job_context("job-2"):
            logger.info("nested")
        logger.info("inside again")
    logger.info("outside")
    assert current_job() is None
    records = collected.records
    tags = [(r.getMessage(), getattr(r, "job_id", None), getattr(r, "chunk", None)) for r in records]
    assert tags == [
        ("inside", "job-1", 2),
        ("nested", "job-2", None),
        ("inside again", "job-1", 2),
        ("outside", None, None),
    ]
    line = json.loads(JsonFormatter().format(collected.records[0]))
    assert (line["job_id"], line["chunk"]) == ("job-1", 2)
    assert "job_id" not in json.loads(JsonFormatter().format(collected.records[-1]))


def test_concurrent_jobs_keep_their_own_ids(collected: Collect) -> None:
    logger = logging.getLogger("tests.observability")
    barrier = threading.Barrier(2)

    def run(job_id: str) -> None:
        with job_context(job_id):
            barrier.wait()
            logger.info("from %s", job_id)

    threads = [threading.Thread(target=run, args=(f"job-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {(r.getMessage(), r.job_id) for r in collected.records} == {
        ("from job-0", "job-0"),
        ("from job-1", "job-1"),
    }


def test_the_frame_sampler_threads_log_with_the_job_id(
    collected: Collect, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = logging.getLogger("tests.observability")

    def sample_frames(path: object, segments: list[Segment], *_: object, **__: object) -> Iterator[Sample]:
        logger.info("sampling in %s", threading.current_thread().name)
        for segment in segments:
            for index in range(3):
                yield Sample(segment.id, index, float(index), np.zeros((2, 2, 3), np.uint8))

    # What the sampler logs stands in for; the threads and their context are the real ones.
    monkeypatch.setattr(parallel, "sample_frames", sample_frames)
    segments = [Segment(1, 0.0, 3.0), Segment(2, 5.0, 8.0)]
    with job_context("job-7", 0):
        got = list(parallel.sample_in_parallel(None, segments, 1.0, decoders=2, depth=2))  # type: ignore[arg-type]
    assert sorted((number, s.segment_id, s.index) for number, s in got) == [
        (0, 1, 0),
        (0, 1, 1),
        (0, 1, 2),
        (1, 2, 0),
        (1, 2, 1),
        (1, 2, 2),
    ]
    assert sorted(record.getMessage() for record in collected.records) == [
        "sampling in frame-sampler-0",
        "sampling in frame-sampler-1",
    ]
    assert {(record.job_id, record.chunk) for record in collected.records} == {("job-7", 0)}


NATIVE_SCRIPT = textwrap.dedent(
    """
    import logging, os, threading, warnings
    from video_emotions.config import Settings
    from video_emotions.observability.logs import configure_logging, job_context

    configure_logging(Settings(log_format="json"), capture_native=True)
    log = logging.getLogger("script")
    with job_context("job-1", 0):
        log.info("inside the job")
    os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
    os.write(1, b"\\nworker: Warm shutdown (MainProcess)\\n")
    print("a stray print", flush=True)
    warnings.warn("careful")
    thread = threading.Thread(target=lambda: 1 / 0, name="doomed")
    thread.start()
    thread.join()
    raise RuntimeError("boom")
    """
)


def test_native_output_and_uncaught_exceptions_come_out_as_json_lines() -> None:
    done = subprocess.run([sys.executable, "-c", NATIVE_SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""  # what was written to stdout is in the log, on stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # each one a JSON object
    by_message = {line["message"]: line for line in lines}
    assert by_message["inside the job"]["job_id"] == "job-1"
    native = by_message["INFO: Created TensorFlow Lite XNNPACK delegate for CPU."]
    assert (native["logger"], native["level"]) == ("stderr", "INFO")
    assert by_message["worker: Warm shutdown (MainProcess)"]["logger"] == "stdout"
    assert by_message["a stray print"]["logger"] == "stdout"
    assert any(line["logger"] == "py.warnings" and "careful" in line["message"] for line in lines)
    in_thread = by_message["uncaught exception in thread doomed"]
    assert "ZeroDivisionError" in in_thread["exception"]
    uncaught = by_message["uncaught exception"]
    assert uncaught["level"] == "CRITICAL" and "RuntimeError: boom" in uncaught["exception"]
