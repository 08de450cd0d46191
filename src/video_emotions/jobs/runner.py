"""The one place an analysis job runs: read segments and video, analyse, write everything at once."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

from video_emotions.analysis import analyse_video
from video_emotions.context import ServiceContext
from video_emotions.domain import Segment
from video_emotions.errors import InputError, ModelUnavailableError, NotFoundError
from video_emotions.results import expression_words, frame_details, legacy_segment, segment_summary
from video_emotions.storage.blobs import log_key, video_key
from video_emotions.storage.db import SegmentWrite, TransientDatabaseError, utcnow
from video_emotions.vision.engine import EmotionEngine
from video_emotions.vision.registry import EngineIdentity

logger = logging.getLogger(__name__)

#: Engines are loaded once per worker thread: a detector instance is not shared between threads.
_engines = threading.local()


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, TransientDatabaseError):
        return "unavailable"
    if isinstance(exc, NotFoundError):
        return "not_found"
    if isinstance(exc, ModelUnavailableError):
        return "model_unavailable"
    if isinstance(exc, InputError):
        return "input"
    return "internal"


def job_fingerprint(identity: EngineIdentity, interval: float, segments: Sequence[Segment]) -> str:
    """What decides a run's results: engine, model files, settings, interval and segments."""
    document = {
        "identity": asdict(identity),
        "interval": interval,
        "segments": [[s.id, round(s.start, 6), round(s.end, 6)] for s in segments],
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def engine_for(ctx: ServiceContext, name: str) -> EmotionEngine:
    cache: dict[str, EmotionEngine] = _engines.__dict__.setdefault("by_name", {})
    if name not in cache:
        cache[name] = ctx.models.load(name)
    return cache[name]


class RunLog:
    """The text log uploaded next to the video at the end of every run, successful or not."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, message: str) -> None:
        logger.info(message)
        self.lines.append(f"{datetime.now():%Y-%m-%d %H:%M:%S} {message}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def run_job(ctx: ServiceContext, job_id: str) -> None:
    """Run one job to its end; the job record says how it ended. Never raises for a failed analysis."""
    job = ctx.db.job(job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    log = RunLog()
    started = utcnow()
    clock = time.perf_counter()
    ctx.db.update_job(job_id, status="running", started_at=started)
    log(f"job {job_id}: session {job.session_id}, interview {job.interview_id}, model_type {job.model_type}")
    try:
        route = ctx.models.route(job.model_type)
        engine_name = route.engine
        engine = engine_for(ctx, engine_name)
        if route.note:  # an alias, `yolo`, yolo_cloud falling back, or the default serving
            log(route.note)
        log(f"engine {engine.name}, model file {engine.model_file}, sha256 {engine.model_sha256}")
        ctx.db.update_job(
            job_id,
            engine=engine.name,
            note=route.note,
            model_file=engine.model_file,
            model_sha256=engine.model_sha256,
        )
        segments = ctx.db.candidate_segments(job.interview_id)
        if not segments:
            raise InputError(f"interview {job.interview_id} has no candidate (speaker 0) segments")
        log(f"{len(segments)} candidate segments, interval {ctx.settings.interval} s")
        fingerprint = job_fingerprint(ctx.models.identity(engine_name), ctx.settings.interval, segments)
        ctx.db.update_job(job_id, fingerprint=fingerprint)
        key = video_key(job.session_id, job.interview_id, ctx.settings.video_filename)
        with ctx.blobs.local_copy(key) as video:
            results = analyse_video(video, segments, engine, interval=ctx.settings.interval)
        writes = []
        for result in results:
            summary = segment_summary(result, ctx.settings.aggregation)
            writes.append(
                SegmentWrite(
                    result_id=result.segment.id,
                    start_ms=result.segment.start * 1000.0,
                    end_ms=result.segment.end * 1000.0,
                    video_emotions=legacy_segment(result),
                    summary=summary,
                    frames=frame_details(result),
                )
            )
            # The last sample is the closing frame: the first at or after the segment's end.
            first, last = result.frames[0].time, result.frames[-1].time
            log(
                f"segment {result.segment.id} [{result.segment.start:.3f}, {result.segment.end:.3f}) s, "
                f"samples {first:.3f} to {last:.3f} s: "
                f"{summary['frames']} frames, face in {summary['frames_with_face']}, "
                f"{expression_words(summary)}"
            )
        empty = [w.result_id for w in writes if w.summary["frames_with_face"] == 0]
        if empty:
            log(f"WARNING: no face in any sampled frame of segments {empty}")
        ctx.db.update_job(job_id, segments=len(writes))
        ctx.db.write_results(
            job_id=job_id,
            interview_id=job.interview_id,
            engine=engine.name,
            model_file=engine.model_file,
            model_sha256=engine.model_sha256,
            segments=writes,
        )
        log(f"wrote {len(writes)} segments and video_ok in {time.perf_counter() - clock:.1f} s")
    except Exception as exc:
        kind = error_kind(exc)
        if kind == "internal":
            logger.exception("job %s failed", job_id)
        log(f"FAILED ({kind}): {exc}")
        ctx.db.update_job(job_id, status="failed", error_kind=kind, error=str(exc), finished_at=utcnow())
    finally:
        ended = ctx.db.job(job_id)
        if ended is not None and ended.caller_left_at is not None:
            log(f"the caller left at {ended.caller_left_at:%H:%M:%S}; the run went on to its end")
        _upload_log(ctx, job_id, job.session_id, job.interview_id, started, log)


def _upload_log(
    ctx: ServiceContext, job_id: str, session_id: int, interview_id: int, started: datetime, log: RunLog
) -> None:
    key = log_key(session_id, interview_id, started)
    try:
        ctx.blobs.put(key, log.text().encode())
        ctx.db.update_job(job_id, log_key=key)
    except Exception:
        logger.exception("could not upload the run log of job %s to %s", job_id, key)
