"""What is known about an interview beyond its video: the context and region the policy gate reads,
and the recording's purpose, who recorded it and when, the notice shown and the candidate's consent.

They live in our own table ``ve_interview_facts`` (one row per interview), set by ``ingest``, by the
upload's form and by ``PUT /v1/interviews/{id}/facts``. The same checks apply on every way in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from video_emotions.errors import InputError

#: The facts an interview carries, in the order the API gives them.
FACT_FIELDS = (
    "context",
    "region",
    "purpose",
    "recorded_by",
    "recorded_at",
    "notice",
    "consent",
    "consent_at",
    "consent_by",
)
#: A context or region: a keyword such as ``hiring`` or ``EU`` (letters, digits, ``. _ : / -``);
#: never ``*``, which a policy rule uses for "any".
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$"
LABEL_MAX = 64
#: The longest text each free-text fact takes.
TEXT_MAX = {"purpose": 2000, "recorded_by": 200, "notice": 20000, "consent_by": 200}
#: The facts that are times.
TIME_FIELDS = ("recorded_at", "consent_at")

_label = re.compile(LABEL_PATTERN)


def is_label(value: str) -> bool:
    """Whether ``value`` can be an interview's context or region."""
    return _label.fullmatch(value) is not None


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a time without an offset is taken as UTC. ValueError when UTC cannot hold it
    (year 1 with a positive offset, say)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"{value.isoformat()} is outside the times UTC can hold") from exc


def check_facts(values: Mapping[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """``values`` (a subset of FACT_FIELDS; None clears a fact) checked and normalised: labels and
    texts stripped, times in UTC, and ``consent_at`` the time of this change when ``consent`` is set
    without one. InputError names the fact that is wrong."""
    unknown = sorted(set(values) - set(FACT_FIELDS))
    if unknown:
        raise InputError(f"unknown interview facts {unknown}: the facts are {', '.join(FACT_FIELDS)}")
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            checked[name] = None
        elif name in ("context", "region"):
            text = str(value).strip()
            if not is_label(text):
                raise InputError(
                    f"{name} {text[:80]!r} is not a name: 1 to {LABEL_MAX} letters, digits or . _ : / - "
                    "(starting with a letter or digit), e.g. hiring or EU"
                )
            checked[name] = text
        elif name in TEXT_MAX:
            text = str(value).strip()
            if "\x00" in text:
                raise InputError(f"{name} holds a NUL character")
            if len(text) > TEXT_MAX[name]:
                raise InputError(f"{name} is over {TEXT_MAX[name]} characters ({len(text)})")
            checked[name] = text or None
        elif name in TIME_FIELDS:
            if not isinstance(value, datetime):
                raise InputError(f"{name} must be a date and time (ISO 8601), got {value!r}")
            try:
                checked[name] = as_utc(value)
            except ValueError as exc:
                raise InputError(f"{name}: {exc}") from exc
        else:  # consent
            if not isinstance(value, bool):
                raise InputError(f"consent must be true or false, got {value!r}")
            checked[name] = value
    if checked.get("consent") is not None and "consent_at" not in checked:
        checked["consent_at"] = now or datetime.now(UTC)
    return checked


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def facts_document(interview_id: int, row: Mapping[str, Any] | None) -> dict[str, Any]:
    """An interview's facts as the API gives them: every fact (null when not recorded), times as ISO
    8601 in UTC, and ``updated_at`` (null when none was ever set)."""
    row = row or {}
    document: dict[str, Any] = {"interview_id": interview_id}
    for name in FACT_FIELDS:
        value = row.get(name)
        document[name] = _iso(value) if name in TIME_FIELDS else value
    document["updated_at"] = _iso(row.get("updated_at"))
    return document
