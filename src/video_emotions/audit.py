"""The audit log: who (API key id) did what, when, with which model and parameters, and how it ended.

Every row goes to our own table ``ve_audit``, which is append-only: the database layer has only
:meth:`Database.append_audit` and :meth:`Database.audit_entries` for it, and on PostgreSQL (and the
embedded SQLite) a trigger refuses UPDATE, DELETE and TRUNCATE. The rows name ids (key ids,
interview and job ids, model names), never personal data, so erasing an interview keeps them.

:class:`AuditMiddleware`, a pure ASGI middleware inside the API key check, records the routes of
:data:`ROUTES` by method and path template (``/v1/interviews/{interview_id}``), with the caller's key
id from ``scope["state"]["api_key_id"]`` (``open`` when no keys are set) and the response's status
as the outcome. The row is written when the response starts, before any of it reaches the caller:

- for what changes something (analyses, uploads, erasures, facts), a row that cannot be written
  turns an answer below 500 into a ``503`` (the action itself may have been done: a queued job runs,
  an erasure stays done; asking again answers as it would and is recorded);
- for reads, a row that cannot be written is logged as an error and the answer goes out as it is.

Requests refused by the key check (401) never reach it and leave no row. The CLI records its own
rows with the actor ``cli:<user>`` through :func:`record`.
"""

from __future__ import annotations

import asyncio
import csv
import getpass
import io
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.responses import JSONResponse
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from video_emotions.api.auth import route_path
from video_emotions.errors import ServiceUnavailableError
from video_emotions.storage.db import Database, utcnow

logger = logging.getLogger(__name__)

AuditAction = Literal[
    "analysis_requested",
    "analysis_refused",
    "analysis_cancelled",
    "prediction_requested",
    "results_read",
    "frame_read",
    "export_read",
    "interview_uploaded",
    "interview_erased",
    "facts_changed",
    "facts_read",
    "audit_read",
]
ACTIONS: tuple[str, ...] = get_args(AuditAction)

#: The actor of a request when no API keys are configured.
OPEN_ACTOR = "open"
#: What an actor may be: a key id (api/auth.py's KEY_ID), ``open``, or ``cli:<user>``.
ACTOR_PATTERN = r"^[A-Za-z0-9_.:@-]{1,200}$"
#: Seconds a caller is told to wait after a 503 of the audit log.
RETRY_S = 5
#: Bytes of a request body kept to describe it (the analysis request, the facts): a bigger one is
#: recorded without its parameters.
MAX_BODY_BYTES = 64 * 1024
#: Lengths of the columns (the longest strings a row takes) and of a string in ``parameters``.
LENGTHS = {"actor": 200, "job_id": 36, "model_type": 64, "engine": 64, "outcome": 32, "client": 64}
MAX_PARAMETER_CHARS = 200
#: The columns of an exported row, in order (CSV header, JSON keys).
COLUMNS = (
    "id",
    "at",
    "actor",
    "action",
    "interview_id",
    "job_id",
    "model_type",
    "engine",
    "parameters",
    "outcome",
    "client",
)
MAX_ID = 2**63 - 1
_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class AuditWriteError(ServiceUnavailableError):
    """A row of the audit log could not be written (answered 503 where the log must hold the action)."""


