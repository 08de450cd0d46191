"""The interviews a person sees on the page: the list with where each analysis stands, uploading a
video (and its segments), one frame with the candidate's face box drawn, and erasing an interview
(``retention.erase_interview``).

``POST /v1/interviews`` reads its multipart form as it arrives: the video goes to a temporary file
chunk by chunk (never whole in memory), held to ``VE_MAX_UPLOAD_MB`` while it is read, and
``ingest_interview`` registers it (all of it or nothing). The temporary folder goes when the
request ends, whatever happened.
"""

from __future__ import annotations

import io
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from video_emotions.api import schemas
from video_emotions.api.paging import paginated
from video_emotions.api.schemas import MAX_ID
from video_emotions.context import ServiceContext
from video_emotions.domain import Segment
from video_emotions.errors import ConflictError, InputError, NotFoundError
from video_emotions.facts import LABEL_PATTERN, check_facts
from video_emotions.ingest import ingest_interview
from video_emotions.jobs.records import job_document
from video_emotions.retention import erase_interview
from video_emotions.segmentfile import parse_segments
from video_emotions.storage.blobs import video_key
from video_emotions.storage.db import Database
from video_emotions.video.sampler import Coverage, ends_early, packets_end, probe, sample_frames

router = APIRouter(prefix="/v1/interviews", tags=["interviews"])

PathId = Annotated[int, Path(gt=0, le=MAX_ID, description="A positive integer id.")]

#: The session an upload without ids goes to (created if new).
DEFAULT_SESSION = 1
#: The form's fields: the video file, the segments file, the ids, the facts the policy reads.
FORM_FIELDS = ("video", "segments", "session_id", "interview_id", "context", "region")
#: Bytes handed to the form parser at a time (it writes the video part to disk in a worker thread).
FEED_BYTES = 1 << 20
#: A requested frame time is a sample's time to the millisecond: the frame may lie up to this before it.
TIME_ROUNDING_S = 0.0005
#: The face box drawn on a frame: colour, and its line width per pixel of the frame's shorter side.
BOX_COLOR = (0, 230, 64)
BOX_WIDTH_SHARE = 1 / 150
JPEG_QUALITY = 90

UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["video"],
                "additionalProperties": False,
                "properties": {
                    "video": {
                        "type": "string",
                        "format": "binary",
                        "description": "The interview's video file (at most VE_MAX_UPLOAD_MB).",
                    },
                    "segments": {
                        "type": "string",
                        "format": "binary",
                        "description": "A segments file: JSON list of {start, end} in ms, optional speaker "
                        "(0, the candidate, by default) and id. Without it the whole video is one "
                        "candidate segment.",
                    },
                    "session_id": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_ID,
                        "description": f"Default {DEFAULT_SESSION} (created if new).",
                    },
                    "interview_id": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_ID,
                        "description": "Must be new; default: the highest interview id + 1.",
                    },
                    "context": {
                        "type": "string",
                        "pattern": LABEL_PATTERN,
                        "description": "What the interview is for, as the policy (VE_POLICY_FILE) names it: "
                        "hiring, ... (also PUT /v1/interviews/{id}/facts).",
                    },
                    "region": {
                        "type": "string",
                        "pattern": LABEL_PATTERN,
                        "description": "Where it takes place, as the policy names it: EU, ...",
                    },
                },
            }
        }
    },
}


# Reading the form ---------------------------------------------------------------------------------


class UploadTooLargeError(InputError):
    """A part of the upload passes its bound (answered 413)."""


@dataclass
class UploadForm:
    """The form as read: the video's file (in the request's temporary folder), the other fields' bytes,
    and the file names the client gave."""

    video: FilePath | None = None
    video_bytes: int = 0
    fields: dict[str, bytes] = field(default_factory=dict)
    filenames: dict[str, str] = field(default_factory=dict)


