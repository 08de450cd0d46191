"""The executors a service can send jobs to, behind one interface."""

from __future__ import annotations

from typing import Protocol

from video_emotions.context import ServiceContext


class Executor(Protocol):
    #: Whether a long interview is split into chunks that run at once (VE_CHUNK_SECONDS).
    fans_out: bool

    def submit(self, job_id: str) -> None:
        """Have the job's chunks run; the job record, chunks included, exists already."""

    def notify(self, job_id: str) -> None:
        """Deliver the webhook of a job that ended outside a run."""

    def resume(self) -> list[str]:
        """At start: run again what a crash left unfinished, where the executor must; the ids."""

    def shutdown(self) -> None: ...


def open_executor(ctx: ServiceContext) -> Executor:
    if ctx.settings.executor == "celery":
        from video_emotions.jobs.celery_app import CeleryExecutor

        return CeleryExecutor(ctx)
    from video_emotions.jobs.local import LocalExecutor

    return LocalExecutor(ctx, ctx.settings.workers)
