"""``ve_interview_facts`` on the embedded SQLite and on PostgreSQL: set in part, read back, written with
the interview at ingest (all or nothing), a stale row of an earlier interview of the same id dropped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from video_emotions.domain import Segment
from video_emotions.errors import ConflictError
from video_emotions.facts import check_facts, facts_document
from video_emotions.storage.db import Database


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "postgresql":
        pg_database: Callable[..., str] = request.getfixturevalue("pg_database")
        database = Database(pg_database())
        database.upgrade()
    else:
        database = Database(f"sqlite:///{tmp_path / 've.db'}")
        database.create_tables(interviewz=True)
    yield database
    database.dispose()


def test_facts_are_set_in_part_and_read_back(db: Database) -> None:
    db.ingest(session_id=1, interview_id=1, segments=[Segment(0, 0.0, 1.0)])
    assert db.interview_facts(1) is None
    consent_at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    first = db.set_interview_facts(1, check_facts({"context": "hiring", "region": "EU"}))
    assert (first["context"], first["region"], first["consent"]) == ("hiring", "EU", None)
    db.set_interview_facts(1, check_facts({"consent": True, "consent_at": consent_at, "consent_by": "hr"}))
    row = db.interview_facts(1)
    assert row is not None and (row["context"], row["consent"], row["consent_by"]) == ("hiring", True, "hr")
    document = facts_document(1, row)
    assert document["consent_at"] == "2026-12-01T09:30:00+00:00"
    assert row["updated_at"] >= first["updated_at"]
    db.set_interview_facts(1, {"region": None})
    assert db.interview_facts(1)["region"] is None  # type: ignore[index]


def test_ingest_writes_the_facts_with_the_interview_or_nothing(db: Database) -> None:
    facts = check_facts({"context": "coaching", "consent": False, "notice": "shown"})
    db.ingest(session_id=1, interview_id=2, segments=[Segment(0, 0.0, 1.0)], facts=facts)
    row = db.interview_facts(2)
    assert row is not None and (row["context"], row["consent"], row["notice"]) == ("coaching", False, "shown")
    with pytest.raises(ConflictError):  # the interview exists: neither it nor its facts change
        db.ingest(session_id=1, interview_id=2, segments=[Segment(0, 0.0, 1.0)], facts={"context": "x"})
    assert db.interview_facts(2)["context"] == "coaching"  # type: ignore[index]


def test_a_facts_row_left_by_an_earlier_interview_of_that_id_goes_at_ingest(db: Database) -> None:
    db.set_interview_facts(3, check_facts({"context": "research", "consent": True}))  # no interview 3
    db.ingest(session_id=1, interview_id=3, segments=[Segment(0, 0.0, 1.0)])
    assert db.interview_facts(3) is None  # never the consent of another interview
