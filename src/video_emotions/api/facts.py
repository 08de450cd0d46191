"""An interview's facts: the context and region the policy gate reads, and the recording's purpose,
who recorded it and when, the notice shown and the candidate's consent (``facts.py``).

``GET /v1/interviews/{id}/facts`` gives them (null where none is recorded); ``PUT`` sets those its
body names, leaves the others as they are, and clears one given as null.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from video_emotions.api import schemas
from video_emotions.api.schemas import MAX_ID
from video_emotions.context import ServiceContext
from video_emotions.errors import NotFoundError
from video_emotions.facts import LABEL_MAX, LABEL_PATTERN, TEXT_MAX, check_facts, facts_document

router = APIRouter(prefix="/v1/interviews", tags=["interviews"])

PathId = Annotated[int, Path(gt=0, le=MAX_ID, description="A positive integer id.")]
#: Text without a NUL character (PostgreSQL cannot store one).
NO_NUL = r"^[^\x00]*$"


class FactsUpdate(BaseModel):
    """The facts to set; a fact left out stays as it is, one given as null is cleared."""

    model_config = ConfigDict(extra="forbid")

    context: str | None = Field(
        None,
        max_length=LABEL_MAX,
        pattern=LABEL_PATTERN,
        description="What the interview is for, as the policy's rules name it (hiring, coaching, ...).",
    )
    region: str | None = Field(
        None,
        max_length=LABEL_MAX,
        pattern=LABEL_PATTERN,
        description="Where it takes place, as the policy's rules name it (EU, US-CA, ...).",
    )
    purpose: str | None = Field(
        None, max_length=TEXT_MAX["purpose"], pattern=NO_NUL, description="What the recording is for."
    )
    recorded_by: str | None = Field(
        None, max_length=TEXT_MAX["recorded_by"], pattern=NO_NUL, description="Who recorded it."
    )
    recorded_at: datetime | None = Field(None, description="When it was recorded (UTC without an offset).")
    notice: str | None = Field(
        None,
        max_length=TEXT_MAX["notice"],
        pattern=NO_NUL,
        description="The text of the notice the candidate was shown.",
    )
    consent: bool | None = Field(
        None, strict=True, description="The candidate's consent: true given, false refused or withdrawn."
    )
    consent_at: datetime | None = Field(
        None, description="When it was given or withdrawn; default: now, when consent is set."
    )
    consent_by: str | None = Field(
        None, max_length=TEXT_MAX["consent_by"], pattern=NO_NUL, description="Who recorded the consent."
    )


def _known_interview(ctx: ServiceContext, interview_id: int) -> None:
    if ctx.db.interview(interview_id) is None:
        raise NotFoundError(f"interview {interview_id} does not exist")


def read_facts(ctx: ServiceContext, interview_id: int) -> dict[str, Any]:
    _known_interview(ctx, interview_id)
    return facts_document(interview_id, ctx.db.interview_facts(interview_id))


def write_facts(ctx: ServiceContext, interview_id: int, values: dict[str, Any]) -> dict[str, Any]:
    _known_interview(ctx, interview_id)
    checked = check_facts(values)
    row = (
        ctx.db.set_interview_facts(interview_id, checked) if checked else ctx.db.interview_facts(interview_id)
    )
    return facts_document(interview_id, row)


@router.get(
    "/{interview_id}/facts",
    responses={200: {"model": schemas.InterviewFacts}, **schemas.errors(401, 404, 422, 503)},
)
async def get_facts(request: Request, interview_id: PathId) -> dict[str, Any]:
    """The interview's facts: context, region, purpose, who recorded it and when, the notice shown, the
    candidate's consent (when, who recorded it); null where none is recorded."""
    return await run_in_threadpool(read_facts, request.app.state.ctx, interview_id)


@router.put(
    "/{interview_id}/facts",
    responses={
        200: {"model": schemas.InterviewFacts, "description": "The facts as they are now."},
        **schemas.errors(400, 401, 404, 422, 503, checked="a time outside what UTC can hold."),
    },
)
async def put_facts(request: Request, interview_id: PathId, body: FactsUpdate) -> dict[str, Any]:
    """Set the facts the body names (the others stay; null clears one) and answer with all of them.

    ``context`` and ``region`` are what the policy (VE_POLICY_FILE) matches; where a rule requires
    consent, ``consent: true`` lets the analysis run. ``consent_at`` defaults to now when ``consent``
    is set.
    """
    values = {name: getattr(body, name) for name in body.model_fields_set}
    return await run_in_threadpool(write_facts, request.app.state.ctx, interview_id, values)
