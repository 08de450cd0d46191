"""The database layer, the same tests on the embedded SQLite and on a real PostgreSQL server."""

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError

from tests.storage.conftest import libpq_dsn
from video_emotions.config import Settings
from video_emotions.context import ServiceContext
from video_emotions.domain import Segment
from video_emotions.errors import ConflictError
from video_emotions.storage import migrations, schema
from video_emotions.storage.db import (
    ChunkPlan,
    Database,
    SchemaError,
    SegmentWrite,
    TransientDatabaseError,
    retrying,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The embedded SQLite database as the service makes it, or PostgreSQL (``pg_db``)."""
    if request.param == "postgresql":
        yield request.getfixturevalue("pg_db")
        return
    database = Database(f"sqlite:///{tmp_path / 'nested' / 've.db'}")
    database.create_tables(interviewz=True)
    yield database
    database.dispose()


SEGMENTS = [
    Segment(0, 5.0, 7.5, speaker=0),
    Segment(0, 1.0, 2.0, speaker=1),
    Segment(0, 0.5, 3.0, speaker=0),
]


def test_interviewz_tables_have_the_contract_columns(db: Database) -> None:
    columns = {
        t: {c["name"] for c in inspect(db.engine).get_columns(t)}
        for t in ("sessions", "interviews", "results")
    }
    assert columns["sessions"] == {"id", "name", "user_id"}
    assert {
        "id",
        "session_id",
        "video_ok",
        "first_name",
        "last_name",
        "email",
        "raw_file_ok",
        "diarization_ok",
        "audio_ok",
        "text_ok",
        "speaker_validation_ok",
        "inference_ok",
    } <= columns["interviews"]
    assert columns["results"] == {
        "id",
        "interview_id",
        "start",
        "end",
        "speaker",
        "part",
        "text",
        "user_id",
        "audio_emotions",
        "text_emotions",
        "video_emotions",
    }


def test_candidate_segments_are_speaker_0_in_time_order_in_seconds(db: Database) -> None:
    ids = db.ingest(session_id=3, interview_id=9, segments=SEGMENTS)
    assert len(ids) == 3
    segments = db.candidate_segments(9)
    assert [(s.start, s.end) for s in segments] == [(0.5, 3.0), (5.0, 7.5)]
    assert [s.id for s in segments] == [ids[2], ids[0]]
    rows = db.results_rows(9)
    assert {row["start"] for row in rows} == {500.0, 1000.0, 5000.0}
    assert all(row["video_emotions"] is None for row in rows)
    assert db.interview(9)["video_ok"] is False
    assert db.session_exists(3) and not db.session_exists(4)


def test_ingesting_an_existing_interview_fails_and_adds_nothing(db: Database) -> None:
    db.ingest(session_id=3, interview_id=9, segments=SEGMENTS)
    with pytest.raises(ConflictError, match="interview 9 or one of its segment ids is already in use"):
        db.ingest(session_id=3, interview_id=9, segments=SEGMENTS)
    assert len(db.results_rows(9)) == 3


def test_ids_given_at_ingest_do_not_collide_with_the_applications_next_rows(db: Database) -> None:
    db.ingest(session_id=1, interview_id=1, segments=[Segment(1, 0.0, 1.0), Segment(2, 1.0, 2.0)])
    with db.engine.begin() as conn:  # the application inserts without ids
        interview = conn.execute(insert(schema.interviews).values(session_id=1)).inserted_primary_key[0]
        row = conn.execute(insert(schema.results).values(interview_id=interview, part=0, text=""))
    assert interview > 1 and row.inserted_primary_key[0] > 2


def _write(result_id: int, emotions: object) -> SegmentWrite:
    return SegmentWrite(result_id, 0.0, 1000.0, emotions, {"frames_with_face": 1}, [])  # type: ignore[arg-type]


def _running_job(db: Database, interview_id: int = 9) -> str:
    job, created = db.create_job(
        session_id=3,
        interview_id=interview_id,
        model_type="default",
        active_key=f"{interview_id}/default/1",
        chunks=[ChunkPlan([1], 2)],
    )
    assert created
    db.update_job(job, status="running")
    return job


def test_write_results_is_all_or_nothing(db: Database) -> None:
    first, _, second = db.ingest(session_id=3, interview_id=9, segments=SEGMENTS)
    job = _running_job(db)
    good = {"frame_00000_0.000_seconds": {"happy": 100.0}}
    with pytest.raises((StatementError, TypeError), match="not JSON serializable"):
        db.write_results(
            job_id=job,
            interview_id=9,
            engine="default",
            model_file="m.onnx",
            model_sha256="x",
            segments=[_write(first, good), _write(second, {"not json": {1, 2}})],
        )
    assert all(row["video_emotions"] is None for row in db.results_rows(9))
    assert db.interview(9)["video_ok"] is False
    assert db.segment_results(9) == []
    assert db.job(job).status == "running"

    db.write_results(
        job_id=job,
        interview_id=9,
        engine="default",
        model_file="m.onnx",
        model_sha256="x",
        segments=[_write(first, good), _write(second, good)],
    )
    written = {row["id"]: row["video_emotions"] for row in db.results_rows(9)}
    assert written[first] == good and written[second] == good
    assert db.interview(9)["video_ok"] is True
    assert db.job(job).status == "succeeded" and db.job(job).active_key is None
    assert [row["result_id"] for row in db.segment_results(9)] == [first, second]
    assert {(row["engine"], row["model_file"]) for row in db.segment_results(9)} == {("default", "m.onnx")}


def test_a_cancelled_job_writes_nothing_and_equal_active_jobs_are_one(db: Database) -> None:
    first, *_ = db.ingest(session_id=3, interview_id=9, segments=SEGMENTS)
    job = _running_job(db)
    again, created = db.create_job(
        session_id=3, interview_id=9, model_type="fer", active_key="9/default/1", chunks=[ChunkPlan([1], 2)]
    )
    assert (again, created) == (job, False)
    assert db.end_job(job, "cancelled", error_kind="cancelled", error="cancelled on request")
    assert not db.end_job(job, "failed")  # it had ended: it stays cancelled
    wrote = db.write_results(
        job_id=job,
        interview_id=9,
        engine="default",
        model_file="m.onnx",
        model_sha256="x",
        segments=[_write(first, {"frame_00000_0.000_seconds": {"happy": 100.0}})],
    )
    assert wrote is False
    assert db.results_rows(9)[0]["video_emotions"] is None and db.interview(9)["video_ok"] is False
    assert db.job(job).status == "cancelled"
    # Once it has ended, an equal request gets a new job.
    _, created = db.create_job(
        session_id=3,
        interview_id=9,
        model_type="default",
        active_key="9/default/1",
        chunks=[ChunkPlan([1], 2)],
    )
    assert created


def test_migrations_give_exactly_the_tables_of_schema_py_and_run_twice(db: Database) -> None:
    assert db.upgrade() == migrations.head_revision()
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": migrations.include_name})
        assert compare_metadata(context, migrations.own_metadata()) == []
    assert migrations.current_revision(db.engine) == migrations.head_revision()


def _table_names(url: str) -> set[str]:
    with psycopg.connect(libpq_dsn(url)) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}


def test_db_upgrade_on_postgres_creates_our_tables_only_and_is_safe_twice(
    pg_database: Callable[..., str], tmp_path: Path
) -> None:
    url = pg_database(interviewz=False)
    env = {"VE_DATABASE_URL": url, "VE_DATA_DIR": str(tmp_path), "PATH": ""}
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "video_emotions", "db", "upgrade"], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert f"our tables at revision {migrations.head_revision()}" in " ".join(done.stderr.split())
    assert _table_names(url) == {t.name for t in schema.OWN_TABLES} | {"ve_alembic_version"}


def test_service_refuses_a_postgres_database_until_db_upgrade(
    pg_database: Callable[..., str], tmp_path: Path
) -> None:
    bare = pg_database(interviewz=False)
    with pytest.raises(
        SchemaError, match=r"lacks the Interviewz tables \['sessions', 'interviews', 'results'\]"
    ):
        ServiceContext.from_settings(Settings(data_dir=tmp_path, database_url=bare))
    url = pg_database()
    before = _table_names(url)
    with pytest.raises(SchemaError, match=r"at revision none.*run `video-emotions db upgrade`"):
        ServiceContext.from_settings(Settings(data_dir=tmp_path, database_url=url))
    assert _table_names(url) == before == {"sessions", "interviews", "results"}
    Database(url).upgrade()
    ctx = ServiceContext.from_settings(Settings(data_dir=tmp_path, database_url=url))
    assert ctx.db.candidate_segments(1) == []
    ctx.db.dispose()


def test_interviewz_ddl_follows_the_contract(pg_database: Callable[..., str]) -> None:
    with psycopg.connect(libpq_dsn(pg_database())) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_schema = 'public'"
        ).fetchall()
    columns = {(table, column): (kind, nullable, default) for table, column, kind, nullable, default in rows}
    assert columns["results", "video_emotions"] == ("jsonb", "YES", None)
    assert columns["results", "start"][0] == columns["results", "end"][0] == "double precision"
    assert columns["results", "part"][:2] == ("smallint", "NO")
    assert columns["results", "text"][:2] == ("character varying", "NO")
    assert columns["interviews", "video_ok"] == ("boolean", "YES", "false")
    assert {columns[t, "id"][0] for t in ("sessions", "interviews", "results")} == {"bigint"}


def test_a_second_writer_of_an_interview_waits_for_the_first(pg_db: Database) -> None:
    """While another transaction writes interview 9 (here: holds its row), a run's write waits,
    so two runs never interleave; it then writes everything. (SQLite has one writer at a time.)"""
    db = pg_db
    first, _, second = db.ingest(session_id=3, interview_id=9, segments=SEGMENTS)
    job = _running_job(db)
    good = {"frame_00000_0.000_seconds": {"happy": 100.0}}
    writer = threading.Thread(
        target=db.write_results,
        kwargs={
            "job_id": job,
            "interview_id": 9,
            "engine": "default",
            "model_file": "m.onnx",
            "model_sha256": "x",
            "segments": [_write(first, good), _write(second, good)],
        },
    )
    with psycopg.connect(libpq_dsn(db.engine.url.render_as_string(hide_password=False))) as other:
        other.execute("SELECT id FROM interviews WHERE id = 9 FOR UPDATE")
        writer.start()
        time.sleep(0.5)
        assert writer.is_alive()
        assert all(row["video_emotions"] is None for row in db.results_rows(9))
    writer.join(timeout=10)
    assert not writer.is_alive()
    assert [row["result_id"] for row in db.segment_results(9)] == [first, second]
    assert {(row["engine"], row["model_file"]) for row in db.segment_results(9)} == {("default", "m.onnx")}
    assert db.job(job).status == "succeeded"


def test_plain_postgresql_urls_get_the_psycopg_3_driver() -> None:
    for url in ("postgresql://u@db.example.com/app?sslmode=require", "postgres://u@db.example.com/app"):
        engine = Database(url).engine
        assert engine.dialect.driver == "psycopg" and engine.url.query == (
            {"sslmode": "require"} if "sslmode" in url else {}
        )


def _fault(exc_class: type[Exception]) -> OperationalError:
    return OperationalError("UPDATE results ...", {}, exc_class("simulated"))


def test_transient_database_faults_are_retried_a_bounded_number_of_times() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _fault(psycopg.errors.SerializationFailure)
        return "written"

    assert retrying(flaky, what="writing", attempts=3, delay=0.01) == "written"
    assert len(calls) == 3

    calls.clear()

    def deadlocked() -> None:
        calls.append(1)
        raise _fault(psycopg.errors.DeadlockDetected)

    with pytest.raises(
        TransientDatabaseError, match="writing failed after 3 attempts, the last with: simulated"
    ):
        retrying(deadlocked, what="writing", attempts=3, delay=0.01)
    assert len(calls) == 3


def test_permanent_database_faults_fail_at_once() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise IntegrityError("INSERT ...", {}, psycopg.errors.UniqueViolation("duplicate key"))

    with pytest.raises(IntegrityError, match="duplicate key"):
        retrying(broken, what="writing", attempts=3, delay=0.01)
    assert len(calls) == 1
