"""What every analysis request is checked for before a job is queued, and how failures answer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from video_emotions.context import ServiceContext
from video_emotions.domain import Segment
from video_emotions.errors import InputError, NotFoundError, PolicyRefusal
from video_emotions.jobs.runner import refuse_job
from video_emotions.policy import Policy
from video_emotions.storage.blobs import video_key

#: HTTP status for each kind of failure a job or a check can end with.
STATUS_BY_KIND = {
    "input": 422,
    "not_found": 404,
    "model_unavailable": 422,
    "conflict": 409,
    "cancelled": 409,
    "unavailable": 503,
    "policy": 451,
    "internal": 500,
}


def is_job_id(text: str) -> bool:
    """Whether ``text`` can name a job (a UUID, as every job id is): another one names none, and is
    never sent to the database (PostgreSQL refuses a NUL character in it, say)."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


@dataclass(frozen=True)
class CheckedRequest:
    engine: str
    segments: list[Segment]


def policy_refusal(
    policy: Policy | None, interview_id: int, facts: dict[str, Any] | None
) -> PolicyRefusal | None:
    """Why ``policy`` refuses to analyse the interview with these facts (its context, region and
    consent); None when it allows it (and always without a policy)."""
    if policy is None:
        return None
    facts = facts or {}
    decision = policy.decide(facts.get("context"), facts.get("region"), consent=facts.get("consent") is True)
    if not decision.refused:
        return None
    assert decision.reason is not None and decision.rule_number is not None
    carries = (
        f"interview {interview_id} (context {facts.get('context') or 'not set'}, "
        f"region {facts.get('region') or 'not set'})"
    )
    if decision.action == "prohibit":
        message = f"{carries} is refused by policy rule {decision.rule_number}: {decision.reason}"
    else:
        recorded = "it is recorded as refused" if facts.get("consent") is False else "none is recorded"
        message = (
            f"this policy requires the candidate's recorded consent for {carries} (rule "
            f"{decision.rule_number}: {decision.reason}), and {recorded}: set it with "
            f"PUT /v1/interviews/{interview_id}/facts"
        )
    return PolicyRefusal(
        message, action=decision.action, reason=decision.reason, rule_number=decision.rule_number
    )


def check_request(
    ctx: ServiceContext, session_id: int, interview_id: int, model_type: str, *, policy: Policy | None
) -> CheckedRequest:
    """Everything that can be checked before a job is queued; ``policy`` (VE_POLICY_FILE) is asked
    once the interview is known, and a refusal is on the interview's record as a failed job."""
    engine = ctx.models.check(model_type)
    interview = ctx.db.interview(interview_id)
    if interview is None:
        raise NotFoundError(f"interview {interview_id} does not exist")
    if interview["session_id"] != session_id:
        if not ctx.db.session_exists(session_id):
            raise NotFoundError(f"session {session_id} does not exist")
        raise NotFoundError(
            f"interview {interview_id} belongs to session {interview['session_id']}, not {session_id}"
        )
    refusal = policy_refusal(policy, interview_id, ctx.db.interview_facts(interview_id))
    if refusal is not None:
        refusal.job_id = refuse_job(
            ctx, session_id=session_id, interview_id=interview_id, model_type=model_type, exc=refusal
        )
        raise refusal
    try:
        segments = _interview_data(ctx, session_id, interview_id)
    except (InputError, NotFoundError) as exc:
        # The interview exists, its data does not do: a failed run on its record, with a run log.
        refuse_job(ctx, session_id=session_id, interview_id=interview_id, model_type=model_type, exc=exc)
        raise
    return CheckedRequest(engine, segments)


def _interview_data(ctx: ServiceContext, session_id: int, interview_id: int) -> list[Segment]:
    """The candidate's segments, once the video is in storage and the segments can be sampled."""
    key = video_key(session_id, interview_id, ctx.settings.video_filename)
    if not ctx.blobs.exists(key):
        raise NotFoundError(f"no video for interview {interview_id}: {key} is not in storage")
    segments = ctx.db.candidate_segments(interview_id)
    if not segments:
        raise InputError(f"interview {interview_id} has no candidate (speaker 0) segments in results")
    bad = [s for s in segments if s.end <= s.start or s.start < 0]
    if bad:
        listed = ", ".join(f"{s.id} ({s.start * 1000:.0f}-{s.end * 1000:.0f} ms)" for s in bad)
        raise InputError(f"candidate segments must have 0 <= start < end; these do not: {listed}")
    return segments
