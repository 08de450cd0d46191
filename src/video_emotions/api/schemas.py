"""The bodies the API answers, as Pydantic models for its OpenAPI document.

The routes build their JSON as they always have; these models only say what it is. Errors answer
``{"detail": "<what is wrong and what to do>"}`` (``app.py``'s ``_known_error``); a request that
does not fit its parameters or body answers 422 with Pydantic's ``errors`` besides
(``_invalid_request``), not FastAPI's default ``HTTPValidationError`` shape.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from copy import deepcopy
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]

#: Documented as a string: ISO 8601 in UTC; the embedded SQLite database gives it without an offset.
Timestamp = str


class ErrorBody(BaseModel):
    """An error: what is wrong and what to do about it."""

    detail: str


class AnalysisErrorBody(ErrorBody):
    """An error of ``/analyse_video``: with the job that failed when the request got as far as one."""

    job_id: str | None = Field(None, description="The job that failed; absent when none was queued.")


class PolicyRefusalBody(AnalysisErrorBody):
    """A request the policy refuses (451): the deciding rule, and the failed job that records it."""

    action: Literal["prohibit", "require_consent"] = Field(description="The deciding rule's action.")
    reason: str = Field(description="The deciding rule's reason, as the policy file gives it.")
    rule: int = Field(description="The deciding rule's number in the policy file (1 for the first).")


class ValidationProblem(BaseModel):
    """One of Pydantic's validation errors (``input`` and ``ctx`` too, when it has them)."""

    type: str
    loc: list[str | int]
    msg: str


class ValidationErrorBody(ErrorBody):
    """A request that does not fit its parameters or body: every problem in ``detail`` and ``errors``."""

    errors: list[ValidationProblem]


class StatusBody(BaseModel):
    status: Literal["ok"]


#: Ids are PostgreSQL bigints: a larger one names nothing, and the databases cannot take it.
MAX_ID = 2**63 - 1


DESCRIPTIONS = {
    400: "The body cannot be read as JSON (not UTF-8, say).",
    401: "No API key, or one the service does not know (when VE_API_KEYS is set).",
    404: "What the request names does not exist.",
    409: "The job is not in a state that allows it.",
    413: "The request body is over its bound (VE_MAX_REQUEST_MB; an upload: VE_MAX_UPLOAD_MB).",
    422: "The request does not fit its parameters or body.",
    500: "The analysis failed with an internal error.",
    503: "A part the service needs (database, broker) does not answer; try again later.",
    451: "Refused by the policy (VE_POLICY_FILE): a rule prohibits it, or requires the candidate's "
    "recorded consent and none is recorded. The refusal is on the interview's record as a failed job.",
}


def errors(
    *codes: int, body: type[ErrorBody] = ErrorBody, checked: str | None = None
) -> dict[int | str, Any]:
    """``responses=`` for these error statuses, each with its body. ``checked``: the 422 also answers
    the request's data failing a check (``{"detail"}`` without ``errors``): says which."""
    responses: dict[int | str, Any] = {}
    for code in codes:
        if code == 422:
            model: Any = ValidationErrorBody | body if checked else ValidationErrorBody
            description = DESCRIPTIONS[422] + (f" Also: {checked}" if checked else "")
            responses[code] = {"model": model, "description": description}
        else:
            responses[code] = {"model": body, "description": DESCRIPTIONS[code]}
    return responses


# Job records ------------------------------------------------------------------------------------


class AnalysisParameters(BaseModel):
    interval: float | None = Field(description="Seconds between samples.")
    classifier: str | None
    fingerprint: str | None = Field(description="What decides the results: engine, files, settings, segments")


class Counts(BaseModel):
    done: int
    expected: int


class SegmentCounts(BaseModel):
    done: int
    total: int


class JobError(BaseModel):
    kind: str | None
    message: str | None


class Attempt(BaseModel):
    chunk: int
    number: int
    worker: str
    outcome: str = Field(description="running, succeeded, failed, lost or cancelled.")
    error_kind: str | None
    error: str | None
    started_at: Timestamp
    finished_at: Timestamp | None


class Delivery(BaseModel):
    webhook_id: str
    attempt: int
    at: Timestamp
    status_code: int | None
    error: str | None


class AnalysisRecord(BaseModel):
    """A job as ``/v1/analyses`` shows it (``jobs/records.py``'s ``job_document``). Times are ISO 8601
    strings in UTC (without an offset on the embedded SQLite database)."""

    id: str
    session_id: int
    interview_id: int
    model_type: str = Field(description="The model_type asked for.")
    engine: str | None = Field(description="The engine that runs it.")
    note: str | None = Field(description="Why the engine is not the one model_type names.")
    model_file: str | None
    model_sha256: str | None
    parameters: AnalysisParameters
    state: JobState
    progress: float = Field(ge=0, le=1, description="Samples done of expected; 1 once it succeeded.")
    samples: Counts
    segments: SegmentCounts
    chunks: int
    stages: dict[str, float] = Field(description="Seconds per stage: download, analyse, write.")
    error: JobError | None = Field(description="Set when the job failed.")
    warnings: list[dict[str, Any]] = Field(
        default_factory=list, description="What the run could not cover (a recording cut short)."
    )
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    caller_left_at: Timestamp | None
    attempt_count: int
    workers: list[str]
    attempts: list[Attempt]
    callback_url: str | None
    log_key: str | None
    deliveries: list[Delivery]