def safe_name(filename: str | None, fallback: str) -> str:
    """A client's file name as a plain name of this folder: its last part, odd characters as ``_``."""
    name = re.split(r"[/\\]", filename or "")[-1]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:100]
    return name or fallback


class _FormReader:
    """python-multipart's callbacks: the video part into a file, the others into bounded buffers."""

    def __init__(self, folder: FilePath, *, max_video_bytes: int, max_field_bytes: int) -> None:
        self.folder = folder
        self.max_video_bytes = max_video_bytes
        self.max_field_bytes = max_field_bytes
        self.form = UploadForm()
        self.ended = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._name = ""
        self._out: BinaryIO | None = None
        self._buffer = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._disposition, self._name = b"", ""
        self._buffer = bytearray()

    def _header_end(self) -> None:
        if bytes(self._header_name).strip().lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", errors="replace")
        if name not in FORM_FIELDS:
            raise InputError(
                f"unknown form field {name!r}: the form takes {', '.join(FORM_FIELDS)} "
                "(e.g. curl -F video=@interview.mp4 -F segments=@segments.json)"
            )
        if name in self.form.fields or (name == "video" and self.form.video is not None):
            raise InputError(f"the form gives {name!r} twice")
        self._name = name
        filename = options.get(b"filename")
        if filename is not None:
            self.form.filenames[name] = filename.decode("utf-8", errors="replace")
        if name == "video":
            self.form.video = self.folder / safe_name(self.form.filenames.get(name), "video")
            self._out = self.form.video.open("wb")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._out is not None:
            self.form.video_bytes += end - start
            if self.form.video_bytes > self.max_video_bytes:
                raise UploadTooLargeError(
                    f"the video is over {self.max_video_bytes / 1_000_000:g} MB (VE_MAX_UPLOAD_MB)"
                )
            self._out.write(data[start:end])
            return
        if len(self._buffer) + end - start > self.max_field_bytes:
            limit = self.max_field_bytes / 1_000_000
            raise UploadTooLargeError(f"the form's {self._name!r} is over {limit:g} MB (VE_MAX_REQUEST_MB)")
        self._buffer.extend(data[start:end])

    def _part_end(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        else:
            self.form.fields[self._name] = bytes(self._buffer)

    def _end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


async def read_form(
    request: Request, folder: FilePath, *, max_video_bytes: int, max_field_bytes: int
) -> UploadForm:
    """Read a multipart/form-data body as it arrives, the video part into ``folder``.

    UploadTooLargeError when a part passes its bound, InputError for a form that is not one (or is
    cut off before its closing boundary); ClientDisconnect when the client (or the body limit) left.
    """
    kind, options = parse_options_header(request.headers.get("content-type"))
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise InputError(
            "the upload must be multipart/form-data with a 'video' file: "
            "curl -F video=@interview.mp4 -F segments=@segments.json …/v1/interviews"
        )
    reader = _FormReader(folder, max_video_bytes=max_video_bytes, max_field_bytes=max_field_bytes)
    parser = MultipartParser(options[b"boundary"], reader.callbacks())
    pending: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            pending.append(chunk)
            size += len(chunk)
            if size >= FEED_BYTES:
                await run_in_threadpool(parser.write, b"".join(pending))
                pending, size = [], 0
        if pending:
            await run_in_threadpool(parser.write, b"".join(pending))
        parser.finalize()
    except MultipartParseError as exc:
        raise InputError(f"the form cannot be read as multipart/form-data: {exc}") from exc
    finally:
        reader.close()
    if not reader.ended:
        raise InputError("the form ends before its closing boundary: the upload was cut off")
    if reader.form.video is None:
        raise InputError("the form has no 'video' file: send it as -F video=@interview.mp4")
    return reader.form


# Registering it -----------------------------------------------------------------------------------

_claims_lock = threading.Lock()
#: Interview ids an upload in this process is registering now: two uploads never take one id.
_claimed: set[int] = set()


@contextmanager
def _claim(db: Database, wanted: int | None) -> Iterator[int]:
    """Hold an interview id while it is registered: ``wanted``, or the highest id in use + 1."""
    with _claims_lock:
        if wanted is None:
            wanted = max(db.max_interview_id(), *_claimed, 0) + 1
        elif wanted in _claimed:
            raise ConflictError(f"interview {wanted} is being uploaded right now")
        _claimed.add(wanted)
    try:
        yield wanted
    finally:
        with _claims_lock:
            _claimed.discard(wanted)


def _form_id(form: UploadForm, name: str) -> int | None:
    raw = form.fields.get(name)
    if raw is None:
        return None
    try:
        value = int(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        value = 0
    if not 0 < value <= MAX_ID:
        raise InputError(f"{name} must be a positive integer up to {MAX_ID} (got {raw[:40]!r})")
    return value


def _form_segments(form: UploadForm) -> list[Segment] | None:
    raw = form.fields.get("segments")
    if raw is None:
        return None
    source = f"segments file {safe_name(form.filenames.get('segments'), 'segments')}"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{source} is not UTF-8 text") from exc
    return parse_segments(text, source=source, number_missing_ids=False)


def _form_facts(form: UploadForm) -> dict[str, str]:
    """The form's ``context`` and ``region`` (checked as every fact is, by ``ingest_interview``)."""
    facts = {}
    for name in ("context", "region"):
        raw = form.fields.get(name)
        if raw is None:
            continue
        try:
            facts[name] = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{name} is not UTF-8 text") from exc
    return facts


def cut_short_warning(decodes_until: float, declared: float) -> str:
    """What a person reads about an upload whose data ends before its header says."""
    return (
        f"the recording's data ends at {decodes_until:.3f} s but its header declares {declared:.3f} s: it "
        "was cut short (a recording or an upload stopped early). It is analysed as far as it decodes; "
        "segments after that are not analysed, and the analysis's warnings say which"
    )


def register_upload(ctx: ServiceContext, form: UploadForm) -> dict[str, Any]:
    """Register an uploaded video (with its segments) as a new interview: the interview's record, and
    ``decodes_until_s`` with a ``warning`` when the recording's data ends well before its header says."""
    assert form.video is not None, "read_form refuses a form without a video"
    session_id = _form_id(form, "session_id") or DEFAULT_SESSION
    wanted = _form_id(form, "interview_id")
    segments = _form_segments(form)
    facts = check_facts(_form_facts(form))  # before the video is probed: a bad name costs no decoding
    max_pixels = ctx.settings.max_video_pixels
    info = probe(form.video, max_pixels=max_pixels)  # a file that is no video stops here
    late = [s for s in segments or () if s.speaker == 0 and s.start >= info.duration]
    if late:
        raise InputError(
            f"{len(late)} candidate segment(s) start at or after the end of the video "
            f"({info.duration:.3f} s), the first at {late[0].start * 1000:.0f} ms: the segments file "
            "holds milliseconds"
        )
    end = packets_end(form.video, max_pixels=max_pixels)
    with _claim(ctx.db, wanted) as interview_id:
        ingest_interview(
            ctx, form.video, session_id=session_id, interview_id=interview_id, segments=segments, facts=facts
        )
    record = interview_record(ctx.db, interview_id)
    if end is not None and ends_early(info, end):
        record |= {"decodes_until_s": round(end, 3), "warning": cut_short_warning(end, info.duration)}
    return record


# The records --------------------------------------------------------------------------------------


def interview_item(db: Database, row: dict[str, Any], job_id: str | None) -> dict[str, Any]:
    """An interview (``row``: id, session_id, video_ok, candidate_segments) with its newest job."""
    job = job_document(db, job_id, deliveries=False) if job_id is not None else None
    return {
        "interview_id": row["id"],
        "session_id": row["session_id"],
        "state": job["state"] if job else "not_analysed",
        "progress": job["progress"] if job else 0.0,
        "job_id": job["id"] if job else None,
        "error": job["error"]["message"] if job and job["error"] else None,
        "video_ok": bool(row["video_ok"]),
        "segments": row["candidate_segments"],
        "warnings": len(job["warnings"]) if job else 0,
    }


def interview_record(db: Database, interview_id: int) -> dict[str, Any]:
    """One interview as the list shows it; NotFoundError when there is none."""
    interview = db.interview(interview_id)
    if interview is None:
        raise NotFoundError(f"interview {interview_id} does not exist")
    row = interview | {"candidate_segments": len(db.candidate_segments(interview_id))}
    return interview_item(db, row, db.newest_job_ids([interview_id]).get(interview_id))


def interview_page(db: Database, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    rows, total = db.list_interviews(limit=limit, offset=offset)
    newest = db.newest_job_ids([row["id"] for row in rows])
    return [interview_item(db, row, newest.get(row["id"])) for row in rows], total


# One frame ----------------------------------------------------------------------------------------


def frame_jpeg(ctx: ServiceContext, interview_id: int, time: float) -> bytes:
    """The interview's frame at ``time`` (the first at or after it) as JPEG, with the face box of the
    stored sample of that very frame drawn; decoded from the stored video now, never stored."""
    from PIL import Image, ImageDraw

    interview = ctx.db.interview(interview_id)
    if interview is None:
        raise NotFoundError(f"interview {interview_id} does not exist")
    key = video_key(interview["session_id"], interview_id, ctx.settings.video_filename)
    if not ctx.blobs.exists(key):
        raise NotFoundError(f"no video for interview {interview_id}: {key} is not in storage")
    max_pixels = ctx.settings.max_video_pixels
    with ctx.blobs.local_copy(key) as path:
        info = probe(path, max_pixels=max_pixels)
        if time >= info.duration:
            raise InputError(f"time {time:.3f} s is outside the video (0 to {info.duration:.3f} s)")
        start = max(0.0, time - TIME_ROUNDING_S)
        coverage = Coverage()
        frames = sample_frames(
            path, [Segment(0, start, start + 0.001)], 1.0, coverage=coverage, max_pixels=max_pixels
        )
        with closing(frames):
            sample = next(frames, None)
    if sample is None:
        until = f" up to {coverage.decoded_until:.3f} s" if coverage.decoded_until is not None else " not"
        raise InputError(f"the video decodes only{until}: no frame at {time:.3f} s")
    half_frame = 0.5 / info.fps if info.fps > 0 else 0.02
    stored = [
        (abs(frame["time"] - sample.time), frame["box"])
        for segment in ctx.db.segment_results(interview_id)
        for frame in segment["frames"]
    ]
    near = min((item for item in stored if item[0] <= half_frame), default=None, key=lambda item: item[0])
    image = Image.fromarray(sample.image)
    if near is not None and near[1] is not None:
        x, y, width, height = near[1]
        line = max(2, round(min(image.size) * BOX_WIDTH_SHARE))
        ImageDraw.Draw(image).rectangle([x, y, x + width, y + height], outline=BOX_COLOR, width=line)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


# Routes -------------------------------------------------------------------------------------------


@router.get("", responses={200: {"model": schemas.InterviewPage}, **schemas.errors(401, 422, 503)})
async def list_interviews(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    """Interviews newest first (highest id first), each with its newest analysis's state (``not_analysed``
    when it has none), progress, job, error, ``video_ok``, candidate segments and warnings counted;
    ``next`` is the following page's URL."""
    ctx: ServiceContext = request.app.state.ctx
    items, total = await run_in_threadpool(interview_page, ctx.db, limit, offset)
    return paginated(request, items, total, limit=limit, offset=offset)


@router.post(
    "",
    status_code=201,
    openapi_extra={"requestBody": UPLOAD_BODY},
    responses={
        201: {
            "model": schemas.InterviewUploaded,
            "description": "Registered: the interview's record, at its Location.",
        },
        **schemas.errors(
            401,
            409,
            413,
            422,
            503,
            checked="a form without a video, a file that does not decode as video, bad ids, segments, "
            "context or region.",
        ),
    },
)
async def upload_interview(request: Request) -> Response:
    """Upload an interview's video (multipart/form-data: ``video``, optional ``segments`` file,
    ``session_id``, ``interview_id``, ``context``, ``region``) and register it: ``201`` with its record
    and ``Location``. ``context`` and ``region`` are the interview's facts the policy reads.

    Without ids it becomes a new interview (the highest id + 1) of session 1, created if new; without
    segments the whole video is one candidate segment. A file that does not decode as video is refused
    (422) and nothing is stored; one whose data ends well before its declared duration (cut short) is
    registered, with ``decodes_until_s`` and a ``warning``.
    """
    ctx: ServiceContext = request.app.state.ctx
    settings = ctx.settings
    with tempfile.TemporaryDirectory(prefix="video-emotions-upload-") as folder:
        try:
            form = await read_form(
                request,
                FilePath(folder),
                max_video_bytes=int(settings.max_upload_mb * 1_000_000),
                max_field_bytes=int(settings.max_request_mb * 1_000_000),
            )
        except UploadTooLargeError as exc:
            return JSONResponse({"detail": f"{exc}: nothing was stored"}, status_code=413)
        except ClientDisconnect:
            return Response(status_code=499)  # the client left (or the body limit answered 413)
        record = await run_in_threadpool(register_upload, ctx, form)
    return JSONResponse(
        record, status_code=201, headers={"Location": f"/v1/interviews/{record['interview_id']}"}
    )


@router.get(
    "/{interview_id}",
    responses={200: {"model": schemas.InterviewItem}, **schemas.errors(401, 404, 422, 503)},
)
async def get_interview(request: Request, interview_id: PathId) -> dict[str, Any]:
    """One interview as the list shows it (where an upload's ``Location`` points)."""
    ctx: ServiceContext = request.app.state.ctx
    return await run_in_threadpool(interview_record, ctx.db, interview_id)


@router.delete(
    "/{interview_id}",
    responses={
        200: {"model": schemas.Erasure, "description": "Erased: what went, what was left and why."},
        **schemas.errors(401, 404, 422, 503),
    },
)
async def erase(request: Request, interview_id: PathId) -> dict[str, Any]:
    """Erase everything we hold of an interview: our rows, its run logs, the video when we own the bucket
    (``VE_DELETE_VIDEOS=true``); ``results.video_emotions`` cleared and ``video_ok`` false. A job of it
    that is queued or running is cancelled first. ``complete`` is false when a storage object could not
    be deleted (``errors``): erase again to finish."""
    ctx: ServiceContext = request.app.state.ctx
    report = await run_in_threadpool(erase_interview, ctx, interview_id)
    return report.as_dict()


@router.get(
    "/{interview_id}/frames/{time}.jpg",
    response_class=Response,
    responses={
        200: {
            "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The frame as JPEG, the candidate's face box drawn when a stored sample has one.",
        },
        **schemas.errors(
            401, 404, 422, 503, checked="a time outside the video, or where the video does not decode."
        ),
    },
)
async def frame(
    request: Request,
    interview_id: PathId,
    time: Annotated[float, Path(ge=0, allow_inf_nan=False, description="Seconds, e.g. 1.001.")],
) -> Response:
    """The frame at ``time`` (the first at or after it, to the millisecond), upright, with the face box
    of the stored sample of that frame drawn (none without one); decoded now, never stored."""
    ctx: ServiceContext = request.app.state.ctx
    jpeg = await run_in_threadpool(frame_jpeg, ctx, interview_id, time)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
