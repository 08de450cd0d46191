"""Registering an interview: its video in storage, its session, interview and ``results`` rows in
the database; all of it or, on any failure, none (the video is uploaded after every check and
removed again when the database refuses the rows)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from video_emotions.context import ServiceContext
from video_emotions.domain import Segment
from video_emotions.errors import ConflictError, InputError
from video_emotions.facts import check_facts
from video_emotions.storage.blobs import video_key
from video_emotions.video.sampler import VideoInfo, packets_end, probe

logger = logging.getLogger(__name__)

#: The largest id the tables hold (bigint).
MAX_ID = 2**63 - 1
#: The speakers ``results.speaker`` (smallint) holds.
SPEAKERS = (-(2**15), 2**15 - 1)


def whole_video_end(video: Path, info: VideoInfo, *, max_pixels: int) -> float:
    """Where the whole video, as one segment, ends: its declared duration; for a file that declares
    none (a browser's WebM recording), one frame's time past its last packet."""
    if math.isfinite(info.duration):
        return info.duration
    end = packets_end(video, max_pixels=max_pixels)
    if end is None:
        raise InputError(f"{video.name} declares no duration and its frames carry no times: give segments")
    return end + (1 / info.fps if info.fps > 0 else 1.0)


@dataclass(frozen=True)
class Ingested:
    key: str
    result_ids: list[int]


def ingest_interview(
    ctx: ServiceContext,
    video: Path,
    *,
    session_id: int,
    interview_id: int,
    segments: Sequence[Segment] | None = None,
    facts: Mapping[str, Any] | None = None,
) -> Ingested:
    """Register ``video`` as interview ``interview_id`` of ``session_id`` (created if new), with
    ``segments`` (default: the whole video, one candidate segment) and ``facts`` (context, region,
    purpose, consent, ...: ``facts.FACT_FIELDS``), written with the rows in one transaction. Segment
    ids > 0 are kept, 0 lets the database choose. InputError or ConflictError says what to fix;
    nothing is left."""
    if session_id <= 0 or interview_id <= 0:
        raise InputError("the session and interview ids must be positive integers")
    checked_facts = check_facts({k: v for k, v in (facts or {}).items() if v is not None})
    max_pixels = ctx.settings.max_video_pixels
    info = probe(video, max_pixels=max_pixels)
    if segments is None:
        segments = [Segment(id=0, start=0.0, end=whole_video_end(video, info, max_pixels=max_pixels))]
    rows = list(segments)
    if not rows:
        raise InputError("no segments: give at least one, or none at all for the whole video")
    for segment in rows:
        if not 0 <= segment.start < segment.end < math.inf:
            raise InputError(
                f"segment {segment.id or '(new)'}: needs 0 <= start < end, got {segment.start * 1000:.0f} "
                f"to {segment.end * 1000:.0f} ms"
            )
        if not SPEAKERS[0] <= segment.speaker <= SPEAKERS[1]:
            raise InputError(
                f"segment {segment.id or '(new)'}: speaker {segment.speaker} is not a small integer "
                f"({SPEAKERS[0]} to {SPEAKERS[1]}; 0 is the candidate)"
            )
    if ctx.db.interview(interview_id) is not None:
        raise ConflictError(f"interview {interview_id} already exists: ingest registers new interviews only")
    if interview_id > MAX_ID or session_id > MAX_ID or any(s.id > MAX_ID or s.id < 0 for s in rows):
        raise InputError(f"ids must be positive integers up to {MAX_ID} (bigint)")
    given = [s.id for s in rows if s.id > 0]
    if len(set(given)) != len(given):
        raise InputError(
            f"segment ids must be unique; repeated: {sorted({i for i in given if given.count(i) > 1})}"
        )
    in_use = ctx.db.result_owners(given)
    if in_use:
        listed = ", ".join(f"{result_id} (interview {owner})" for result_id, owner in sorted(in_use.items()))
        raise ConflictError(
            f"segment ids already in use in results: {listed}; leave 'id' out to have new ones given"
        )
    key = video_key(session_id, interview_id, ctx.settings.video_filename)
    ctx.blobs.put(key, video)
    try:
        ids = ctx.db.ingest(
            session_id=session_id, interview_id=interview_id, segments=rows, facts=checked_facts
        )
    except BaseException:
        try:
            ctx.blobs.delete(key)
        except Exception:
            logger.exception("could not remove %s after a failed ingest", key)
        raise
    return Ingested(key, ids)
