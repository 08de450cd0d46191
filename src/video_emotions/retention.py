"""Retention and erasure: how long we keep what we hold of an interview, and erasing all of it.

What we hold of an interview:

- our rows: ``ve_segment_results`` (per segment its summary and its per-frame detail: time, face
  box, detector score, faces counted, the seven estimates), ``ve_jobs`` with ``ve_job_chunks`` (a
  chunk keeps its segments' results, per-frame detail included, and its run log lines until the job
  writes), ``ve_job_attempts`` and ``ve_webhook_deliveries``, and ``ve_interview_facts``;
- the columns we write in the application's tables: ``results.video_emotions`` (the legacy per-frame
  JSON its front end reads) and ``interviews.video_ok``;
- the run logs in storage, ``{session}/{interview}/logs/videoLog_<the run's start>``;
- the videos, ``{session}/{interview}/raw/<VE_VIDEO_FILENAME>``, only when we own the bucket
  (``VE_DELETE_VIDEOS=true``); otherwise they are the application's, which uploaded them.

Copies of a video made for an analysis or a frame are temporary files removed after each use:
no cached copy is kept anywhere.

:func:`sweep` (``VE_RETENTION_DAYS``) deletes the per-frame detail (``ve_segment_results.frames``
becomes ``[]``; the summary stays), the chunks' results and log lines, the run logs and, with
``VE_DELETE_VIDEOS``, the videos older than the limit. It keeps the job records and the summaries,
which hold no per-frame detail, and ``results.video_emotions``: that column is what the application
asked for and shows, and its rows live as long as the application keeps them (erasure clears it).

:func:`erase_interview` deletes every row of ours for an interview, clears the columns we wrote, and
deletes its run logs (and its video when we own the bucket), after cancelling a job of it that is
queued or running. The rows go in one transaction; the storage objects after it commits: a failure
there is in the report (and logged), and erasing again finishes the job.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, null, or_, select, update

from video_emotions.context import ServiceContext
from video_emotions.errors import InputError, NotFoundError
from video_emotions.storage import schema
from video_emotions.storage.blobs import BlobInfo, video_key
from video_emotions.storage.db import Database, retrying, utcnow

logger = logging.getLogger(__name__)

#: A run log's key, as :func:`video_emotions.storage.blobs.log_key` makes it (the seed's too): the time
#: in its name is its run's start.
RUN_LOG = re.compile(
    r"(?P<session>\d+)/(?P<interview>\d+)/logs/videoLog_(?P<stamp>\d{4}(?:_\d\d){3}\.\d\d\.\d\d)"
)
RUN_LOG_STAMP = "%Y_%m_%d_%H.%M.%S"
#: Seconds an erasure waits for the running chunks of the jobs it cancelled to stop (at their next
#: batch of frames), so that no run writes a log after it.
ERASE_WAIT_S = 30.0
#: Keys per ``IN (...)`` list when job records are told their log is gone.
KEYS_PER_STATEMENT = 500


@dataclass
class SweepReport:
    """What a retention sweep deleted (with ``dry_run``: would delete)."""

    days: int
    cutoff: datetime
    dry_run: bool
    #: ``ve_segment_results`` rows whose per-frame detail went (their summaries stay).
    frames_cleared: int = 0
    #: ``ve_job_chunks`` rows whose results and run log lines went.
    chunk_results_cleared: int = 0
    run_logs: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    #: Storage objects that could not be deleted (or listed), and why: the next sweep tries again.
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"cutoff": self.cutoff.isoformat()}

    def summary(self) -> str:
        """One line for the log and the terminal."""
        verb = "would delete" if self.dry_run else "deleted"
        text = (
            f"retention sweep ({self.days} days, before {self.cutoff:%Y-%m-%d %H:%M:%S} UTC): {verb} the "
            f"per-frame detail of {self.frames_cleared} segments, the results of "
            f"{self.chunk_results_cleared} job chunks, {len(self.run_logs)} run logs, "
            f"{len(self.videos)} videos"
        )
        return text + (f"; {len(self.errors)} storage errors" if self.errors else "")


@dataclass
class ErasureReport:
    """What erasing an interview deleted: rows per table, columns cleared, storage keys."""

    interview_id: int
    session_id: int | None
    #: Jobs of the interview that were queued or running, cancelled before the rest went.
    cancelled_jobs: list[str] = field(default_factory=list)
    #: Our tables: rows deleted from each.
    rows: dict[str, int] = field(default_factory=dict)
    #: The application's columns we write: rows cleared (``video_emotions`` NULL, ``video_ok`` false).
    cleared: dict[str, int] = field(default_factory=dict)
    #: Storage objects deleted.
    objects: list[str] = field(default_factory=list)
    #: Storage objects left on purpose, and why (the application's video).
    left: list[dict[str, str]] = field(default_factory=list)
    #: Storage objects that could not be deleted (or listed), and why: erase again to finish.
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"complete": self.complete}


# The sweep ----------------------------------------------------------------------------------------


def sweep(
    ctx: ServiceContext, now: datetime | None = None, *, days: int | None = None, dry_run: bool = False
) -> SweepReport:
    """Delete what is older than ``days`` (default ``VE_RETENTION_DAYS``) before ``now``: per-frame
    detail of segments written before then, the results and log lines of job chunks whose job ended
    before then, run logs of runs that started before then and, with ``VE_DELETE_VIDEOS``, videos last
    written before then (but for interviews with a job queued or running). ``dry_run``: only count."""
    days = days if days is not None else ctx.settings.retention_days
    if days is None:
        raise InputError("no retention period: set VE_RETENTION_DAYS (days), or everything is kept")
    if days < 1:
        raise InputError(f"the retention period must be at least 1 day, not {days}")
    cutoff = (now or utcnow()) - timedelta(days=days)
    report = SweepReport(days=days, cutoff=cutoff, dry_run=dry_run)
    report.frames_cleared, report.chunk_results_cleared = _sweep_rows(ctx.db, cutoff, dry_run=dry_run)
    _sweep_storage(ctx, report)
    return report


def _sweep_rows(db: Database, cutoff: datetime, *, dry_run: bool) -> tuple[int, int]:
    s, c, j = schema.segment_results.c, schema.job_chunks.c, schema.jobs.c
    array_length = (
        func.jsonb_array_length if db.engine.dialect.name == "postgresql" else func.json_array_length
    )
    old_frames = (s.written_at < cutoff, array_length(s.frames) > 0)
    ended = select(j.id).where(j.finished_at < cutoff, j.status.not_in(schema.ACTIVE_STATES))
    old_chunks = (c.job_id.in_(ended), or_(c.result.is_not(None), c.log.is_not(None)))

    def apply() -> tuple[int, int]:
        with db.engine.begin() as conn:
            if dry_run:
                frames = conn.execute(select(func.count()).where(*old_frames)).scalar_one()
                chunks = conn.execute(select(func.count()).where(*old_chunks)).scalar_one()
                return frames, chunks
            frames = conn.execute(update(schema.segment_results).where(*old_frames).values(frames=[]))
            chunks = conn.execute(
                update(schema.job_chunks).where(*old_chunks).values(result=null(), log=None)
            )
            return frames.rowcount, chunks.rowcount

    return retrying(apply, what="the retention sweep of per-frame detail")


def _video_pattern(filename: str) -> re.Pattern[str]:
    return re.compile(r"(?P<session>\d+)/(?P<interview>\d+)/raw/" + re.escape(filename))


def _sweep_storage(ctx: ServiceContext, report: SweepReport) -> None:
    try:
        objects = ctx.blobs.list("")
    except Exception as exc:
        logger.exception("retention sweep: could not list the bucket")
        report.errors.append({"key": "", "error": f"could not list the bucket: {exc}"})
        return
    videos = _video_pattern(ctx.settings.video_filename)
    busy = _interviews_with_active_jobs(ctx.db) if ctx.settings.delete_videos else set()
    for info in objects:
        log = RUN_LOG.fullmatch(info.key)
        if log is not None:
            if datetime.strptime(log["stamp"], RUN_LOG_STAMP).replace(tzinfo=UTC) < report.cutoff:
                report.run_logs.append(info.key)
            continue
        video = videos.fullmatch(info.key) if ctx.settings.delete_videos else None
        if (
            video is not None
            and info.modified < report.cutoff
            and (int(video["session"]), int(video["interview"])) not in busy
        ):
            report.videos.append(info.key)
    if report.dry_run:
        return
    report.run_logs = _delete_objects(ctx, report.run_logs, report.errors, what="retention sweep")
    report.videos = _delete_objects(ctx, report.videos, report.errors, what="retention sweep")
    _forget_log_keys(ctx.db, report.run_logs)


def _interviews_with_active_jobs(db: Database) -> set[tuple[int, int]]:
    j = schema.jobs.c
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(j.session_id, j.interview_id).where(j.status.in_(schema.ACTIVE_STATES)).distinct()
        ).all()
    return {(row.session_id, row.interview_id) for row in rows}


def _delete_objects(
    ctx: ServiceContext, keys: Iterable[str], errors: list[dict[str, str]], *, what: str
) -> list[str]:
    """Delete each object; returns the keys deleted, and adds the others to ``errors`` (logged)."""
    deleted = []
    for key in keys:
        try:
            ctx.blobs.delete(key)
        except Exception as exc:
            logger.error("%s: could not delete %s from storage: %s", what, key, exc)
            errors.append({"key": key, "error": str(exc)})
            continue
        deleted.append(key)
    return deleted


def _forget_log_keys(db: Database, keys: list[str]) -> None:
    """Job records whose run log was deleted no longer name it (``log_key`` null)."""
    for start in range(0, len(keys), KEYS_PER_STATEMENT):
        batch = keys[start : start + KEYS_PER_STATEMENT]

        def apply(batch: list[str] = batch) -> None:
            with db.engine.begin() as conn:
                conn.execute(update(schema.jobs).where(schema.jobs.c.log_key.in_(batch)).values(log_key=None))

        retrying(apply, what="the retention sweep of log keys")


# Erasure ------------------------------------------------------------------------------------------


def erase_interview(ctx: ServiceContext, interview_id: int, *, wait_s: float = ERASE_WAIT_S) -> ErasureReport:
    """Erase everything we hold of an interview; NotFoundError when we hold nothing and the interview
    does not exist. A job of it that is queued or running is cancelled first (waiting up to ``wait_s``
    for a running chunk to stop); then our rows go and the columns we wrote are cleared, in one
    transaction; then its run logs (and, with ``VE_DELETE_VIDEOS``, its video) leave storage."""
    db, settings = ctx.db, ctx.settings
    interview = db.interview(interview_id)
    jobs = db.jobs_for_interview(interview_id)
    sessions = sorted({job.session_id for job in jobs} | ({interview["session_id"]} if interview else set()))
    session_id = interview["session_id"] if interview else (sessions[0] if sessions else None)
    report = ErasureReport(interview_id=interview_id, session_id=session_id)
    for job in jobs:
        if job.active and db.end_job(
            job.id, "cancelled", error_kind="cancelled", error="cancelled: its interview is being erased"
        ):
            report.cancelled_jobs.append(job.id)
    if report.cancelled_jobs:
        _wait_for_runs(db, report.cancelled_jobs, wait_s)
    report.rows, report.cleared = retrying(
        lambda: _erase_rows(db, interview_id), what=f"erasing interview {interview_id}"
    )
    if interview is None and not any(report.rows.values()):
        raise NotFoundError(f"interview {interview_id} does not exist, and we hold nothing of it")
    for session in sessions:
        _erase_objects(ctx, session, interview_id, report)
    if session_id is not None:
        _erase_video(ctx, video_key(session_id, interview_id, settings.video_filename), report)
    logger.info(
        "erased interview %d: rows %s, cleared %s, %d storage objects, %d cancelled jobs%s",
        interview_id,
        report.rows,
        report.cleared,
        len(report.objects),
        len(report.cancelled_jobs),
        f"; {len(report.errors)} storage objects NOT deleted (erase again)" if report.errors else "",
    )
    return report


def _erase_video(ctx: ServiceContext, video: str, report: ErasureReport) -> None:
    """Delete the video when we own the bucket (``VE_DELETE_VIDEOS``); else say it is left, and why."""
    try:
        present = ctx.blobs.exists(video)
    except Exception as exc:
        logger.error(
            "erasing interview %d: could not look for %s in storage: %s", report.interview_id, video, exc
        )
        report.errors.append({"key": video, "error": f"could not look for it: {exc}"})
        return
    if not present:
        return
    if ctx.settings.delete_videos:
        report.objects += _delete_objects(
            ctx, [video], report.errors, what=f"erasing interview {report.interview_id}"
        )
    else:
        reason = (
            "the video is the application's (VE_DELETE_VIDEOS=false): the application erases it, with its "
            "own rows"
        )
        report.left.append({"key": video, "reason": reason})


def _wait_for_runs(db: Database, job_ids: list[str], wait_s: float) -> None:
    """Wait until no attempt of these jobs is running (a running chunk stops at its next batch and
    uploads its log first), at most ``wait_s``."""
    a = schema.job_attempts.c
    deadline = time.monotonic() + wait_s
    while True:
        with db.engine.connect() as conn:
            running = conn.execute(
                select(func.count()).where(a.job_id.in_(job_ids), a.outcome == "running")
            ).scalar_one()
        if not running:
            return
        if time.monotonic() >= deadline:
            logger.warning("erasure: %d runs of jobs %s still running after %g s", running, job_ids, wait_s)
            return
        time.sleep(0.2)


def _erase_rows(db: Database, interview_id: int) -> tuple[dict[str, int], dict[str, int]]:
    """Delete our rows of the interview and clear the columns we wrote, in one transaction."""
    j, s, r, i = schema.jobs.c, schema.segment_results.c, schema.results.c, schema.interviews.c
    with db.engine.begin() as conn:
        # As the results write does: a write of this interview waits for us (and then finds no job).
        conn.execute(select(i.id).where(i.id == interview_id).with_for_update(key_share=True))
        jobs = select(j.id).where(j.interview_id == interview_id)
        rows: dict[str, int] = {}
        for table in (schema.webhook_deliveries, schema.job_attempts, schema.job_chunks):
            rows[table.name] = conn.execute(delete(table).where(table.c.job_id.in_(jobs))).rowcount
        rows[schema.jobs.name] = conn.execute(
            delete(schema.jobs).where(j.interview_id == interview_id)
        ).rowcount
        ours = or_(
            s.interview_id == interview_id,
            s.result_id.in_(select(r.id).where(r.interview_id == interview_id)),
        )
        rows[schema.segment_results.name] = conn.execute(delete(schema.segment_results).where(ours)).rowcount
        facts = schema.interview_facts
        rows[facts.name] = conn.execute(delete(facts).where(facts.c.interview_id == interview_id)).rowcount
        cleared = {
            "results.video_emotions": conn.execute(
                update(schema.results)
                .where(r.interview_id == interview_id, r.video_emotions.is_not(None))
                .values(video_emotions=null())
            ).rowcount,
            "interviews.video_ok": conn.execute(
                update(schema.interviews)
                .where(i.id == interview_id, or_(i.video_ok.is_(True), i.video_ok.is_(None)))
                .values(video_ok=False)
            ).rowcount,
        }
    return rows, cleared


def _erase_objects(ctx: ServiceContext, session_id: int, interview_id: int, report: ErasureReport) -> None:
    """Delete the interview's run logs under ``{session}/{interview}/logs/``."""
    prefix = f"{session_id}/{interview_id}/logs/"
    try:
        listed: list[BlobInfo] = ctx.blobs.list(prefix)
    except Exception as exc:
        logger.error("erasing interview %d: could not list %s in storage: %s", interview_id, prefix, exc)
        report.errors.append({"key": prefix, "error": f"could not list: {exc}"})
        return
    logs = [info.key for info in listed if RUN_LOG.fullmatch(info.key)]
    report.objects += _delete_objects(ctx, logs, report.errors, what=f"erasing interview {interview_id}")