class AnalysisPage(BaseModel):
    items: list[AnalysisRecord]
    total: int
    limit: int
    offset: int
    next: str | None = Field(description="The following page's URL; null on the last page.")


class LegacyJob(BaseModel):
    """A job as ``GET /v1/jobs/{job_id}`` shows it: ``status`` is ``done`` for a job that succeeded.
    Times as in ``AnalysisRecord``."""

    id: str
    session_id: int
    interview_id: int
    model_type: str
    engine: str | None
    model_file: str | None
    model_sha256: str | None
    note: str | None
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    error_kind: str | None
    error: str | None
    segments: int | None
    log_key: str | None
    fingerprint: str | None
    caller_left_at: Timestamp | None
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    interval: float | None
    classifier: str | None
    callback_url: str | None
    active_key: str | None
    stages: dict[str, float] | None
    warnings: list[dict[str, Any]] | None = None


# Results and models -----------------------------------------------------------------------------


class SegmentSummary(BaseModel):
    """A segment's expression estimates condensed (README, "The summary of a segment")."""

    frames: int
    frames_with_face: int
    usable_share: float
    dominant: str | None
    neutral_share: float | None
    leading_expression: str | None
    leading_share: float | None
    mean: dict[str, float] | None


class SegmentEmotions(BaseModel):
    result_id: int
    start_ms: float
    end_ms: float
    engine: str
    model_file: str | None
    model_sha256: str | None
    job_id: str
    summary: SegmentSummary
    video_emotions: dict[str, dict[str, float]] | None = Field(description="The legacy JSON of the row.")
    frames: list[dict[str, Any]] | None = Field(
        None, description="With frames=true: per frame its time, faces, box, detector score, emotions."
    )


class InterviewEmotions(BaseModel):
    interview_id: int
    session_id: int | None
    video_ok: bool
    segments: list[SegmentEmotions]
    segments_without_face: list[int]
    warnings: list[dict[str, Any]] = Field(
        default_factory=list, description="What the newest run could not cover: segments, samples, why."
    )


class InterviewItem(BaseModel):
    """An interview as ``GET /v1/interviews`` lists it, with where its newest analysis stands."""

    interview_id: int
    session_id: int | None
    state: Literal["not_analysed", "queued", "running", "succeeded", "failed", "cancelled"] = Field(
        description="not_analysed when no job was ever made for it; else its newest job's state."
    )
    progress: float = Field(ge=0, le=1, description="The newest job's progress; 0 when not analysed.")
    job_id: str | None = Field(description="The newest job; null when not analysed.")
    error: str | None = Field(description="Why the newest job failed; null unless it failed.")
    video_ok: bool
    segments: int = Field(description="Candidate (speaker 0) segments in results.")
    warnings: int = Field(description="What the newest job could not cover (a recording cut short).")


class InterviewPage(BaseModel):
    items: list[InterviewItem]
    total: int
    limit: int
    offset: int
    next: str | None = Field(description="The following page's URL; null on the last page.")


class InterviewUploaded(InterviewItem):
    """An interview registered from an upload: its record, and whether the recording is whole."""

    decodes_until_s: float | None = Field(
        None, description="Set when the recording's data ends well before its declared duration."
    )
    warning: str | None = Field(None, description="What that means for the analysis; null when whole.")


class InterviewFacts(BaseModel):
    """What is known of an interview beyond its video (``facts.py``); null: not recorded. Times are
    ISO 8601 in UTC."""

    interview_id: int
    context: str | None = Field(description="What it is for, as the policy names it (hiring, ...).")
    region: str | None = Field(description="Where it takes place, as the policy names it (EU, ...).")
    purpose: str | None = Field(description="The purpose the recording was made for.")
    recorded_by: str | None = Field(description="Who recorded it.")
    recorded_at: Timestamp | None = Field(description="When it was recorded.")
    notice: str | None = Field(description="The text of the notice the candidate was shown.")
    consent: bool | None = Field(description="The candidate's consent: true given, false refused, withdrawn.")
    consent_at: Timestamp | None = Field(description="When the consent was given or withdrawn.")
    consent_by: str | None = Field(description="Who recorded the consent.")
    updated_at: Timestamp | None = Field(description="The last change; null when none was ever set.")


class Figure(BaseModel):
    """One measured figure of a model, with where it was measured and written down."""

    yardstick: str
    metric: str
    value: float | None = Field(description="The figure (a share 0..1), or null when only by_class holds it.")
    interval: list[float] | None = Field(description="95% interval (Wilson), when measured.")
    sample: str | None = Field(description="What it was measured on: faces, clips.")
    by_class: dict[str, float] | None = Field(description="Per class (recall or precision), when given.")
    measured: str | None = Field(description="The date of the measurement (ISO 8601).")
    source: str = Field(description="The document and section it comes from.")


