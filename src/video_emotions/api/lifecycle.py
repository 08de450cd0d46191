"""Starting the service's parts, and serving degraded while they cannot start.

With the database unreachable at start (or its tables not migrated yet) the service still
starts: ``/health`` answers ``degraded`` with the reason, other requests ``503``, and the parts
are tried again every :data:`RETRY_S` seconds until they come up.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from video_emotions.config import Settings
from video_emotions.context import ServiceContext
from video_emotions.jobs.executors import Executor, open_executor
from video_emotions.retention import sweep

logger = logging.getLogger(__name__)

#: Seconds between two tries to start the parts while the service is degraded.
RETRY_S = 5.0


def short_reason(exc: BaseException) -> str:
    """An exception as one line for an operator: the driver's message, without SQLAlchemy's
    statement, parameters or background link."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return text.split(" (Background on this error at:")[0]


class ServiceParts:
    """The context and executor of a running service, or why they are not up yet."""

    def __init__(self, settings: Settings, state: Any, on_ready: Any = None) -> None:
        self.settings = settings
        self.state = state  # the app's ``state``: routes read ``ctx`` and ``executor`` there
        self.on_ready = on_ready
        self.problem: str | None = None
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        state.ctx = None
        state.executor = None
        state.parts = self

    def start(self) -> bool:
        """Try to bring the parts up; returns whether they are."""
        try:
            ctx = ServiceContext.from_settings(self.settings)
        except Exception as exc:
            self.problem = f"cannot open the database: {short_reason(exc)}"
            return False
        executor: Executor = open_executor(ctx)
        executor.resume()
        self.state.ctx, self.state.executor, self.problem = ctx, executor, None
        if self.on_ready is not None:
            self.on_ready(ctx)
        if self.settings.retention_days is not None:
            self._sweeper = threading.Thread(
                target=self._sweep_regularly, args=(ctx,), name="retention-sweep", daemon=True
            )
            self._sweeper.start()
        return True

    def _sweep_regularly(self, ctx: ServiceContext) -> None:
        """The retention sweep (VE_RETENTION_DAYS) now, then every VE_RETENTION_SWEEP_HOURS until the stop."""
        hours = self.settings.retention_sweep_hours
        while not self._stop.is_set():
            try:
                report = sweep(ctx)
            except Exception:
                logger.exception("the retention sweep failed; the next one in %g h", hours)
            else:
                logger.info("%s", report.summary())
                for key in report.run_logs + report.videos:
                    logger.info("retention sweep: deleted %s", key)
            if self._stop.wait(hours * 3600):
                return

    def start_or_keep_trying(self) -> None:
        if self.start():
            return
        logger.error("serving degraded: %s; trying again every %g s", self.problem, RETRY_S)
        threading.Thread(target=self._retry, name="start-retry", daemon=True).start()

    def _retry(self) -> None:
        while not self._stop.wait(RETRY_S):
            if self.start():
                logger.info("the database answers: serving")
                return

    def stop(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=30)  # a sweep under way ends before the database goes
        if self.state.executor is not None:
            self.state.executor.shutdown()
        if self.state.ctx is not None:
            self.state.ctx.db.dispose()


class DegradedMiddleware:
    """While the parts are not up (the database unreachable at start), answer 503 with the reason,
    except on the ``served`` paths (one ending in "/", but "/", covers what lies under it). Pure
    ASGI: a caller's disconnect still reaches the routes."""

    def __init__(self, app: ASGIApp, served: frozenset[str]) -> None:
        self.app = app
        self.served = served
        self.prefixes = tuple(path for path in served if path.endswith("/") and path != "/")

    def _served(self, path: str) -> bool:
        return path in self.served or path.startswith(self.prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["app"].state if "app" in scope else None
        if (
            scope["type"] == "http"
            and state is not None
            and state.ctx is None
            and not self._served(scope["path"])
        ):
            response = JSONResponse(
                {"detail": f"the service is not ready: {state.parts.problem}; try again later"},
                status_code=503,
                headers={"Retry-After": str(int(RETRY_S))},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
