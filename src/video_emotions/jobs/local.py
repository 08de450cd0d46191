"""The embedded executor: a bounded thread pool in the service's own process.

More jobs than workers wait in the pool's queue. A job for an interview whose analysis is
already queued or running joins it instead of starting a second one.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from video_emotions.context import ServiceContext
from video_emotions.jobs.runner import run_job


class LocalExecutor:
    def __init__(self, ctx: ServiceContext, workers: int) -> None:
        self.ctx = ctx
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="analysis")
        self._lock = threading.Lock()
        self._active: dict[tuple[int, str], tuple[str, Future[None]]] = {}

    def submit(
        self, session_id: int, interview_id: int, model_type: str, engine: str
    ) -> tuple[str, Future[None]]:
        """Create and queue a job, or join the one already active for this interview and engine."""
        key = (interview_id, engine)
        with self._lock:
            active = self._active.get(key)
            if active is not None and not active[1].done():
                return active
            job_id = self.ctx.db.create_job(
                session_id=session_id, interview_id=interview_id, model_type=model_type
            )
            future = self.pool.submit(run_job, self.ctx, job_id)
            self._active[key] = (job_id, future)
            future.add_done_callback(lambda _f: self._forget(key, job_id))
            return job_id, future

    def _forget(self, key: tuple[int, str], job_id: str) -> None:
        with self._lock:
            active = self._active.get(key)
            if active is not None and active[0] == job_id:
                del self._active[key]

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)
