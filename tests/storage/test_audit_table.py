"""The audit log on a real PostgreSQL server: its trigger refuses UPDATE, DELETE and TRUNCATE."""

from __future__ import annotations

from datetime import timedelta, timezone

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.storage.conftest import libpq_dsn
from video_emotions import audit
from video_emotions.storage.db import Database, is_transient


@pytest.mark.parametrize(
    "statement",
    ["UPDATE ve_audit SET actor = 'someone else'", "DELETE FROM ve_audit", "TRUNCATE ve_audit"],
)
def test_postgres_refuses_to_change_or_remove_a_row(pg_db: Database, statement: str) -> None:
    assert audit.record(pg_db, actor="ci", action="interview_erased", outcome=200, interview_id=9)
    with pytest.raises(DBAPIError, match="ve_audit is append-only") as refused, pg_db.engine.begin() as conn:
        conn.execute(text(statement))
    assert refused.value.orig.sqlstate == "42501" and not is_transient(refused.value)
    # Nor through a connection of its own, outside SQLAlchemy.
    url = pg_db.engine.url.render_as_string(hide_password=False)
    with psycopg.connect(libpq_dsn(url)) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)
    rows, total = pg_db.audit_entries()
    assert total == 1 and (rows[0]["actor"], rows[0]["interview_id"]) == ("ci", 9)


def test_postgres_keeps_rows_with_what_it_refuses_in_text_and_filters_by_utc(pg_db: Database) -> None:
    assert audit.record(
        pg_db,
        actor="ci",
        action="analysis_refused",
        outcome=422,
        model_type="bad\x00name" * 20,
        parameters={"note": "\x00\ud800", "interval": float("inf")},
    )
    [row], _ = pg_db.audit_entries()
    assert row["model_type"] == ("badname" * 20)[:64]
    assert row["parameters"] == {"note": "?", "interval": None}
    east = timezone(timedelta(hours=9))
    at = row["at"].astimezone(east)
    assert pg_db.audit_entries(since=at, until=at)[1] == 1
    assert pg_db.audit_entries(since=at + timedelta(microseconds=1))[1] == 0
    assert pg_db.audit_entries(since=at.replace(tzinfo=None))[1] == 0  # naive: UTC, 9 hours later
