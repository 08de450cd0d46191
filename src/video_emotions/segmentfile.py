"""Segments files: a JSON list of ``{"start": ms, "end": ms, "speaker"?: n, "id"?: n}``, as in ``results``."""

from __future__ import annotations

import json
from pathlib import Path

from video_emotions.domain import Segment
from video_emotions.errors import InputError


def load_segments(path: Path, *, number_missing_ids: bool = True) -> list[Segment]:
    """Read a segments file; times become seconds.

    A segment without an ``id`` gets its position (1, 2, ...) when ``number_missing_ids``, else 0,
    which leaves the id to the database (``ingest``: ids already in ``results`` must not collide).
    """
    try:
        text = Path(path).read_text()
    except FileNotFoundError as exc:
        raise InputError(f"segments file {path} does not exist") from exc
    return parse_segments(text, source=f"segments file {path}", number_missing_ids=number_missing_ids)


def parse_segments(text: str, *, source: str, number_missing_ids: bool = True) -> list[Segment]:
    """A segments file's text as segments (see :func:`load_segments`); ``source`` names it in errors."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source} is not JSON: {exc}") from exc
    if not isinstance(items, list):
        raise InputError(f"{source} must hold a JSON list of {{start, end}} objects")
    segments = []
    for number, item in enumerate(items, start=1):
        try:
            start, end = float(item["start"]), float(item["end"])
            segment = Segment(
                id=int(item.get("id", number if number_missing_ids else 0)),
                start=start / 1000.0,
                end=end / 1000.0,
                speaker=int(item.get("speaker", 0)),
            )
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise InputError(
                f"{source}, item {number}: needs numeric 'start' and 'end' in milliseconds"
            ) from exc
        if segment.end <= segment.start:
            raise InputError(f"{source}, item {number}: end must be after start")
        segments.append(segment)
    return segments
