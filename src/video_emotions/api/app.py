"""FastAPI application factory and routes."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError

from video_emotions import __version__
from video_emotions.api import schemas
from video_emotions.api.analyses import router as analyses_router
from video_emotions.api.audit_log import router as audit_router
from video_emotions.api.auth import add_access_control
from video_emotions.api.checks import STATUS_BY_KIND, check_request, is_job_id
from video_emotions.api.docs import add_offline_docs
from video_emotions.api.facts import router as facts_router
from video_emotions.api.interviews import router as interviews_router
from video_emotions.api.lifecycle import RETRY_S, DegradedMiddleware, ServiceParts, short_reason
from video_emotions.api.limits import BodyLimitMiddleware
from video_emotions.api.model_cards import router as model_cards_router
from video_emotions.api.page import add_page
from video_emotions.api.predict import router as predict_router
from video_emotions.audit import add_audit
from video_emotions.config import Settings, get_settings
from video_emotions.context import ServiceContext
from video_emotions.errors import ModelUnavailableError, NotFoundError, PolicyRefusal, VideoEmotionsError
from video_emotions.jobs.queueing import queue_analysis
from video_emotions.jobs.records import interview_document
from video_emotions.jobs.runner import error_kind
from video_emotions.observability import metrics as prometheus
from video_emotions.policy import load_policy, log_policy
from video_emotions.results import frames_csv
from video_emotions.storage.db import is_transient, utcnow
from video_emotions.vision.registry import APP_NAMES, ModelRegistry

logger = logging.getLogger(__name__)

#: What a degraded service (its database unreachable) still serves.
#: (A path ending in "/" but "/" itself: everything under it.)
SERVED_DEGRADED = frozenset({"/health", "/docs", "/docs/", "/openapi.json", "/", "/static/"})

#: How often a waiting /analyse_video looks at its job and whether its caller is still there.
CALLER_CHECK_S = 0.25

PositiveId = Annotated[int, Query(gt=0, le=schemas.MAX_ID, description="A positive integer id.")]


def log_app_routes(models: ModelRegistry) -> None:
    """One start-up line: the engine that serves each name the Interviewz app sends, and why."""
    parts = []
    for name in APP_NAMES:
        try:
            route = models.route(name)
        except ModelUnavailableError as exc:
            parts.append(f"{name} -> refused ({exc})")
            continue
        parts.append(f"{name} -> {route.engine}" + (f" ({route.note})" if route.note else ""))
    logger.info("the app's model types: %s", "; ".join(parts))


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service's app; PolicyError (a VideoEmotionsError) when VE_POLICY_FILE is set and wrong."""
    settings = settings or get_settings()
    policy = load_policy(settings.policy_file)

    def announce(ctx: ServiceContext) -> None:
        # In its own thread: yolo asks its endpoint, which must not hold up the start.
        threading.Thread(target=log_app_routes, args=(ctx.models,), name="app-routes", daemon=True).start()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log_policy(policy)
        parts = ServiceParts(settings, app.state, on_ready=announce)
        await run_in_threadpool(parts.start_or_keep_trying)
        yield
        await run_in_threadpool(parts.stop)

    app = FastAPI(
        title="Video emotions analysis",
        version=__version__,
        description="Facial expression estimates for interview videos (what a face shows, "
        "not what a person feels).",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    add_offline_docs(app)
    add_page(app)  # GET / and /static/...: the web page, not in the OpenAPI schema
    schemas.install_openapi(app)
    app.state.policy = policy  # the analysis routes' check_request asks it

    @app.exception_handler(VideoEmotionsError)
    async def _known_error(_request: Request, exc: VideoEmotionsError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=STATUS_BY_KIND[error_kind(exc)])

    @app.exception_handler(PolicyRefusal)
    async def _policy_refusal(_request: Request, exc: PolicyRefusal) -> JSONResponse:
        body = {"detail": str(exc), "job_id": exc.job_id, "action": exc.action, "reason": exc.reason}
        return JSONResponse(body | {"rule": exc.rule_number}, status_code=STATUS_BY_KIND["policy"])

    @app.exception_handler(DBAPIError)
    async def _database_error(_request: Request, exc: DBAPIError) -> JSONResponse:
        if not is_transient(exc):
            raise exc
        return JSONResponse(
            {"detail": f"the database is unavailable ({short_reason(exc)}); try again later"},
            status_code=503,
            headers={"Retry-After": str(int(RETRY_S))},
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"][1:]) or "request"
            got = f" (got {error['input']!r})" if error.get("input") is not None else ""
            problems.append(f"{where}: {error['msg']}{got}")
        errors = schemas.json_safe_errors(exc.errors())
        return JSONResponse({"detail": "; ".join(problems), "errors": errors}, status_code=422)

    @app.get("/health", responses={200: {"model": schemas.StatusBody}, 503: {"model": schemas.StatusBody}})
    async def health(request: Request) -> JSONResponse:
        """``ok``, or ``degraded`` (503) with the reason: the database does not answer."""
        ctx: ServiceContext | None = request.app.state.ctx
        problem = request.app.state.parts.problem if ctx is None else await run_in_threadpool(ctx.db.ping)
        if problem is not None:
            return JSONResponse({"status": "degraded", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus text format: this process's metrics, and the jobs by state from the database."""
        ctx: ServiceContext = request.app.state.ctx
        body = await run_in_threadpool(prometheus.render_api_metrics, ctx.db.job_counts)
        return Response(body, media_type=prometheus.CONTENT_TYPE_LATEST)

    @app.post(
        "/analyse_video",
        responses={
            200: {"model": schemas.StatusBody, "description": "Every candidate segment is written."},
            **schemas.errors(401),
            **schemas.errors(
                404,
                409,
                422,
                500,
                503,
                body=schemas.AnalysisErrorBody,
                checked="unknown model_type, no candidate segments, a bad segment, a video that "
                "does not decode.",
            ),
            **schemas.errors(451, body=schemas.PolicyRefusalBody),
            499: {"description": "The caller left before the end (it never sees this); the job goes on."},
        },
    )
    async def analyse_video(
        request: Request,
        session_id: PositiveId,
        interview_id: PositiveId,
        model_type: str | None = None,
        force: bool = False,
    ) -> Response:
        """Analyse an interview as Interviewz calls it; answer once every segment is written.

        The job runs in the worker pool, not in this request: a caller that leaves early does
        not stop it, and its results are still written. A second call while it runs joins it;
        a call for an interview already analysed the same way answers from what is stored,
        unless ``force=true``. The ``X-Job-Id`` header names the job that answers.
        """
        ctx: ServiceContext = request.app.state.ctx
        requested = model_type or settings.default_model
        checked = await run_in_threadpool(
            check_request, ctx, session_id, interview_id, requested, policy=request.app.state.policy
        )
        queued = await run_in_threadpool(
            lambda: queue_analysis(
                ctx,
                request.app.state.executor,
                session_id=session_id,
                interview_id=interview_id,
                model_type=requested,
                engine=checked.engine,
                segments=checked.segments,
                interval=settings.interval,
                force=force,
            )
        )
        job_id = queued.job_id
        headers = {"X-Job-Id": job_id}
        try:
            job = await run_in_threadpool(ctx.db.job, job_id)
            while job is not None and job.active:
                await asyncio.sleep(CALLER_CHECK_S)
                if await request.is_disconnected():
                    await run_in_threadpool(ctx.db.update_job, job_id, caller_left_at=utcnow())
                    return Response(status_code=499)
                job = await run_in_threadpool(ctx.db.job, job_id)
        except asyncio.CancelledError:
            await asyncio.shield(run_in_threadpool(ctx.db.update_job, job_id, caller_left_at=utcnow()))
            raise
        if job is None or job.status != "succeeded":
            kind = job.error_kind if job else "internal"
            detail = job.error if job else "job record lost"
            return JSONResponse(
                {"detail": detail, "job_id": job_id},
                status_code=STATUS_BY_KIND.get(kind or "", 500),
                headers=headers,
            )
        return JSONResponse({"status": "ok"}, headers=headers)

    @app.get(
        "/v1/interviews/{interview_id}/emotions",
        response_model=None,
        responses={
            200: {
                "model": schemas.InterviewEmotions,
                "content": {"text/csv": {"schema": {"type": "string"}}},
                "description": "JSON (format=json), or with format=csv a row per sampled frame.",
            },
            **schemas.errors(401, 404, 422),
        },
    )
    async def interview_emotions(
        request: Request,
        interview_id: Annotated[int, Path(gt=0, le=schemas.MAX_ID, description="A positive integer id.")],
        frames: bool = False,
        format: Literal["json", "csv"] = "json",
    ) -> dict[str, Any] | Response:
        """Per-segment results with summaries (and, with ``frames=true``, per-frame detail); with
        ``format=csv``, one row per sampled frame: segment and its bounds, time, face box and detector
        score, the seven percentages (``results.FRAME_COLUMNS``)."""
        ctx: ServiceContext = request.app.state.ctx
        interview = await run_in_threadpool(ctx.db.interview, interview_id)
        if interview is None:
            raise NotFoundError(f"interview {interview_id} does not exist")
        stored = await run_in_threadpool(ctx.db.segment_results, interview_id)
        if format == "csv":
            name = f"interview_{interview_id}_emotions.csv"
            return Response(
                await run_in_threadpool(frames_csv, interview_id, stored),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
        document = await run_in_threadpool(lambda: interview_document(ctx.db, interview_id, frames=frames))
        if document is None:  # erased meanwhile
            raise NotFoundError(f"interview {interview_id} does not exist")
        return document

    @app.get("/v1/jobs/{job_id}", responses={200: {"model": schemas.LegacyJob}, **schemas.errors(401, 404)})
    async def job_status(request: Request, job_id: str) -> dict[str, Any]:
        ctx: ServiceContext = request.app.state.ctx
        job = await run_in_threadpool(ctx.db.job, job_id) if is_job_id(job_id) else None
        if job is None:
            raise NotFoundError(f"job {job_id} does not exist")
        # As it was before /v1/analyses: ``status`` says done for a job that succeeded.
        return job.__dict__ | {"status": "done" if job.status == "succeeded" else job.status}

    @app.get("/v1/models", responses={200: {"model": schemas.ModelsBody}, **schemas.errors(401)})
    async def models(request: Request) -> dict[str, Any]:
        ctx: ServiceContext = request.app.state.ctx
        return {
            "default": settings.default_model,
            "aliases": ctx.models.aliases,
            # In a thread: yolo and yolo_cloud ask their endpoint whether it answers.
            "models": [status.__dict__ for status in await run_in_threadpool(ctx.models.statuses)],
        }

    app.include_router(analyses_router)
    app.include_router(predict_router)
    app.include_router(interviews_router)
    app.include_router(facts_router)
    app.include_router(model_cards_router)
    app.include_router(audit_router)
    # Last: outside any middleware added above, so that every route needs a key.
    app.add_middleware(DegradedMiddleware, served=SERVED_DEGRADED)
    # Bodies are bounded inside the key check: an unauthenticated caller cannot make us read one.
    # The video upload is bounded by VE_MAX_UPLOAD_MB instead (and reads its body as it arrives).
    upload = (int(settings.max_upload_mb * 1_000_000), "VE_MAX_UPLOAD_MB")
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=int(settings.max_request_mb * 1_000_000),
        per_route={("POST", "/v1/interviews"): upload},
    )
    # Inside the key check (which names the caller), outside the rest: every audited answer is seen.
    add_audit(app)
    add_access_control(app, settings)
    # Outermost: the latency of every request, refused ones (401) included.
    app.add_middleware(prometheus.HttpMetricsMiddleware)
    return app