def cli_actor() -> str:
    """``cli:<user>``: the actor of a command run here (the login name, odd characters as ``_``)."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name (a container's uid without a passwd entry)
        user = "unknown"
    return "cli:" + (re.sub(r"[^A-Za-z0-9_.@-]", "_", user)[:100] or "unknown")


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC (a naive one is taken as UTC); beyond datetime's range, its first or last moment."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 east of UTC, year 9999 west of it
        return (datetime.min if value.year == 1 else datetime.max).replace(tzinfo=UTC)


def _clean(value: str, length: int) -> str:
    """A string as both databases take it: no NUL, valid UTF-8, at most ``length`` characters."""
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")[:length]


def _clean_json(value: Any, depth: int = 0) -> Any:
    """``parameters`` as JSON (and PostgreSQL's jsonb) takes them: short strings, finite numbers."""
    if isinstance(value, str):
        return _clean(value, MAX_PARAMETER_CHARS)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if abs(value) <= MAX_ID else str(value)[:MAX_PARAMETER_CHARS]
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, Mapping) and depth < 3:
        return {_clean(str(k), 64): _clean_json(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple) and depth < 3:
        return [_clean_json(v, depth + 1) for v in list(value)[:50]]
    return _clean(str(value), MAX_PARAMETER_CHARS)


def _id(value: Any) -> int | None:
    """A positive id (bigint) from a path, query or body value; None for anything else."""
    if isinstance(value, bool):
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if 0 < number <= MAX_ID else None


def record(
    db: Database,
    *,
    actor: str,
    action: str,
    outcome: str | int,
    interview_id: int | None = None,
    job_id: str | None = None,
    model_type: str | None = None,
    engine: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    client: str | None = None,
    strict: bool = False,
) -> bool:
    """Append one row to the audit log; True when it was written.

    Never raises on a failed write unless ``strict``: the failure is logged as an error and False
    returned; with ``strict`` it raises :class:`AuditWriteError` (a 503) after logging it.
    """
    assert action in ACTIONS, action
    values = {
        "at": utcnow(),
        "actor": _clean(actor, LENGTHS["actor"]),
        "action": action,
        "interview_id": _id(interview_id) if interview_id is not None else None,
        "job_id": job_id if job_id is not None and _JOB_ID.fullmatch(job_id) else None,
        "model_type": _clean(model_type, LENGTHS["model_type"]) if model_type is not None else None,
        "engine": _clean(engine, LENGTHS["engine"]) if engine is not None else None,
        "parameters": _clean_json(dict(parameters or {})),
        "outcome": _clean(str(outcome), LENGTHS["outcome"]),
        "client": _clean(client, LENGTHS["client"]) if client else None,
    }
    try:
        db.append_audit(values)
    except Exception as exc:  # whatever kept the row out: a compliance log says so, loudly
        logger.error(
            "audit log: could not record %s by %s (interview %s, job %s, outcome %s): %s",
            action,
            values["actor"],
            values["interview_id"],
            values["job_id"],
            values["outcome"],
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
        )
        if strict:
            raise AuditWriteError(
                f"the audit log could not record {action}: the database does not take its row; "
                "try again later"
            ) from exc
        return False
    return True


# What each route records ----------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One request and the start of its answer, as the middleware saw them."""

    method: str
    template: str
    path_params: dict[str, str]
    query: QueryParams
    headers: dict[str, str]
    body: bytes | None
    status: int
    response_headers: dict[str, str]

    def body_json(self) -> dict[str, Any]:
        """The request body as a JSON object; ``{}`` when it is none (or was too big to keep)."""
        if not self.body:
            return {}
        try:
            parsed = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return {}
        return parsed if isinstance(parsed, dict) else {}

    def first_path_id(self) -> int | None:
        """The first id in the path (``{interview_id}``), for the routes of one interview."""
        return next((_id(value) for value in self.path_params.values()), None)


@dataclass
class Details:
    """What a row says beyond actor, action and outcome."""

    interview_id: int | None = None
    job_id: str | None = None
    model_type: str | None = None
    engine: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    action: str | None = None  # instead of the route's, when the answer decides it


def _job_id_answered(ex: Exchange) -> str | None:
    found = ex.response_headers.get("x-job-id")
    if found is None:
        location = ex.response_headers.get("location", "")
        found = location.rsplit("/", 1)[-1] if location.startswith("/v1/analyses/") else None
    return found if found is not None and _JOB_ID.fullmatch(found) else None


def _with_job(ctx: Any, details: Details) -> Details:
    """The job's own model_type, engine, interval and interview: what ran, not only what was asked."""
    if details.job_id is None:
        return details
    try:
        job = ctx.db.job(details.job_id)
    except Exception:
        logger.warning("audit log: could not read job %s to describe it", details.job_id, exc_info=True)
        return details
    if job is not None:
        details.interview_id = job.interview_id
        details.model_type, details.engine = job.model_type, job.engine
        key = (job.active_key or "").split("/")  # jobs.runner.active_key: interview/engine/interval
        if job.engine is None and len(key) == 3:  # queued: the engine is in its key until it starts
            details.engine = key[1]
        details.parameters["interval"] = job.interval
    return details


def _analysis(ex: Exchange, ctx: Any, asked: Mapping[str, Any]) -> Details:
    """An analysis request: what it asked for, and the job that answers it (none: refused)."""
    settings = ctx.settings
    interval = asked.get("interval")
    details = Details(
        interview_id=_id(asked.get("interview_id")),
        job_id=_job_id_answered(ex),
        model_type=str(asked.get("model_type") or settings.default_model),
        parameters={
            "session_id": _id(asked.get("session_id")),
            "interval": interval if isinstance(interval, int | float) and interval else settings.interval,
            "force": asked.get("force") in (True, "true", "1", "True", "yes", "on"),
        },
    )
    if "callback_url" in asked:
        details.parameters["callback"] = bool(asked.get("callback_url"))  # not the URL: it may hold a token
    if details.job_id is None:
        details.action = "analysis_refused"
    return _with_job(ctx, details)


def _analyse_video(ex: Exchange, ctx: Any) -> Details:
    return _analysis(ex, ctx, {key: ex.query.get(key) for key in ex.query})


def _create_analysis(ex: Exchange, ctx: Any) -> Details:
    return _analysis(ex, ctx, ex.body_json())


def _cancel_analysis(ex: Exchange, ctx: Any) -> Details:
    job_id = ex.path_params.get("job_id", "")
    return _with_job(ctx, Details(job_id=job_id if _JOB_ID.fullmatch(job_id) else None))


def _predict(ex: Exchange, ctx: Any) -> Details:
    return Details(model_type=ex.query.get("model_type") or None)


def _interview_read(ex: Exchange, _ctx: Any) -> Details:
    parameters: dict[str, Any] = {key: ex.query.get(key) for key in ex.query}
    parameters |= {key: value for key, value in ex.path_params.items() if "interview" not in key}
    return Details(interview_id=ex.first_path_id(), parameters=parameters)


def _upload(ex: Exchange, _ctx: Any) -> Details:
    location = ex.response_headers.get("location", "")
    interview = _id(location.rsplit("/", 1)[-1]) if location.startswith("/v1/interviews/") else None
    length = _id(ex.headers.get("content-length"))
    return Details(interview_id=interview, parameters={"bytes": length} if length else {})


def _facts(ex: Exchange, _ctx: Any) -> Details:
    # The fields set, with the values of those that are true, false or null (consent): not the text
    # ones, which may name a person (recorded_by, consent_by).
    body = ex.body_json()
    flags = {key: value for key, value in body.items() if isinstance(value, bool) or value is None}
    return Details(interview_id=ex.first_path_id(), parameters={"fields": sorted(body)} | flags)


def _erasure(ex: Exchange, _ctx: Any) -> Details:
    return Details(interview_id=ex.first_path_id(), parameters={key: ex.query.get(key) for key in ex.query})


def _audit_read(ex: Exchange, _ctx: Any) -> Details:
    return Details(
        interview_id=_id(ex.query.get("interview_id")),
        parameters={key: ex.query.get(key) for key in ex.query},
    )


@dataclass(frozen=True)
class AuditedRoute:
    """What a route records: its action, how its row is described, and whether the row must be written
    for the answer to go out (``strict``: a 503 otherwise) or is logged when it cannot be."""

    action: str
    describe: Callable[[Exchange, Any], Details]
    strict: bool
    body: bool = False  # keep the request body (up to MAX_BODY_BYTES) to describe it


#: The recorded routes, by method and path template (as the OpenAPI document names them).
ROUTES: dict[tuple[str, str], AuditedRoute] = {
    ("POST", "/analyse_video"): AuditedRoute("analysis_requested", _analyse_video, strict=True),
    ("POST", "/v1/analyses"): AuditedRoute("analysis_requested", _create_analysis, strict=True, body=True),
    ("DELETE", "/v1/analyses/{job_id}"): AuditedRoute("analysis_cancelled", _cancel_analysis, strict=True),
    ("POST", "/v1/predict"): AuditedRoute("prediction_requested", _predict, strict=True),
    ("POST", "/v1/interviews"): AuditedRoute("interview_uploaded", _upload, strict=True),
    ("DELETE", "/v1/interviews/{interview_id}"): AuditedRoute("interview_erased", _erasure, strict=True),
    ("PUT", "/v1/interviews/{interview_id}/facts"): AuditedRoute(
        "facts_changed", _facts, strict=True, body=True
    ),
    ("GET", "/v1/interviews/{interview_id}/facts"): AuditedRoute("facts_read", _interview_read, strict=False),
    ("GET", "/v1/interviews/{interview_id}/emotions"): AuditedRoute(
        "results_read", _interview_read, strict=False
    ),
    ("GET", "/v1/interviews/{interview_id}/frames/{time}.jpg"): AuditedRoute(
        "frame_read", _interview_read, strict=False
    ),
    ("GET", "/v1/audit"): AuditedRoute("audit_read", _audit_read, strict=False),
}

#: The API's routes that leave no row, and why: they hold no personal data (ids, states, job
#: records without results, model documents), or are the service's own (health, metrics).
NOT_AUDITED: dict[tuple[str, str], str] = {
    ("GET", "/health"): "service health",
    ("GET", "/metrics"): "service metrics",
    ("GET", "/v1/models"): "model documents",
    ("GET", "/v1/models/{name}/card"): "model documents",
    ("GET", "/v1/jobs/{job_id}"): "a job record: ids, states, no results",
    ("GET", "/v1/analyses"): "job records: ids, states, no results",
    ("GET", "/v1/analyses/{job_id}"): "a job record: ids, states, no results",
    ("GET", "/v1/interviews"): "interview ids and analysis states, no results",
    ("GET", "/v1/interviews/{interview_id}"): "an interview's ids and analysis state, no results",
}


# The middleware -------------------------------------------------------------------------------


class AuditMiddleware:
    """Records every request to a route of :data:`ROUTES` (see the module text); pure ASGI, so the
    routes' streams and their callers' disconnects are left alone."""

    def __init__(self, app: ASGIApp, routes: Mapping[tuple[str, str], AuditedRoute] | None = None) -> None:
        self.app = app
        self.routes = [
            (method, template, compile_path(template)[0], audited)
            for (method, template), audited in (ROUTES if routes is None else routes).items()
        ]

    def match(self, scope: Scope) -> tuple[str, dict[str, str], AuditedRoute] | None:
        """The audited route a request goes to: its template, its path parameters, what it records."""
        path = route_path(scope)
        for method, template, regex, audited in self.routes:
            found = regex.match(path) if method == scope.get("method") else None
            if found is not None:
                return template, found.groupdict(), audited
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        matched = self.match(scope)
        if matched is None:
            await self.app(scope, receive, send)
            return
        template, path_params, audited = matched
        kept = bytearray()
        too_big = False

        async def receive_kept() -> Message:
            nonlocal too_big
            message = await receive()
            if message["type"] == "http.request" and not too_big:
                kept.extend(message.get("body", b""))
                if len(kept) > MAX_BODY_BYTES:
                    too_big = True
                    kept.clear()
            return message

        status: int | None = None
        replaced = False

        def exchange(answer: int, response_headers: dict[str, str]) -> Exchange:
            return Exchange(
                method=scope["method"],
                template=template,
                path_params=path_params,
                query=QueryParams(scope.get("query_string", b"")),
                headers=_headers(scope.get("headers", [])),
                body=None if too_big else bytes(kept),
                status=answer,
                response_headers=response_headers,
            )

        async def send_audited(message: Message) -> None:
            nonlocal status, replaced
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = _headers(message.get("headers", []))
                written = await run_in_threadpool(self._write, scope, audited, exchange(status, headers))
                if not written and audited.strict and status < 500:
                    replaced = True
                    refusal = JSONResponse(
                        {
                            "detail": f"the audit log could not record this request (it answered {status} "
                            "and may have taken effect); the database does not take the log's rows: try "
                            "again later"
                        },
                        status_code=503,
                        headers={"Retry-After": str(RETRY_S)},
                    )
                    await refusal(scope, _no_body, send)
                    return
            elif message["type"] == "http.response.body" and replaced:
                return
            await send(message)

        try:
            await self.app(scope, receive_kept if audited.body else receive, send_audited)
        except asyncio.CancelledError:
            if status is None:  # the caller left before any answer
                await asyncio.shield(run_in_threadpool(self._write, scope, audited, exchange(499, {})))
            raise
        except Exception:
            if status is None:
                await run_in_threadpool(self._write, scope, audited, exchange(500, {}))
            raise

    def _write(self, scope: Scope, audited: AuditedRoute, ex: Exchange) -> bool:
        """Describe and append the row; False when it could not be written (logged)."""
        ctx = getattr(getattr(scope.get("app"), "state", None), "ctx", None)
        if ctx is None:  # the service is not up: only its 503 can have answered (logged where it says so)
            level = logging.DEBUG if ex.status == 503 else logging.ERROR
            logger.log(
                level, "audit log: no database to record %s %s (%d)", ex.method, ex.template, ex.status
            )
            return False
        try:
            details = audited.describe(ex, ctx)
        except Exception:
            logger.exception("audit log: could not describe %s %s", ex.method, ex.template)
            details = Details()
        key_id = scope.get("state", {}).get("api_key_id")
        client = scope.get("client")
        return record(
            ctx.db,
            actor=key_id or OPEN_ACTOR,
            action=details.action or audited.action,
            outcome=ex.status,
            interview_id=details.interview_id,
            job_id=details.job_id,
            model_type=details.model_type,
            engine=details.engine,
            parameters=details.parameters,
            client=client[0] if client else None,
        )


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw}


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def add_audit(app: Any) -> None:
    """Record the audited routes of ``app``; add it before the API key check (so that it runs inside it)."""
    app.add_middleware(AuditMiddleware)


# Reading it back ------------------------------------------------------------------------------


def entry_document(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as the API and the JSON export give it: ``at`` in ISO 8601, UTC with its offset."""
    document = {column: row.get(column) for column in COLUMNS}
    document["at"] = as_utc(row["at"]).isoformat()
    document["parameters"] = row.get("parameters") or {}
    return document


#: What a spreadsheet takes for a formula at the start of a cell.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A CSV cell; a text a spreadsheet would run as a formula gets a leading ``'``."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    text = str(value)
    return "'" + text if isinstance(value, str) and text.startswith(_FORMULA_START) else text


def csv_lines(documents: Iterable[Mapping[str, Any]], *, header: bool = True) -> Iterable[str]:
    """The entries as CSV text, a line (or a header) at a time: the columns of COLUMNS, ``parameters``
    as JSON."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(COLUMNS)
    for document in documents:
        writer.writerow([_cell(document.get(column)) for column in COLUMNS])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
    if header and out.getvalue():  # no rows: the header alone
        yield out.getvalue()
