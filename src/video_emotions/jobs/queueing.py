"""Turning a checked request into a job: answered from stored results, joined to an equal active
job, or queued anew with its chunks. The same for /analyse_video, /v1/analyses and the CLI."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from video_emotions.context import ServiceContext
from video_emotions.domain import Segment
from video_emotions.errors import ConflictError, ServiceUnavailableError
from video_emotions.jobs.executors import Executor
from video_emotions.jobs.runner import active_key, job_fingerprint, plan_chunks

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Queued:
    """The job that answers a request, and whether it was created for it."""

    job_id: str
    created: bool


def queue_analysis(
    ctx: ServiceContext,
    executor: Executor,
    *,
    session_id: int,
    interview_id: int,
    model_type: str,
    engine: str,
    segments: Sequence[Segment],
    interval: float,
    callback_url: str | None = None,
    force: bool = False,
) -> Queued:
    identity = ctx.models.identity(engine)
    fingerprint = job_fingerprint(identity, interval, segments)
    if not force:
        stored = ctx.db.finished_job(interview_id, fingerprint)
        if stored is not None:
            return Queued(stored, created=False)
    chunk_seconds = ctx.settings.chunk_seconds if executor.fans_out else None
    job_id, created = ctx.db.create_job(
        session_id=session_id,
        interview_id=interview_id,
        model_type=model_type,
        active_key=active_key(interview_id, engine, interval),
        chunks=plan_chunks(segments, interval, chunk_seconds),
        interval=interval,
        classifier=identity.details.get("classifier"),
        callback_url=callback_url,
        fingerprint=fingerprint,
    )
    if created:
        try:
            executor.submit(job_id)
        except Exception as exc:
            logger.exception("job %s could not be queued", job_id)
            ctx.db.end_job(job_id, "failed", error_kind="unavailable", error=f"could not be queued: {exc}")
            raise ServiceUnavailableError(f"the job could not be queued ({exc}); try again later") from exc
    return Queued(job_id, created)


def cancel_analysis(ctx: ServiceContext, executor: Executor, job_id: str) -> None:
    """Cancel a queued or running job: a running one stops at its next batch and writes nothing."""
    if ctx.db.end_job(job_id, "cancelled", error_kind="cancelled", error="cancelled on request"):
        executor.notify(job_id)
        return
    status = ctx.db.job_status(job_id)
    raise ConflictError(f"job {job_id} has ended ({status}): only a queued or running job can be cancelled")
