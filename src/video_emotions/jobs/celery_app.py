"""Celery: workers on any number of machines take chunks of jobs from Redis or RabbitMQ.

The broker carries job ids and chunk numbers only; the database holds every job's state, its
chunks' results and its attempts. Acknowledgement comes after a chunk's run (``acks_late``), a
worker that dies mid-chunk has its message handed to another (``reject_on_worker_lost``; on
Redis once ``VE_VISIBILITY_TIMEOUT`` has passed), and each worker takes one message at a time.
"""

from __future__ import annotations

import logging
import threading

from celery import Celery, Task, group

from video_emotions.config import Settings, get_settings
from video_emotions.context import ServiceContext
from video_emotions.errors import InputError
from video_emotions.jobs.runner import RETRY_DELAY_S, error_kind, fail_job, run_chunk
from video_emotions.jobs.webhooks import deliver_webhook

logger = logging.getLogger(__name__)

RUN_CHUNK = "video_emotions.run_chunk"
DELIVER_WEBHOOK = "video_emotions.deliver_webhook"


def make_celery(settings: Settings) -> Celery:
    if not settings.broker_url:
        raise InputError("VE_EXECUTOR=celery needs VE_BROKER_URL (redis://… or amqp://…)")
    celery = Celery("video_emotions", broker=settings.broker_url, set_as_current=False)
    celery.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=settings.queue,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            # Redis: look for messages past their visibility timeout this often (seconds), on
            # every look (kombu's default scans every 10th, every 100 s in all).
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 4)),
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    celery.task(name=RUN_CHUNK, bind=True, acks_late=True)(_run_chunk)
    celery.task(name=DELIVER_WEBHOOK)(_deliver_webhook)
    return celery


_context: ServiceContext | None = None
_context_lock = threading.Lock()


def worker_context() -> ServiceContext:
    """The worker process's service context, made on first use (after the pool forked)."""
    global _context
    with _context_lock:
        if _context is None:
            _context = ServiceContext.from_settings(get_settings())
        return _context


def _run_chunk(task: Task, job_id: str, chunk: int) -> str:
    ctx = worker_context()
    try:
        outcome = run_chunk(ctx, job_id, chunk, task.request.hostname or "celery")
    except Exception as exc:
        # The run could not even be recorded (the database unreachable, say): try again later,
        # then give the job up, so that it is never left running for ever.
        if task.request.retries + 1 < ctx.settings.max_attempts:
            raise task.retry(
                exc=exc, countdown=RETRY_DELAY_S * 2**task.request.retries, max_retries=None
            ) from exc
        logger.exception("job %s, chunk %d: giving up", job_id, chunk)
        if fail_job(ctx, job_id, error_kind(exc), f"chunk {chunk} could not run: {exc}"):
            task.app.send_task(DELIVER_WEBHOOK, args=[job_id], queue=ctx.settings.queue)
        return "ended"
    if outcome.status == "retry":
        # Our own attempts count (VE_MAX_ATTEMPTS), Celery's do not.
        raise task.retry(countdown=outcome.delay, max_retries=None)
    if outcome.ended_job:
        task.app.send_task(DELIVER_WEBHOOK, args=[job_id], queue=ctx.settings.queue)
    return outcome.status


def _deliver_webhook(job_id: str) -> bool:
    return deliver_webhook(worker_context(), job_id)


class CeleryExecutor:
    """Sends jobs to the Celery workers: one message per chunk, as one group."""

    fans_out = True

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.celery = make_celery(ctx.settings)

    def submit(self, job_id: str) -> None:
        chunks = self.ctx.db.chunks(job_id)
        task = self.celery.tasks[RUN_CHUNK]
        group(task.si(job_id, c["chunk"]) for c in chunks).apply_async(queue=self.ctx.settings.queue)

    def notify(self, job_id: str) -> None:
        self.celery.send_task(DELIVER_WEBHOOK, args=[job_id], queue=self.ctx.settings.queue)

    def resume(self) -> list[str]:
        """Nothing to do: the broker hands unacknowledged chunks to the workers again."""
        return []

    def shutdown(self) -> None:
        self.celery.close()
