"""``GET /v1/audit``: the audit log (``audit.py``), filtered and paginated, oldest first.

Oldest first, in the order the rows were written (by id): rows are only ever appended, so a page
stays what it was while new rows come, and ``next`` never repeats or skips one (reading the log
appends an ``audit_read`` row itself, at the end).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from video_emotions.api import schemas
from video_emotions.api.paging import paginated
from video_emotions.api.schemas import MAX_ID
from video_emotions.audit import ACTOR_PATTERN, AuditAction, as_utc, entry_document
from video_emotions.context import ServiceContext

router = APIRouter(prefix="/v1/audit", tags=["audit"])

TIME_HELP = "ISO 8601 date or time (2026-12-01, 2026-12-01T09:30:00+01:00); without an offset: UTC."


@router.get("", responses={200: {"model": schemas.AuditPage}, **schemas.errors(401, 422, 503)})
async def audit_log(
    request: Request,
    since: Annotated[datetime | None, Query(description=f"Rows written at or after it. {TIME_HELP}")] = None,
    until: Annotated[datetime | None, Query(description=f"Rows written at or before it. {TIME_HELP}")] = None,
    actor: Annotated[
        str | None, Query(pattern=ACTOR_PATTERN, description="An API key id, open, or cli:USER.")
    ] = None,
    action: AuditAction | None = None,
    interview_id: Annotated[int | None, Query(gt=0, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    """The audit log oldest first, filtered by time, actor, action and interview: per row who (the API
    key id), what, when, the interview and job, the model and engine, the parameters, the outcome (the
    HTTP status) and the caller's address. ``next`` is the following page's URL."""
    ctx: ServiceContext = request.app.state.ctx
    rows, total = await run_in_threadpool(
        lambda: ctx.db.audit_entries(
            since=as_utc(since) if since is not None else None,
            until=as_utc(until) if until is not None else None,
            actor=actor,
            action=action,
            interview_id=interview_id,
            limit=limit,
            offset=offset,
        )
    )
    items = [entry_document(row) for row in rows]
    return paginated(request, items, total, limit=limit, offset=offset)
