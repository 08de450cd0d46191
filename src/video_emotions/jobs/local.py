"""The embedded executor: a bounded thread pool in the service's own process.

More jobs than workers wait in the pool's queue. At start it takes up again the jobs that a
crash or a stop left queued or running (the database says which): their chunks already done
are kept, the rest run again. One service process per database runs this executor.
"""

from __future__ import annotations

import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor

from video_emotions.context import ServiceContext
from video_emotions.jobs.runner import run_job
from video_emotions.jobs.webhooks import deliver_webhook

logger = logging.getLogger(__name__)


class LocalExecutor:
    #: One chunk per job: a single process gains nothing from splitting an interview.
    fans_out = False

    def __init__(self, ctx: ServiceContext, workers: int) -> None:
        self.ctx = ctx
        self.worker = f"local@{socket.gethostname()}:{os.getpid()}"
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="analysis")

    def resume(self) -> list[str]:
        """Queue again every job left unfinished; returns their ids."""
        unfinished = self.ctx.db.unfinished_jobs()
        if unfinished:
            logger.info("taking up %d unfinished jobs again: %s", len(unfinished), ", ".join(unfinished))
        for job_id in unfinished:
            self.submit(job_id)
        return unfinished

    def submit(self, job_id: str) -> None:
        self.pool.submit(self._run, job_id)

    def notify(self, job_id: str) -> None:
        """Send the webhook of a job that ended outside a run (cancelled while queued, say)."""
        self.pool.submit(self._deliver, job_id)

    def _run(self, job_id: str) -> None:
        try:
            if run_job(self.ctx, job_id, self.worker):
                self._deliver(job_id)
        except Exception:
            logger.exception("job %s: the executor could not run it; it stays for the next start", job_id)

    def _deliver(self, job_id: str) -> None:
        try:
            deliver_webhook(self.ctx, job_id)
        except Exception:
            logger.exception("webhook of job %s failed", job_id)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)
