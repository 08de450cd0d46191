"""The asynchronous API: ``/v1/analyses`` queues a job and answers at once; poll it or get a webhook."""

from __future__ import annotations

from typing import Annotated, Any, get_args

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import AnyHttpUrl, BaseModel, Field

from video_emotions.api import schemas
from video_emotions.api.checks import check_request, is_job_id
from video_emotions.api.paging import paginated
from video_emotions.api.schemas import MAX_ID, JobState
from video_emotions.context import ServiceContext
from video_emotions.errors import InputError, NotFoundError
from video_emotions.jobs.executors import Executor
from video_emotions.jobs.queueing import cancel_analysis, queue_analysis
from video_emotions.jobs.records import job_document
from video_emotions.jobs.webhooks import secret_problem
from video_emotions.outbound import check_outbound_url
from video_emotions.storage.schema import JOB_STATES

router = APIRouter(prefix="/v1/analyses", tags=["analyses"])

assert set(get_args(JobState)) == set(JOB_STATES)

#: The smallest interval a request may ask for (seconds): below any video's frame duration.
MIN_INTERVAL = 0.001


class AnalysisRequest(BaseModel):
    """An analysis of one interview's candidate segments (facial-expression estimates)."""

    session_id: int = Field(gt=0, le=MAX_ID, description="The interview's session.")
    interview_id: int = Field(
        gt=0, le=MAX_ID, description="The interview whose video and segments to analyse."
    )
    model_type: str | None = Field(
        None, description="Engine or app name (GET /v1/models); default: VE_DEFAULT_MODEL."
    )
    interval: float | None = Field(
        None,
        ge=MIN_INTERVAL,
        le=60,
        description="Seconds between samples; default: VE_INTERVAL. At least 0.001: a smaller one "
        "takes every frame all the same, and its expected sample count overflows.",
    )
    callback_url: AnyHttpUrl | None = Field(
        None, description="POSTed the job's record, signed (Standard Webhooks), when the job ends."
    )
    force: bool = Field(False, description="Run again even when equal results are stored.")


def _document(ctx: ServiceContext, job_id: str) -> dict[str, Any]:
    document = job_document(ctx.db, job_id) if is_job_id(job_id) else None
    if document is None:
        raise NotFoundError(f"analysis {job_id} does not exist")
    return document


@router.post(
    "",
    status_code=202,
    responses={
        202: {"model": schemas.AnalysisRecord, "description": "Queued: the job, at its Location."},
        200: {"model": schemas.AnalysisRecord, "description": "An equal job answers: the same id."},
        **schemas.errors(
            400,
            401,
            404,
            422,
            503,
            checked="unknown model_type, no candidate segments, a bad segment, a callback_url "
            "without a webhook secret or outside the allowed hosts.",
        ),
        **schemas.errors(451, body=schemas.PolicyRefusalBody),
    },
)
async def create_analysis(request: Request, body: AnalysisRequest) -> JSONResponse:
    """Queue an analysis and answer at once: ``202`` with the job and its ``Location``.

    While an equal job (same interview, engine and interval) is queued or running, that job
    answers (``200``, same id); so does an equal finished one, unless ``force`` is true.
    """
    ctx: ServiceContext = request.app.state.ctx
    executor: Executor = request.app.state.executor
    requested = body.model_type or ctx.settings.default_model
    if body.callback_url is not None:
        problem = secret_problem(ctx.settings.webhook_secret)
        if problem is not None:
            raise InputError(f"callback_url needs a secret to sign webhooks with: {problem}")
        # In a thread: it asks DNS. Checked again before each POST, where the answer may differ.
        allow = ctx.settings.outbound_allow
        await run_in_threadpool(check_outbound_url, str(body.callback_url), allow, what="callback_url")
    checked = await run_in_threadpool(
        check_request, ctx, body.session_id, body.interview_id, requested, policy=request.app.state.policy
    )
    queued = await run_in_threadpool(
        lambda: queue_analysis(
            ctx,
            executor,
            session_id=body.session_id,
            interview_id=body.interview_id,
            model_type=requested,
            engine=checked.engine,
            segments=checked.segments,
            interval=body.interval or ctx.settings.interval,
            callback_url=str(body.callback_url) if body.callback_url else None,
            force=body.force,
        )
    )
    document = await run_in_threadpool(_document, ctx, queued.job_id)
    return JSONResponse(
        jsonable_encoder(document),
        status_code=202 if queued.created else 200,
        headers={"Location": f"/v1/analyses/{queued.job_id}"},
    )


@router.get("/{job_id}", responses={200: {"model": schemas.AnalysisRecord}, **schemas.errors(401, 404)})
async def get_analysis(request: Request, job_id: str) -> dict[str, Any]:
    """A job: state, progress 0..1 (samples done of expected), segments, stages, attempts, error."""
    return await run_in_threadpool(_document, request.app.state.ctx, job_id)


@router.get("", responses={200: {"model": schemas.AnalysisPage}, **schemas.errors(401, 422)})
async def list_analyses(
    request: Request,
    interview_id: Annotated[int | None, Query(gt=0, le=MAX_ID)] = None,
    state: JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    """Jobs newest first, filtered by interview and state; ``next`` is the following page's URL."""
    ctx: ServiceContext = request.app.state.ctx
    records, total = await run_in_threadpool(
        lambda: ctx.db.list_jobs(interview_id=interview_id, state=state, limit=limit, offset=offset)
    )
    items = await run_in_threadpool(lambda: [_document(ctx, record.id) for record in records])
    return paginated(request, items, total, limit=limit, offset=offset)


@router.delete(
    "/{job_id}",
    responses={
        200: {"model": schemas.AnalysisRecord, "description": "Cancelled: the job as it is now."},
        **schemas.errors(401, 404, 409, 503),
    },
)
async def cancel(request: Request, job_id: str) -> dict[str, Any]:
    """Cancel a queued or running job (a running one stops at its next batch and writes nothing);
    ``409`` when it has ended."""
    ctx: ServiceContext = request.app.state.ctx
    await run_in_threadpool(_document, ctx, job_id)
    await run_in_threadpool(cancel_analysis, ctx, request.app.state.executor, job_id)
    return await run_in_threadpool(_document, ctx, job_id)
