"""The one place an analysis job runs, chunk by chunk, whichever executor runs the chunks.

A job is planned as chunks of whole segments (one, unless Celery fans a long interview out).
Running a chunk analyses its segments and keeps the results in the job's chunk row; the run
that completes the last chunk writes every segment at once, in one transaction, exactly as a
single run does. Every run is an attempt on the job's record, with the worker that made it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.exc import DBAPIError

from video_emotions.analysis import analyse_video, expected_samples
from video_emotions.context import ServiceContext
from video_emotions.domain import Segment, SegmentResult
from video_emotions.errors import (
    ConflictError,
    InputError,
    ModelUnavailableError,
    NotFoundError,
    PolicyRefusal,
    ServiceUnavailableError,
)
from video_emotions.observability.logs import job_context
from video_emotions.observability.metrics import SAMPLES_ANALYSED, observe_stage
from video_emotions.results import expression_words, frame_details, legacy_segment, segment_summary
from video_emotions.storage.blobs import log_key, video_key
from video_emotions.storage.db import ChunkPlan, JobRecord, SegmentWrite
from video_emotions.vision.engine import EmotionEngine
from video_emotions.vision.registry import EngineIdentity

logger = logging.getLogger(__name__)

#: Engines are loaded once per worker thread: a detector instance is not shared between threads.
_engines = threading.local()

#: Failures that another attempt cannot mend: the job fails at once.
PERMANENT_KINDS = frozenset({"input", "not_found", "model_unavailable", "policy"})
#: Seconds before the second attempt of a chunk; doubled for each one after.
RETRY_DELAY_S = 1.0
#: A running chunk records its progress (and looks for a cancellation) at most this often.
PROGRESS_EVERY_S = 0.5


class JobEnded(Exception):
    """The job was cancelled (or failed elsewhere) while a chunk of it ran: stop, write nothing."""


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, ServiceUnavailableError):
        return "unavailable"
    if isinstance(exc, ConflictError):
        return "conflict"
    if isinstance(exc, NotFoundError):
        return "not_found"
    if isinstance(exc, ModelUnavailableError):
        return "model_unavailable"
    if isinstance(exc, InputError):
        return "input"
    if isinstance(exc, PolicyRefusal):
        return "policy"
    return "internal"


def job_fingerprint(identity: EngineIdentity, interval: float, segments: Sequence[Segment]) -> str:
    """What decides a run's results: engine, model files, settings, interval and segments."""
    document = {
        "identity": asdict(identity),
        "interval": interval,
        "segments": [[s.id, round(s.start, 6), round(s.end, 6)] for s in segments],
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def active_key(interview_id: int, engine: str, interval: float) -> str:
    """Equal requests (same interview, engine and interval) share one active job."""
    return f"{interview_id}/{engine}/{interval:g}"


def plan_chunks(segments: Sequence[Segment], interval: float, chunk_seconds: float | None) -> list[ChunkPlan]:
    """Whole segments in order, a new chunk begun once one holds ``chunk_seconds`` of speech;
    one chunk when ``chunk_seconds`` is None."""
    groups: list[list[Segment]] = [[]]
    held = 0.0
    for segment in segments:
        if chunk_seconds is not None and groups[-1] and held >= chunk_seconds:
            groups.append([])
            held = 0.0
        groups[-1].append(segment)
        held += segment.end - segment.start
    return [ChunkPlan([s.id for s in group], expected_samples(group, interval, math.inf)) for group in groups]


def engine_for(ctx: ServiceContext, name: str) -> EmotionEngine:
    cache: dict[str, EmotionEngine] = _engines.__dict__.setdefault("by_name", {})
    if name not in cache:
        cache[name] = ctx.models.load(name)
    return cache[name]


class RunLog:
    """Timestamped lines of a run, kept with its chunk and uploaded next to the video at the end."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, message: str) -> None:
        logger.info(message)
        self.lines.append(f"{datetime.now():%Y-%m-%d %H:%M:%S} {message}")

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


@dataclass(frozen=True)
class ChunkOutcome:
    """How a run of a chunk ended: ``done`` (its results are kept; ``ended_job`` when this run
    also wrote the job's results), ``retry`` (a transient failure, after ``delay`` seconds) or
    ``ended`` (the job is over; ``ended_job`` when this run ended it)."""

    status: Literal["done", "retry", "ended"]
    ended_job: bool = False
    delay: float = 0.0


def segment_write(result: SegmentResult, ctx: ServiceContext) -> SegmentWrite:
    return SegmentWrite(
        result_id=result.segment.id,
        start_ms=result.segment.start * 1000.0,
        end_ms=result.segment.end * 1000.0,
        video_emotions=legacy_segment(result),
        summary=segment_summary(result, ctx.settings.aggregation),
        frames=frame_details(result),
    )


def run_chunk(ctx: ServiceContext, job_id: str, chunk: int, worker: str) -> ChunkOutcome:
    """Run one chunk of a job on ``worker``, and write the job's results when it is the last one in.

    Safe to run again (a redelivered chunk): a chunk already done is not analysed twice, and the
    job's results are written once. Never raises for a failed analysis: the outcome says what next.
    Every line logged meanwhile carries the job's id and the chunk (``job_context``).
    """
    with job_context(job_id, chunk):
        return _run_chunk(ctx, job_id, chunk, worker)


def _run_chunk(ctx: ServiceContext, job_id: str, chunk: int, worker: str) -> ChunkOutcome:
    job = ctx.db.job(job_id)
    if job is None:  # erased with its interview (retention.erase_interview) since it was queued
        return ChunkOutcome("ended")
    if not job.active:
        return ChunkOutcome("ended")
    attempt = ctx.db.start_attempt(job_id, chunk, worker, max_attempts=ctx.settings.max_attempts)
    if attempt.id is None:
        reason = f"{attempt.number - 1} attempts of chunk {chunk} failed: " + "; ".join(
            attempt.earlier_errors
        )
        return ChunkOutcome("ended", ended_job=fail_job(ctx, job_id, "internal", reason))
    log = RunLog()
    try:
        row = ctx.db.chunks(job_id)[chunk]
        if row["state"] == "pending":
            _analyse_chunk(ctx, job, row, worker, attempt.number, log)
        if finish_job(ctx, job_id, attempt.id):
            return ChunkOutcome("done", ended_job=True)
        # Other chunks are still to come, or the job ended meanwhile (cancelled: nothing written).
        ended = ctx.db.job_status(job_id) in ("cancelled", "failed")
        ctx.db.end_attempt(attempt.id, "cancelled" if ended else "succeeded")
        return ChunkOutcome("ended" if ended else "done")
    except JobEnded:
        log(f"chunk {chunk}: stopped, job {job_id} is {ctx.db.job_status(job_id)}; nothing written")
        # The log first: an erasure waits for this attempt to end, then deletes the logs. An erased
        # job (its record gone) leaves none.
        current = ctx.db.job(job_id)
        if current is not None:
            _upload_log(ctx, current, log.text(), record=True)
        ctx.db.end_attempt(attempt.id, "cancelled")
        return ChunkOutcome("ended")
    except Exception as exc:
        kind = error_kind(exc)
        if kind == "internal":
            logger.exception("job %s, chunk %d failed", job_id, chunk)
        message = str(exc)
        ctx.db.end_attempt(attempt.id, "failed", error_kind=kind, error=message)
        if kind not in PERMANENT_KINDS and attempt.number < ctx.settings.max_attempts:
            log(f"chunk {chunk}, attempt {attempt.number} failed ({kind}): {message}; it will run again")
            return ChunkOutcome("retry", delay=RETRY_DELAY_S * 2 ** (attempt.number - 1))
        if attempt.earlier_errors:
            errors = [*attempt.earlier_errors, f"attempt {attempt.number} on {worker}: failed: {message}"]
            message = f"{attempt.number} attempts of chunk {chunk} failed: " + "; ".join(errors)
        log(f"FAILED ({kind}): {message}")
        return ChunkOutcome("ended", ended_job=fail_job(ctx, job_id, kind, message, chunk_log=log.text()))


def _analyse_chunk(
    ctx: ServiceContext, job: JobRecord, row: dict[str, Any], worker: str, attempt: int, log: RunLog
) -> None:
    chunk = row["chunk"]
    route = ctx.models.route(job.model_type)
    engine = engine_for(ctx, route.engine)
    if job.model_file is None:
        ctx.db.update_job(
            job.id,
            engine=engine.name,
            note=route.note,
            model_file=engine.model_file,
            model_sha256=engine.model_sha256,
        )
    by_id = {s.id: s for s in ctx.db.candidate_segments(job.interview_id)}
    missing = [i for i in row["segment_ids"] if i not in by_id]
    if missing:
        raise InputError(
            f"segments {missing} are no longer candidate segments of interview {job.interview_id}"
        )
    segments = [by_id[i] for i in row["segment_ids"]]
    interval = job.interval or ctx.settings.interval
    log(
        f"chunk {chunk}, attempt {attempt} on {worker}: {len(segments)} segments "
        f"({segments[0].start:.3f} to {segments[-1].end:.3f} s)"
    )
    last_report = -math.inf
    counted = 0

    def report(done: int, expected: int, segments_done: int) -> None:
        nonlocal last_report, counted
        SAMPLES_ANALYSED.inc(done - counted)  # after every batch, before the throttle
        counted = done
        now = time.perf_counter()
        if now - last_report < PROGRESS_EVERY_S and segments_done < len(segments):
            return
        last_report = now
        try:
            state = ctx.db.chunk_progress(
                job.id, chunk, samples_done=done, samples_expected=expected, segments_done=segments_done
            )
        except DBAPIError as exc:  # progress is worth a warning, not the run: the write will tell
            logger.warning("job %s: progress not recorded (%s)", job.id, str(exc.orig or exc).splitlines()[0])
            return
        if state not in ("queued", "running"):
            raise JobEnded

    clock = time.perf_counter()
    key = video_key(job.session_id, job.interview_id, ctx.settings.video_filename)
    with ctx.blobs.local_copy(key) as video:
        downloaded = time.perf_counter()
        observe_stage("download", downloaded - clock)
        results = analyse_video(
            video,
            segments,
            engine,
            interval=interval,
            progress=report,
            max_pixels=ctx.settings.max_video_pixels,
        )
    analysed = time.perf_counter()
    observe_stage("analyse", analysed - downloaded)
    writes = []
    warnings = []
    for result in results:
        if result.decoded_until is not None:
            warnings.append(coverage_warning(result))
            log(f"WARNING: {warnings[-1]['message']}")
        if not result.covered:
            continue
        write = segment_write(result, ctx)
        writes.append(asdict(write))
        # The last sample is the closing frame: the first at or after the segment's end.
        first, last = result.frames[0].time, result.frames[-1].time
        log(
            f"segment {result.segment.id} [{result.segment.start:.3f}, {result.segment.end:.3f}) s, "
            f"samples {first:.3f} to {last:.3f} s: "
            f"{write.summary['frames']} frames, face in {write.summary['frames_with_face']}, "
            f"{expression_words(write.summary)}"
        )
    stages = {"download": downloaded - clock, "analyse": analysed - downloaded}
    ctx.db.store_chunk(job.id, chunk, result=writes, log=log.text(), stages=stages, warnings=warnings)


def coverage_warning(result: SegmentResult) -> dict[str, Any]:
    """What a recording cut short kept a segment from: where decoding stopped, the samples missed."""
    segment, until = result.segment, result.decoded_until
    assert until is not None
    where = f"segment {segment.id} [{segment.start:.3f}, {segment.end:.3f}) s"
    stop = f"{until:.3f} s, where the video stops decoding ({result.uncovered_reason})"
    if result.covered:
        message = (
            f"{where}: analysed up to {stop}; "
            f"about {result.uncovered_samples} samples after it were not analysed"
        )
    else:
        message = (
            f"{where} lies after {stop}: "
            f"not analysed (about {result.uncovered_samples} samples), its row left as it was"
        )
    return {
        "segment_id": segment.id,
        "start_ms": segment.start * 1000.0,
        "end_ms": segment.end * 1000.0,
        "decoded_until_s": round(until, 3),
        "samples_not_analysed": result.uncovered_samples,
        "segment_analysed": result.covered,
        "message": message,
    }


def finish_job(ctx: ServiceContext, job_id: str, attempt_id: str | None = None) -> bool:
    """Write the job's results once every chunk is in; returns whether this call wrote them.

    The run log goes up first (a failed write replaces it with the failure's), so that the job
    reads ``succeeded`` only with its record complete: stages, log and this run's attempt.
    """
    job = ctx.db.job(job_id)
    chunks = ctx.db.chunks(job_id)
    if job is None or job.status != "running" or any(c["state"] != "done" for c in chunks):
        return False
    writes = [SegmentWrite(**write) for c in chunks for write in c["result"]]
    warnings = [warning for c in chunks for warning in c["warnings"] or []]
    if not writes:
        reason = "; ".join(w["message"] for w in warnings) or "no segment has a sample"
        raise InputError(f"none of the candidate segments decodes: {reason}")
    stages = {"download": 0.0, "analyse": 0.0}
    for c in chunks:
        for stage, seconds in (c["stages"] or {}).items():
            stages[stage] = stages.get(stage, 0.0) + seconds
    stages = {stage: round(seconds, 3) for stage, seconds in stages.items()}
    closing = RunLog()
    empty = [w.result_id for w in writes if w.summary["frames_with_face"] == 0]
    if empty:
        closing(f"WARNING: no face in any sampled frame of segments {empty}")
    if warnings:
        closing(f"WARNING: {len(warnings)} segments not wholly analysed: the video stops decoding early")
    closing(f"wrote {len(writes)} segments and video_ok in {sum(stages.values()):.1f} s")
    key = _upload_log(ctx, job, _job_log(ctx, job_id) + closing.text())
    clock = time.perf_counter()
    wrote = ctx.db.write_results(
        job_id=job_id,
        interview_id=job.interview_id,
        engine=job.engine or "",
        model_file=job.model_file,
        model_sha256=job.model_sha256,
        segments=writes,
        stages=stages,
        attempt_id=attempt_id,
        log_key=key,
        warnings=warnings,
    )
    if wrote:  # the transaction's time, retries included (the job's stages hold its own clock)
        observe_stage("write", time.perf_counter() - clock)
    return wrote


def fail_job(ctx: ServiceContext, job_id: str, kind: str, message: str, *, chunk_log: str = "") -> bool:
    """End an active job as failed with its reason and upload its log; False if it had ended."""
    if not ctx.db.end_job(job_id, "failed", error_kind=kind, error=message):
        return False
    job = ctx.db.job(job_id)
    assert job is not None
    _upload_log(ctx, job, _job_log(ctx, job_id) + chunk_log, record=True)
    return True


def refuse_job(
    ctx: ServiceContext, *, session_id: int, interview_id: int, model_type: str, exc: Exception
) -> str:
    """Record a request refused by the checks before a job could be queued (no video, no candidate
    segments, bad segments) as a failed job of the interview, with its run log; returns its id."""
    job_id = ctx.db.record_refused_job(
        session_id=session_id,
        interview_id=interview_id,
        model_type=model_type,
        error_kind=error_kind(exc),
        error=str(exc),
    )
    job = ctx.db.job(job_id)
    assert job is not None
    log = RunLog()
    log(f"job {job_id}: session {session_id}, interview {interview_id}, model_type {model_type}")
    log(f"REFUSED before it ran ({job.error_kind}): {exc}")
    _upload_log(ctx, job, log.text(), record=True)
    return job_id


def _job_log(ctx: ServiceContext, job_id: str) -> str:
    """The job's header lines, then the logs its chunks kept."""
    job = ctx.db.job(job_id)
    assert job is not None
    header = RunLog()
    header(
        f"job {job.id}: session {job.session_id}, interview {job.interview_id}, model_type {job.model_type}"
    )
    if job.note:  # an alias, `yolo`, yolo_cloud falling back, or the default serving
        header(job.note)
    if job.engine:
        header(f"engine {job.engine}, model file {job.model_file}, sha256 {job.model_sha256}")
    chunks = ctx.db.chunks(job_id)
    count = "1 chunk" if len(chunks) == 1 else f"{len(chunks)} chunks"
    interval = job.interval or ctx.settings.interval
    header(
        f"{sum(c['segments_total'] for c in chunks)} candidate segments in {count}, interval {interval:g} s"
    )
    if job.caller_left_at is not None:
        header(f"the caller left at {job.caller_left_at:%H:%M:%S}; the run went on to its end")
    return header.text() + "".join(c["log"] or "" for c in chunks)


def _upload_log(ctx: ServiceContext, job: JobRecord, text: str, *, record: bool = False) -> str | None:
    """Upload a run log next to the video; its key, or None when storage refused it (logged).
    With ``record``, the job's ``log_key`` is set at once (else its final write sets it)."""
    key = log_key(job.session_id, job.interview_id, job.started_at or job.created_at)
    try:
        ctx.blobs.put(key, text.encode())
    except Exception:
        logger.exception("could not upload the run log of job %s to %s", job.id, key)
        return None
    if record:
        ctx.db.update_job(job.id, log_key=key)
    return key


def run_job(ctx: ServiceContext, job_id: str, worker: str) -> bool:
    """Run every chunk of a job here, one after the other, retrying as the policy says; returns
    whether this call ended the job (so its webhook is due)."""
    for row in ctx.db.chunks(job_id):
        while True:
            outcome = run_chunk(ctx, job_id, row["chunk"], worker)
            if outcome.status != "retry":
                break
            time.sleep(outcome.delay)
        if outcome.status == "ended" or outcome.ended_job:
            return outcome.ended_job
    return False
