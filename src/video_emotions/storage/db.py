"""Database access (SQLAlchemy Core): SQLite in the embedded default, PostgreSQL in production."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, insert, select, update
from sqlalchemy.engine import make_url

from video_emotions.domain import Segment
from video_emotions.storage import schema


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SegmentWrite:
    """Everything written for one candidate segment."""

    result_id: int
    start_ms: float
    end_ms: float
    video_emotions: dict[str, dict[str, float]]
    summary: dict[str, Any]
    frames: list[dict[str, Any]]


@dataclass(frozen=True)
class JobRecord:
    id: str
    session_id: int
    interview_id: int
    model_type: str
    engine: str | None
    model_file: str | None
    model_sha256: str | None
    status: str
    error_kind: str | None
    error: str | None
    segments: int | None
    log_key: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


class Database:
    """The queries and writes of the service; one instance per process."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)

    def create_tables(self, *, interviewz: bool) -> None:
        """Create our own tables, and the Interviewz ones too when ``interviewz`` (embedded default)."""
        tables = list(schema.OWN_TABLES) + (list(schema.INTERVIEWZ_TABLES) if interviewz else [])
        schema.metadata.create_all(self.engine, tables=tables)

    def dispose(self) -> None:
        self.engine.dispose()

    # Interviewz data -------------------------------------------------------------------------

    def interview(self, interview_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(schema.interviews).where(schema.interviews.c.id == interview_id)
            ).first()
        return dict(row._mapping) if row else None

    def session_exists(self, session_id: int) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(schema.sessions.c.id).where(schema.sessions.c.id == session_id)
            ).first()
        return found is not None

    def candidate_segments(self, interview_id: int) -> list[Segment]:
        """The candidate's (speaker 0) segments, times converted from milliseconds to seconds."""
        r = schema.results.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(r.id, r.start, r.end)
                .where(r.interview_id == interview_id, r.speaker == 0)
                .order_by(r.start, r.id)
            ).all()
        return [
            Segment(id=row.id, start=(row.start or 0.0) / 1000.0, end=(row.end or 0.0) / 1000.0)
            for row in rows
        ]

    def results_rows(self, interview_id: int) -> list[dict[str, Any]]:
        r = schema.results.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(schema.results).where(r.interview_id == interview_id).order_by(r.start, r.id)
            ).all()
        return [dict(row._mapping) for row in rows]

    def ingest(
        self,
        *,
        session_id: int,
        interview_id: int,
        segments: Sequence[Segment],
        session_name: str | None = None,
    ) -> list[int]:
        """Create the session (if new), the interview and its ``results`` rows; return the row ids.

        Fails when the interview already exists, so that ingesting twice cannot mix two videos.
        """
        with self.engine.begin() as conn:
            if not conn.execute(
                select(schema.sessions.c.id).where(schema.sessions.c.id == session_id)
            ).first():
                conn.execute(insert(schema.sessions).values(id=session_id, name=session_name))
            conn.execute(insert(schema.interviews).values(id=interview_id, session_id=session_id))
            ids = []
            for part, segment in enumerate(segments):
                values: dict[str, Any] = {
                    "interview_id": interview_id,
                    "start": segment.start * 1000.0,
                    "end": segment.end * 1000.0,
                    "speaker": segment.speaker,
                    "part": part,
                    "text": "",
                }
                if segment.id > 0:
                    values["id"] = segment.id
                ids.append(conn.execute(insert(schema.results).values(**values)).inserted_primary_key[0])
        return ids

    # Results ---------------------------------------------------------------------------------

    def write_results(
        self,
        *,
        job_id: str,
        interview_id: int,
        engine: str,
        model_sha256: str | None,
        segments: Iterable[SegmentWrite],
    ) -> None:
        """Write every segment, set ``video_ok`` and close the job, all in one transaction."""
        now = utcnow()
        with self.engine.begin() as conn:
            for seg in segments:
                conn.execute(
                    update(schema.results)
                    .where(schema.results.c.id == seg.result_id)
                    .values(video_emotions=seg.video_emotions)
                )
                conn.execute(
                    delete(schema.segment_results).where(schema.segment_results.c.result_id == seg.result_id)
                )
                conn.execute(
                    insert(schema.segment_results).values(
                        result_id=seg.result_id,
                        interview_id=interview_id,
                        job_id=job_id,
                        engine=engine,
                        model_sha256=model_sha256,
                        start_ms=seg.start_ms,
                        end_ms=seg.end_ms,
                        summary=seg.summary,
                        frames=seg.frames,
                        written_at=now,
                    )
                )
            conn.execute(
                update(schema.interviews).where(schema.interviews.c.id == interview_id).values(video_ok=True)
            )
            conn.execute(
                update(schema.jobs).where(schema.jobs.c.id == job_id).values(status="done", finished_at=now)
            )

    def segment_results(self, interview_id: int) -> list[dict[str, Any]]:
        s = schema.segment_results.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(schema.segment_results)
                .where(s.interview_id == interview_id)
                .order_by(s.start_ms, s.result_id)
            ).all()
        return [dict(row._mapping) for row in rows]

    # Jobs ------------------------------------------------------------------------------------

    def create_job(self, *, session_id: int, interview_id: int, model_type: str) -> str:
        job_id = str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(
                insert(schema.jobs).values(
                    id=job_id,
                    session_id=session_id,
                    interview_id=interview_id,
                    model_type=model_type,
                    status="queued",
                    created_at=utcnow(),
                )
            )
        return job_id

    def update_job(self, job_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(**values))

    def job(self, job_id: str) -> JobRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.jobs).where(schema.jobs.c.id == job_id)).first()
        return JobRecord(**row._mapping) if row else None

    def jobs_for_interview(self, interview_id: int) -> list[JobRecord]:
        j = schema.jobs.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(schema.jobs).where(j.interview_id == interview_id).order_by(j.created_at)
            ).all()
        return [JobRecord(**row._mapping) for row in rows]
