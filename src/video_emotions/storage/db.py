"""Database access (SQLAlchemy Core): SQLite in the embedded default, PostgreSQL in production."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from video_emotions.domain import Segment
from video_emotions.errors import ConflictError, ServiceUnavailableError, VideoEmotionsError
from video_emotions.storage import migrations, schema

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Attempts of one database write when it meets a transient fault.
DB_ATTEMPTS = 3
#: PostgreSQL error codes worth another try: serialization failure, deadlock, server shutting down
#: or restarting (``pg_terminate_backend`` too). Class 08 (connection exceptions) counts as well.
TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03"}


#: Seconds to wait for a PostgreSQL connection.
PG_CONNECT_TIMEOUT_S = 5


class TransientDatabaseError(ServiceUnavailableError):
    """A database write kept meeting transient faults until its attempts ran out."""


class SchemaError(VideoEmotionsError):
    """The database lacks tables the service needs, or ours are behind the code's migrations."""


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
    note: str | None
    status: str
    error_kind: str | None
    error: str | None
    segments: int | None
    log_key: str | None
    fingerprint: str | None
    caller_left_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    interval: float | None
    classifier: str | None
    callback_url: str | None
    active_key: str | None
    stages: dict[str, float] | None
    warnings: list[dict[str, Any]] | None

    @property
    def active(self) -> bool:
        return self.status in schema.ACTIVE_STATES


@dataclass(frozen=True)
class ChunkPlan:
    """One chunk of a job as planned: its segments and about how many samples they take."""

    segment_ids: list[int]
    samples_expected: int


@dataclass(frozen=True)
class AttemptStart:
    """A chunk's run begun: its attempt row, its number, and the errors of the earlier attempts."""

    id: str | None  # None: not begun, the earlier attempts used up the limit
    number: int
    earlier_errors: list[str]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def is_transient(exc: BaseException) -> bool:
    """Whether a database error may pass on a second try: a lost connection, a serialization
    failure or deadlock, a server restarting. Constraint violations, bad SQL etc. are permanent."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is None:
        # psycopg raises OperationalError without a code when it cannot reach or lost the server.
        return isinstance(exc.orig, psycopg.OperationalError)
    return sqlstate in TRANSIENT_SQLSTATES or sqlstate.startswith("08")


def retrying(operation: Callable[[], T], *, what: str, attempts: int = DB_ATTEMPTS, delay: float = 0.5) -> T:
    """Run ``operation`` (a whole transaction), again after a transient fault, with exponential
    backoff and jitter, at most ``attempts`` times. The operation must be safe to repeat: a
    connection lost during COMMIT leaves unknown whether the first attempt was written."""
    attempt = 1
    while True:
        try:
            return operation()
        except DBAPIError as exc:
            if not is_transient(exc):
                raise
            cause = str(exc.orig or exc).strip().splitlines()[0]
            if attempt >= attempts:
                raise TransientDatabaseError(
                    f"{what} failed after {attempts} attempts, the last with: {cause}"
                ) from exc
            pause = delay * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
            logger.warning(
                "%s: transient database fault (%s); attempt %d of %d, retrying in %.1f s",
                what,
                cause,
                attempt,
                attempts,
                pause,
            )
            time.sleep(pause)
            attempt += 1


def make_engine(url: str) -> Engine:
    """An engine for ``url``; ``postgresql://`` and ``postgres://`` get the psycopg 3 driver.

    Statement parameters stay out of error messages: they hold interview data and land in logs.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    # Pre-ping: a pooled connection that the server (or Supabase's pooler) closed is replaced
    # before use; recycle: connections older than 30 min are not kept to meet idle timeouts.
    # connect_timeout: an unreachable server fails a request in seconds, not the TCP timeout.
    return create_engine(
        parsed,
        pool_pre_ping=True,
        pool_recycle=1800,
        hide_parameters=True,
        connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S},
    )


