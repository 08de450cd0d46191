"""The embedded executor: a bounded thread pool in the service's own process.

More jobs than workers wait in the pool's queue. At start it takes up again the jobs that a
crash or a stop left queued or running (the database says which): their chunks already done
are kept, the rest run again. One service process per database runs this executor.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

from video_emotions.context import ServiceContext
from video_emotions.jobs.runner import RETRY_DELAY_S, run_job
from video_emotions.jobs.webhooks import deliver_webhook

logger = logging.getLogger(__name__)

#: The longest wait before a job whose run could not be recorded runs again (seconds).
RESUBMIT_MAX_S = 60.0


class LocalExecutor:
    #: One chunk per job: a single process gains nothing from splitting an interview.
    fans_out = False

    def __init__(self, ctx: ServiceContext, workers: int) -> None:
        self.ctx = ctx
        self.worker = f"local@{socket.gethostname()}:{os.getpid()}"
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="analysis")
        self._stopping = threading.Event()
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()

    def resume(self) -> list[str]:
        """Queue again every job left unfinished; returns their ids."""
        unfinished = self.ctx.db.unfinished_jobs()
        if unfinished:
            logger.info("taking up %d unfinished jobs again: %s", len(unfinished), ", ".join(unfinished))
        for job_id in unfinished:
            self.submit(job_id)
        return unfinished

    def submit(self, job_id: str, *, delay: float = 0.0) -> None:
        self.pool.submit(self._run, job_id, delay)

    def notify(self, job_id: str) -> None:
        """Send the webhook of a job that ended outside a run (cancelled while queued, say)."""
        self.pool.submit(self._deliver, job_id)

    def _run(self, job_id: str, delay: float) -> None:
        try:
            if run_job(self.ctx, job_id, self.worker):
                self._deliver(job_id)
        except Exception:
            # The run could not even record how it went (the database unreachable, say): run it
            # again later. Its attempt, left running, then counts as lost (VE_MAX_ATTEMPTS).
            later = min(RESUBMIT_MAX_S, max(RETRY_DELAY_S, 2 * delay))
            logger.exception("job %s: its run could not be recorded; running it again in %g s", job_id, later)
            self._later(job_id, later)

    def _later(self, job_id: str, delay: float) -> None:
        def resubmit() -> None:
            with self._lock:
                self._timers.discard(timer)
            if not self._stopping.is_set():
                self.submit(job_id, delay=delay)

        timer = threading.Timer(delay, resubmit)
        timer.daemon = True
        with self._lock:
            if self._stopping.is_set():
                return
            self._timers.add(timer)
        timer.start()

    def _deliver(self, job_id: str) -> None:
        try:
            deliver_webhook(self.ctx, job_id)
        except Exception:
            logger.exception("webhook of job %s failed", job_id)

    def shutdown(self) -> None:
        """Finish the running jobs; the queued ones and those waiting to run again stay for the next start."""
        self._stopping.set()
        with self._lock:
            for timer in self._timers:
                timer.cancel()
        self.pool.shutdown(wait=True, cancel_futures=False)