class ModelCard(BaseModel):
    """What a model is and how often it is wrong: facial-expression estimates, not feelings."""

    name: str = Field(description="The name asked for.")
    engine: str = Field(description="The engine that name runs now.")
    note: str | None = Field(description="Why the engine is not the one the name says.")
    title: str
    what: str
    classifier: str | None
    wording: str
    trained_on: str = Field(description="The data the model learnt from.")
    licence: str = Field(description="The licences of its model files.")
    intended_uses: list[str]
    out_of_scope: list[str] = Field(description="Uses it must not serve.")
    limits: list[str]
    measured: bool = Field(description="Whether figures of ours exist for it.")
    figures: list[Figure]
    not_measured: str | None = Field(description="Why there are no figures, when there are none.")


class ModelInfo(BaseModel):
    name: str
    description: str
    available: bool
    reason: str | None = Field(description="Why it is not available.")
    served_by: str | None = Field(description="The engine a request for it runs now; null when refused.")
    note: str | None


class ModelsBody(BaseModel):
    default: str
    aliases: dict[str, str]
    models: list[ModelInfo]


class PredictResponse(BaseModel):
    """Vertex AI's prediction answer: per instance the seven probabilities, or the no-face marker."""

    predictions: list[dict[str, float]]
    deployedModelId: str
    model: str | None
    modelVersionId: str | None


class StorageObjectNote(BaseModel):
    """A storage object an erasure left (and why), or could not delete (and the error)."""

    key: str
    reason: str | None = None
    error: str | None = None


class Erasure(BaseModel):
    """What ``DELETE /v1/interviews/{id}`` erased (``retention.py``'s ``ErasureReport``)."""

    interview_id: int
    session_id: int | None
    cancelled_jobs: list[str] = Field(description="Jobs that were queued or running, cancelled first.")
    rows: dict[str, int] = Field(description="Our tables: rows deleted from each.")
    cleared: dict[str, int] = Field(
        description="The application's columns we write: rows cleared (video_emotions null, video_ok false)."
    )
    objects: list[str] = Field(description="Storage keys deleted: run logs, and the video if we own it.")
    left: list[StorageObjectNote] = Field(description="Storage objects left on purpose (the app's video).")
    errors: list[StorageObjectNote] = Field(
        description="Storage objects that could not be deleted: erase again to finish."
    )
    complete: bool = Field(description="Whether everything was erased (no errors).")


class AuditEntry(BaseModel):
    """One row of the audit log (``audit.py``): who did what, when, with which model and parameters."""

    id: int = Field(description="The row's number: rows are numbered in the order they were written.")
    at: Timestamp = Field(description="When it was written (the answer's start), ISO 8601 in UTC.")
    actor: str = Field(description="The API key id; open without VE_API_KEYS; cli:USER for a command.")
    action: str = Field(description="analysis_requested, analysis_refused, results_read, frame_read, ...")
    interview_id: int | None
    job_id: str | None
    model_type: str | None = Field(description="The model_type asked for (the job's, when there is one).")
    engine: str | None = Field(description="The engine that runs it (the job's).")
    parameters: dict[str, Any] = Field(description="interval, force, format, ... as the request gave them.")
    outcome: str = Field(description="The HTTP status of the answer, or the command's result.")
    client: str | None = Field(description="The caller's address.")


class AuditPage(BaseModel):
    items: list[AuditEntry] = Field(description="Oldest first, in the order written.")
    total: int
    limit: int
    offset: int
    next: str | None = Field(description="The following page's URL; null on the last page.")


# The document -----------------------------------------------------------------------------------


def _tidy(document: dict[str, Any]) -> dict[str, Any]:
    """A declared model replaces the generic ``dict`` schema FastAPI gives a route's annotation, and
    FastAPI's own 422 (``HTTPValidationError``, a shape we never answer) goes: every route declares
    the 422 it gives."""
    for item in document.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {})
            default_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
            if default_422.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
            for response in responses.values():
                for content in response.get("content", {}).values():
                    schema = content.get("schema", {})
                    if "$ref" in schema or "anyOf" in schema:
                        for key in ("type", "additionalProperties", "title"):
                            schema.pop(key, None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and so ``/openapi.json``) the tidied document, built once."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _tidy(deepcopy(generate()))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def json_safe_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors as JSON can hold them: an ``input`` it cannot (NaN, infinity, bytes) as its
    repr, a ``ctx`` value it cannot (an exception) as its text."""
    safe = []
    for error in errors:
        item = dict(error)
        if "input" in item and not _json_safe(item["input"]):
            item["input"] = repr(item["input"])
        if "ctx" in item:
            item["ctx"] = {key: v if _json_safe(v) else str(v) for key, v in dict(item["ctx"]).items()}
        safe.append(item)
    return safe