def _skip_given_ids(conn: Connection, table: Table) -> None:
    """Move a PostgreSQL table's id sequence (serial or identity, if it has one) past its largest
    id, never back."""
    conn.execute(
        text(
            "SELECT setval(seq::regclass, GREATEST(COALESCE(pg_sequence_last_value(seq::regclass), 1),"
            f' (SELECT COALESCE(max(id), 1) FROM "{table.name}")))'
            " FROM pg_get_serial_sequence(:table, 'id') AS seq WHERE seq IS NOT NULL"
        ),
        {"table": table.name},
    )


class Database:
    """The queries and writes of the service; one instance per process."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)

    def create_tables(self, *, interviewz: bool) -> None:
        """Bring our own tables to the latest migration; create the Interviewz ones first when
        ``interviewz`` (only for the embedded SQLite default and tests: production has them)."""
        if interviewz:
            schema.metadata.create_all(self.engine, tables=list(schema.INTERVIEWZ_TABLES))
        self.upgrade()

    def upgrade(self) -> str:
        """Run our migrations (``ve_*`` tables only) up to the latest; returns that revision."""
        return migrations.upgrade(self.engine)

    def check_schema(self) -> None:
        """Fail with what to do when the Interviewz tables are missing or ours are not up to date."""
        url = self.engine.url.render_as_string(hide_password=True)
        inspector = inspect(self.engine)
        missing = [t.name for t in schema.INTERVIEWZ_TABLES if not inspector.has_table(t.name)]
        if missing:
            raise SchemaError(f"{url} lacks the Interviewz tables {missing}: is it the application's?")
        current, head = migrations.current_revision(self.engine), migrations.head_revision()
        if current != head:
            raise SchemaError(
                f"the service's tables in {url} are at revision {current or 'none'}, the code needs {head}: "
                "run `video-emotions db upgrade` with the same VE_DATABASE_URL first"
            )

    def dispose(self) -> None:
        self.engine.dispose()

    def ping(self) -> str | None:
        """None when the database answers, else why not (one line, no credentials)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError as exc:
            first = str(exc.orig or exc).strip().splitlines()
            return f"the database does not answer: {first[0] if first else type(exc).__name__}"
        return None

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

    def list_interviews(self, *, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Interviews newest first (highest id first), each with ``candidate_segments`` (its speaker 0
        rows in ``results``); with the total count of interviews."""
        i, r = schema.interviews.c, schema.results.c
        candidates = (
            select(func.count())
            .where(r.interview_id == i.id, r.speaker == 0)
            .scalar_subquery()
            .label("candidate_segments")
        )
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(schema.interviews)).scalar_one()
            rows = conn.execute(
                select(i.id, i.session_id, i.video_ok, candidates)
                .order_by(i.id.desc())
                .limit(limit)
                .offset(offset)
            ).all()
        return [dict(row._mapping) for row in rows], total

    def max_interview_id(self) -> int:
        """The highest interview id in use; 0 when there is none."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.coalesce(func.max(schema.interviews.c.id), 0))).scalar_one()

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

    def result_owners(self, result_ids: Sequence[int]) -> dict[int, int | None]:
        """Which of these ``results`` ids exist already, and the interview each belongs to."""
        if not result_ids:
            return {}
        r = schema.results.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(r.id, r.interview_id).where(r.id.in_(list(result_ids)))).all()
        return {row.id: row.interview_id for row in rows}

    def ingest(
        self,
        *,
        session_id: int,
        interview_id: int,
        segments: Sequence[Segment],
        session_name: str | None = None,
        facts: Mapping[str, Any] | None = None,
    ) -> list[int]:
        """Create the session (if new), the interview and its ``results`` rows; return the row ids.
        ``facts`` (checked by ``facts.check_facts``) go into ``ve_interview_facts`` in the same
        transaction; a facts row an earlier interview of this id left behind goes first.

        Fails when the interview already exists, so that ingesting twice cannot mix two videos.
        On PostgreSQL the tables' id sequences are moved past the ids given here, so that the
        application's own inserts that follow do not collide with them.
        """
        try:
            return self._ingest(session_id, interview_id, segments, session_name, facts)
        except IntegrityError as exc:  # a concurrent ingest took an id between the checks and here
            raise ConflictError(
                f"interview {interview_id} or one of its segment ids is already in use; nothing was written"
            ) from exc

    def _ingest(
        self,
        session_id: int,
        interview_id: int,
        segments: Sequence[Segment],
        session_name: str | None,
        facts: Mapping[str, Any] | None = None,
    ) -> list[int]:
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
            if conn.dialect.name == "postgresql":
                for table in schema.INTERVIEWZ_TABLES:
                    _skip_given_ids(conn, table)
            facts_table = schema.interview_facts
            conn.execute(delete(facts_table).where(facts_table.c.interview_id == interview_id))
            if facts:
                conn.execute(
                    insert(facts_table).values(interview_id=interview_id, updated_at=utcnow(), **facts)
                )
        return ids

    # Interview facts (ve_interview_facts) ------------------------------------------------------

    def interview_facts(self, interview_id: int) -> dict[str, Any] | None:
        """The interview's facts row (context, region, consent, ...); None when none was ever set."""
        f = schema.interview_facts.c
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.interview_facts).where(f.interview_id == interview_id)).first()
        return dict(row._mapping) if row else None

    def set_interview_facts(self, interview_id: int, values: Mapping[str, Any]) -> dict[str, Any]:
        """Set these facts of an interview (checked by ``facts.check_facts``; the others stay as they
        are, None clears one) and return its row; retried on transient faults (it is idempotent)."""
        f = schema.interview_facts.c

        def apply() -> dict[str, Any]:
            now = utcnow()
            with self.engine.begin() as conn:
                changed = conn.execute(
                    update(schema.interview_facts)
                    .where(f.interview_id == interview_id)
                    .values(**values, updated_at=now)
                )
                if changed.rowcount == 0:
                    conn.execute(
                        insert(schema.interview_facts).values(
                            interview_id=interview_id, updated_at=now, **values
                        )
                    )
                row = conn.execute(select(schema.interview_facts).where(f.interview_id == interview_id)).one()
            return dict(row._mapping)

        what = f"setting the facts of interview {interview_id}"
        try:
            return retrying(apply, what=what)
        except IntegrityError:  # another request set its first facts between our update and insert
            return retrying(apply, what=what)

    # Results ---------------------------------------------------------------------------------

    def write_results(
        self,
        *,
        job_id: str,
        interview_id: int,
        engine: str,
        model_file: str | None,
        model_sha256: str | None,
        segments: Iterable[SegmentWrite],
        stages: dict[str, float] | None = None,
        attempt_id: str | None = None,
        log_key: str | None = None,
        warnings: list[dict[str, Any]] | None = None,
    ) -> bool:
        """Write every segment, set ``video_ok`` and close the job, all in one transaction.

        The interview's row is locked first, so two runs for one interview write one after the
        other, never interleaved; then the job's, and nothing is written unless the job is still
        running (not cancelled, not written already by another worker): returns whether it wrote.
        The job's record is complete when it reads ``succeeded``: its ``stages`` (with ``write``,
        the transaction's time up to its commit), ``log_key`` and its attempt ``attempt_id``
        closed. Transient faults repeat the whole transaction (it is idempotent).
        """
        writes = list(segments)

        def write() -> bool:
            now = utcnow()
            clock = time.perf_counter()
            with self.engine.begin() as conn:
                # FOR NO KEY UPDATE: blocks other writers of this interview, not inserts of rows that
                # reference it. SQLite has no row locks: its single writer serializes transactions.
                conn.execute(
                    select(schema.interviews.c.id)
                    .where(schema.interviews.c.id == interview_id)
                    .with_for_update(key_share=True)
                )
                status = conn.execute(
                    select(schema.jobs.c.status).where(schema.jobs.c.id == job_id).with_for_update()
                ).scalar()
                if status != "running":
                    return False
                for seg in writes:
                    conn.execute(
                        update(schema.results)
                        .where(schema.results.c.id == seg.result_id)
                        .values(video_emotions=seg.video_emotions)
                    )
                    conn.execute(
                        delete(schema.segment_results).where(
                            schema.segment_results.c.result_id == seg.result_id
                        )
                    )
                    conn.execute(
                        insert(schema.segment_results).values(
                            result_id=seg.result_id,
                            interview_id=interview_id,
                            job_id=job_id,
                            engine=engine,
                            model_file=model_file,
                            model_sha256=model_sha256,
                            start_ms=seg.start_ms,
                            end_ms=seg.end_ms,
                            summary=seg.summary,
                            frames=seg.frames,
                            written_at=now,
                        )
                    )
                conn.execute(
                    update(schema.interviews)
                    .where(schema.interviews.c.id == interview_id)
                    .values(video_ok=True)
                )
                if attempt_id is not None:
                    conn.execute(
                        update(schema.job_attempts)
                        .where(schema.job_attempts.c.id == attempt_id)
                        .values(outcome="succeeded", finished_at=utcnow())
                    )
                conn.execute(
                    update(schema.jobs)
                    .where(schema.jobs.c.id == job_id)
                    .values(
                        status="succeeded",
                        finished_at=utcnow(),
                        active_key=None,
                        segments=len(writes),
                        stages={**(stages or {}), "write": round(time.perf_counter() - clock, 3)},
                        log_key=log_key,
                        warnings=warnings or None,
                    )
                )
                return True

        return retrying(write, what=f"writing the results of interview {interview_id}")

    def segment_results(self, interview_id: int) -> list[dict[str, Any]]:
        s = schema.segment_results.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(schema.segment_results)
                .where(s.interview_id == interview_id)
                .order_by(s.start_ms, s.result_id)
            ).all()
        return [dict(row._mapping) for row in rows]

    # The audit log (append-only: rows are added and read, never updated or deleted) ---------

    def append_audit(self, values: dict[str, Any]) -> int:
        """Add one row to ``ve_audit`` (``audit.record`` builds it); its id. Retried on transient
        faults: a connection lost during COMMIT may leave the row in twice."""

        def apply() -> int:
            with self.engine.begin() as conn:
                return conn.execute(insert(schema.audit_log).values(**values)).inserted_primary_key[0]

        return retrying(apply, what=f"recording {values.get('action')} in the audit log")

    def audit_entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        interview_id: int | None = None,
        after_id: int = 0,
        limit: int | None = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Audit rows oldest first (in the order written: by id), ``at`` from ``since`` up to and
        including ``until`` (aware times; naive ones are UTC), with ids above ``after_id``; with the
        count of all the filter's matches. ``limit`` None: all of them."""
        a = schema.audit_log.c
        where = [a.id > after_id] if after_id else []
        for bound, compare in ((since, a.at.__ge__), (until, a.at.__le__)):
            if bound is not None:
                utc = bound.replace(tzinfo=UTC) if bound.tzinfo is None else bound.astimezone(UTC)
                # SQLite keeps times as text without their offset: compare in UTC, as they are written.
                sqlite = self.engine.dialect.name == "sqlite"
                where.append(compare(utc.replace(tzinfo=None) if sqlite else utc))
        if actor is not None:
            where.append(a.actor == actor)
        if action is not None:
            where.append(a.action == action)
        if interview_id is not None:
            where.append(a.interview_id == interview_id)
        with self.engine.connect() as conn:
            count = select(func.count()).select_from(schema.audit_log).where(*where)
            total = conn.execute(count).scalar_one()
            rows = conn.execute(
                select(schema.audit_log).where(*where).order_by(a.id).limit(limit).offset(offset)
            ).all()
        return [dict(row._mapping) for row in rows], total

    # Jobs ------------------------------------------------------------------------------------

    def create_job(
        self,
        *,
        session_id: int,
        interview_id: int,
        model_type: str,
        active_key: str,
        chunks: Sequence[ChunkPlan],
        interval: float | None = None,
        classifier: str | None = None,
        callback_url: str | None = None,
        fingerprint: str | None = None,
    ) -> tuple[str, bool]:
        """Queue a job with its chunks, or find the active one with the same ``active_key``.

        Returns the job id and whether it is new. The unique ``active_key`` makes two equal
        requests meet in one job, even when two processes take them at the same moment.
        """
        for _ in range(DB_ATTEMPTS):
            job_id = str(uuid.uuid4())
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(schema.jobs).values(
                            id=job_id,
                            session_id=session_id,
                            interview_id=interview_id,
                            model_type=model_type,
                            status="queued",
                            created_at=utcnow(),
                            interval=interval,
                            classifier=classifier,
                            callback_url=callback_url,
                            fingerprint=fingerprint,
                            active_key=active_key,
                        )
                    )
                    for number, chunk in enumerate(chunks):
                        conn.execute(
                            insert(schema.job_chunks).values(
                                job_id=job_id,
                                chunk=number,
                                segment_ids=chunk.segment_ids,
                                state="pending",
                                samples_done=0,
                                samples_expected=chunk.samples_expected,
                                segments_done=0,
                                segments_total=len(chunk.segment_ids),
                            )
                        )
                return job_id, True
            except IntegrityError:
                with self.engine.connect() as conn:
                    existing = conn.execute(
                        select(schema.jobs.c.id).where(schema.jobs.c.active_key == active_key)
                    ).scalar()
                if existing is not None:
                    return existing, False
                # The equal job ended between our insert and our look: try again.
        raise TransientDatabaseError(f"could not queue a job for interview {interview_id}")

    def record_refused_job(
        self, *, session_id: int, interview_id: int, model_type: str, error_kind: str, error: str
    ) -> str:
        """A job that failed before it could be queued (its request was refused): no chunks."""
        job_id = str(uuid.uuid4())
        now = utcnow()

        def apply() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(schema.jobs).values(
                        id=job_id,
                        session_id=session_id,
                        interview_id=interview_id,
                        model_type=model_type,
                        status="failed",
                        error_kind=error_kind,
                        error=error,
                        created_at=now,
                        finished_at=now,
                    )
                )

        retrying(apply, what=f"recording a refused request for interview {interview_id}")
        return job_id

    def update_job(self, job_id: str, **values: Any) -> None:
        """Set fields of a job record; retried on transient faults (setting them twice is harmless)."""

        def apply() -> None:
            with self.engine.begin() as conn:
                conn.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(**values))

        retrying(apply, what=f"updating job {job_id}")

    def end_job(
        self, job_id: str, status: str, *, error_kind: str | None = None, error: str | None = None
    ) -> bool:
        """Move an active job to a final state; False when it had ended already (it stays as it was)."""
        assert status in schema.JOB_STATES and status not in schema.ACTIVE_STATES

        def apply() -> bool:
            with self.engine.begin() as conn:
                done = conn.execute(
                    update(schema.jobs)
                    .where(schema.jobs.c.id == job_id, schema.jobs.c.status.in_(schema.ACTIVE_STATES))
                    .values(
                        status=status,
                        error_kind=error_kind,
                        error=error,
                        finished_at=utcnow(),
                        active_key=None,
                    )
                )
                return done.rowcount > 0

        return retrying(apply, what=f"ending job {job_id}")

    def job_status(self, job_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(schema.jobs.c.status).where(schema.jobs.c.id == job_id)).scalar()

    def start_attempt(self, job_id: str, chunk: int, worker: str, *, max_attempts: int) -> AttemptStart:
        """Record that ``worker`` begins ``chunk``: an earlier attempt of it still marked running
        was lost (its worker died), and the job is running from now on if it was queued. With
        ``max_attempts`` made already, nothing begins."""

        def apply() -> AttemptStart:
            a = schema.job_attempts.c
            now = utcnow()
            with self.engine.begin() as conn:
                conn.execute(
                    update(schema.job_attempts)
                    .where(a.job_id == job_id, a.chunk == chunk, a.outcome == "running")
                    .values(
                        outcome="lost",
                        error_kind="lost",
                        error="the worker stopped before the chunk was done (killed, or its machine lost)",
                        finished_at=now,
                    )
                )
                earlier = conn.execute(
                    select(a.number, a.worker, a.outcome, a.error)
                    .where(a.job_id == job_id, a.chunk == chunk)
                    .order_by(a.number)
                ).all()
                errors = [
                    f"attempt {row.number} on {row.worker}: {row.outcome}: {row.error}"
                    for row in earlier
                    if row.outcome in ("failed", "lost")
                ]
                number = len(earlier) + 1
                if len(earlier) >= max_attempts:
                    return AttemptStart(None, number, errors)
                attempt_id = str(uuid.uuid4())
                conn.execute(
                    insert(schema.job_attempts).values(
                        id=attempt_id,
                        job_id=job_id,
                        chunk=chunk,
                        number=number,
                        worker=worker,
                        outcome="running",
                        started_at=now,
                    )
                )
                conn.execute(
                    update(schema.jobs)
                    .where(schema.jobs.c.id == job_id, schema.jobs.c.status == "queued")
                    .values(status="running", started_at=now)
                )
            return AttemptStart(attempt_id, number, errors)

        return retrying(apply, what=f"starting a run of job {job_id}")

    def end_attempt(
        self, attempt_id: str, outcome: str, *, error_kind: str | None = None, error: str | None = None
    ) -> None:
        def apply() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    update(schema.job_attempts)
                    .where(schema.job_attempts.c.id == attempt_id)
                    .values(outcome=outcome, error_kind=error_kind, error=error, finished_at=utcnow())
                )

        retrying(apply, what=f"ending attempt {attempt_id}")

    def attempts(self, job_id: str) -> list[dict[str, Any]]:
        a = schema.job_attempts.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(schema.job_attempts).where(a.job_id == job_id).order_by(a.started_at, a.chunk)
            ).all()
        return [dict(row._mapping) for row in rows]

    def chunks(self, job_id: str) -> list[dict[str, Any]]:
        c = schema.job_chunks.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(schema.job_chunks).where(c.job_id == job_id).order_by(c.chunk)).all()
        return [dict(row._mapping) for row in rows]

    def chunk_progress(
        self, job_id: str, chunk: int, *, samples_done: int, samples_expected: int, segments_done: int
    ) -> str | None:
        """Record a chunk's progress; returns the job's state (a running chunk stops when it is
        ``cancelled``)."""
        c = schema.job_chunks.c
        with self.engine.begin() as conn:
            conn.execute(
                update(schema.job_chunks)
                .where(c.job_id == job_id, c.chunk == chunk, c.state == "pending")
                .values(
                    samples_done=samples_done,
                    samples_expected=samples_expected,
                    segments_done=segments_done,
                )
            )
            return conn.execute(select(schema.jobs.c.status).where(schema.jobs.c.id == job_id)).scalar()

    def store_chunk(
        self,
        job_id: str,
        chunk: int,
        *,
        result: list[dict[str, Any]],
        log: str,
        stages: dict[str, float],
        warnings: list[dict[str, Any]] | None = None,
    ) -> int:
        """Keep a chunk's results until every chunk is in (the first to finish a chunk wins; a
        redelivered run of it changes nothing); returns how many chunks are still pending."""
        c = schema.job_chunks.c

        def apply() -> int:
            with self.engine.begin() as conn:
                conn.execute(
                    update(schema.job_chunks)
                    .where(c.job_id == job_id, c.chunk == chunk, c.state == "pending")
                    .values(
                        state="done",
                        result=result,
                        log=log,
                        stages=stages,
                        warnings=warnings or None,
                        finished_at=utcnow(),
                        samples_done=sum(len(write["frames"]) for write in result),
                        samples_expected=sum(len(write["frames"]) for write in result),
                        segments_done=len(result),
                    )
                )
                return conn.execute(
                    select(func.count()).where(c.job_id == job_id, c.state == "pending")
                ).scalar_one()

        return retrying(apply, what=f"keeping chunk {chunk} of job {job_id}")

    def record_delivery(
        self, job_id: str, *, webhook_id: str, attempt: int, status_code: int | None, error: str | None
    ) -> None:
        def apply() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(schema.webhook_deliveries).values(
                        id=str(uuid.uuid4()),
                        job_id=job_id,
                        webhook_id=webhook_id,
                        attempt=attempt,
                        at=utcnow(),
                        status_code=status_code,
                        error=error,
                    )
                )

        retrying(apply, what=f"recording a webhook delivery of job {job_id}")

    def deliveries(self, job_id: str) -> list[dict[str, Any]]:
        d = schema.webhook_deliveries.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(d.webhook_id, d.attempt, d.at, d.status_code, d.error)
                .where(d.job_id == job_id)
                .order_by(d.at, d.attempt)
            ).all()
        return [dict(row._mapping) for row in rows]

    def list_jobs(
        self, *, interview_id: int | None = None, state: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[JobRecord], int]:
        """Jobs newest first, filtered; with the total count of the filter's matches."""
        j = schema.jobs.c
        where = []
        if interview_id is not None:
            where.append(j.interview_id == interview_id)
        if state is not None:
            where.append(j.status == state)
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(schema.jobs).where(*where)).scalar_one()
            rows = conn.execute(
                select(schema.jobs)
                .where(*where)
                .order_by(j.created_at.desc(), j.id)
                .limit(limit)
                .offset(offset)
            ).all()
        return [JobRecord(**row._mapping) for row in rows], total

    def job_counts(self) -> dict[str, int]:
        """How many jobs there are in each state (only the states that have any)."""
        j = schema.jobs.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(j.status, func.count()).group_by(j.status)).all()
        return {status: count for status, count in rows}

    def unfinished_jobs(self) -> list[str]:
        """Jobs left queued or running (by a crash, or a stop), oldest first."""
        j = schema.jobs.c
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(j.id).where(j.status.in_(schema.ACTIVE_STATES)).order_by(j.created_at)
                ).scalars()
            )

    def job(self, job_id: str) -> JobRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.jobs).where(schema.jobs.c.id == job_id)).first()
        return JobRecord(**row._mapping) if row else None

    def finished_job(self, interview_id: int, fingerprint: str) -> str | None:
        """The newest finished job of the interview with this fingerprint, if its results still stand."""
        j = schema.jobs.c
        with self.engine.connect() as conn:
            newest = conn.execute(
                select(j.id, j.fingerprint)
                .where(j.interview_id == interview_id, j.status == "succeeded")
                .order_by(j.finished_at.desc())
                .limit(1)
            ).first()
            video_ok = conn.execute(
                select(schema.interviews.c.video_ok).where(schema.interviews.c.id == interview_id)
            ).scalar()
        if newest is None or newest.fingerprint != fingerprint or not video_ok:
            return None
        return newest.id

    def newest_job_ids(self, interview_ids: Sequence[int]) -> dict[int, str]:
        """Each of these interviews' newest job (by creation; ties by id, as :meth:`list_jobs` orders),
        for those that have any."""
        if not interview_ids:
            return {}
        j = schema.jobs.c
        rank = func.row_number().over(partition_by=j.interview_id, order_by=(j.created_at.desc(), j.id))
        ranked = (
            select(j.interview_id, j.id, rank.label("rank"))
            .where(j.interview_id.in_(list(interview_ids)))
            .subquery()
        )
        with self.engine.connect() as conn:
            rows = conn.execute(select(ranked.c.interview_id, ranked.c.id).where(ranked.c.rank == 1)).all()
        return {row.interview_id: row.id for row in rows}

    def jobs_for_interview(self, interview_id: int) -> list[JobRecord]:
        j = schema.jobs.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(schema.jobs).where(j.interview_id == interview_id).order_by(j.created_at)
            ).all()
        return [JobRecord(**row._mapping) for row in rows]
