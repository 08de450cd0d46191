"""Table definitions: the Interviewz tables exactly as the contract has them, and our own.

The Interviewz tables (``sessions``, ``interviews``, ``results``) belong to the application:
in the embedded default we create them when missing so the service runs alone; against a
production database they already exist and we only read them and write the columns we own
(``results.video_emotions``, ``interviews.video_ok``). Our own tables carry the ``ve_`` prefix.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

#: bigint primary keys that still autoincrement on SQLite (which only does so for INTEGER).
BigId = BigInteger().with_variant(Integer(), "sqlite")
#: jsonb on PostgreSQL, JSON text elsewhere.
Json = JSON().with_variant(JSONB(), "postgresql")

sessions = Table(
    "sessions",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("name", Text),
    Column("user_id", Uuid),
)

interviews = Table(
    "interviews",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("session_id", BigId, ForeignKey("sessions.id")),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("email", Text),
    Column("raw_file_ok", Boolean, server_default=false()),
    Column("diarization_ok", Boolean, server_default=false()),
    Column("audio_ok", Boolean, server_default=false()),
    Column("text_ok", Boolean, server_default=false()),
    Column("video_ok", Boolean, server_default=false()),
    Column("speaker_validation_ok", Boolean, server_default=false()),
    Column("inference_ok", Boolean, server_default=false()),
)

results = Table(
    "results",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("interview_id", BigId, ForeignKey("interviews.id")),
    Column("start", Float(precision=53)),
    Column("end", Float(precision=53)),
    Column("speaker", SmallInteger),
    Column("part", SmallInteger, nullable=False),
    Column("text", String, nullable=False),
    Column("user_id", Uuid),
    Column("audio_emotions", Json),
    Column("text_emotions", Json),
    Column("video_emotions", Json),
)

INTERVIEWZ_TABLES = (sessions, interviews, results)

#: The states of a job; ``queued`` and ``running`` are active, the others final.
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")

jobs = Table(
    "ve_jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("session_id", BigInteger, nullable=False),
    Column("interview_id", BigInteger, nullable=False, index=True),
    Column("model_type", String(64), nullable=False),
    Column("engine", String(64)),
    Column("model_file", Text),
    Column("model_sha256", String(64)),
    Column("note", Text),  # why the engine that ran is not the one the request named
    Column("status", String(16), nullable=False),  # one of JOB_STATES
    Column("error_kind", String(32)),
    Column("error", Text),
    Column("segments", Integer),
    Column("log_key", Text),
    Column("fingerprint", String(64)),
    Column("caller_left_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("interval", Float(precision=53)),
    Column("classifier", String(128)),
    Column("callback_url", Text),
    # Set while the job is queued or running, cleared when it ends: two equal requests cannot
    # both create an active job, whichever process takes them.
    Column("active_key", String(200)),
    Column("stages", Json),  # seconds per stage: download, analyse (decode and inference), write
    Column("warnings", Json),  # what the run could not cover (a recording cut short), and why
    UniqueConstraint("active_key", name="uq_ve_jobs_active_key"),
)

#: A job's work in chunks of whole segments; one chunk unless Celery fans a long interview out.
job_chunks = Table(
    "ve_job_chunks",
    metadata,
    Column("job_id", String(36), primary_key=True),
    Column("chunk", Integer, primary_key=True, autoincrement=False),
    Column("segment_ids", Json, nullable=False),
    Column("state", String(16), nullable=False),  # pending | done
    Column("samples_done", Integer, nullable=False),
    Column("samples_expected", Integer, nullable=False),
    Column("segments_done", Integer, nullable=False),
    Column("segments_total", Integer, nullable=False),
    Column("result", Json),  # the chunk's segment writes, kept until every chunk is in
    Column("log", Text),
    Column("stages", Json),
    Column("warnings", Json),
    Column("finished_at", DateTime(timezone=True)),
)

#: Every run of a chunk: which worker, how it ended. Append-only but for the attempt's own end.
job_attempts = Table(
    "ve_job_attempts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("job_id", String(36), nullable=False, index=True),
    Column("chunk", Integer, nullable=False),
    Column("number", Integer, nullable=False),
    Column("worker", String(200), nullable=False),
    Column("outcome", String(16), nullable=False),  # running | succeeded | failed | lost | cancelled
    Column("error_kind", String(32)),
    Column("error", Text),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)

#: Every POST of a job's record to its callback_url.
webhook_deliveries = Table(
    "ve_webhook_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("job_id", String(36), nullable=False, index=True),
    Column("webhook_id", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
)

segment_results = Table(
    "ve_segment_results",
    metadata,
    Column("result_id", BigInteger, primary_key=True, autoincrement=False),  # = results.id
    Column("interview_id", BigInteger, nullable=False, index=True),
    Column("job_id", String(36), nullable=False),
    Column("engine", String(64), nullable=False),
    Column("model_file", Text),
    Column("model_sha256", String(64)),
    Column("start_ms", Float(precision=53), nullable=False),
    Column("end_ms", Float(precision=53), nullable=False),
    Column("summary", Json, nullable=False),
    Column("frames", Json, nullable=False),
    Column("written_at", DateTime(timezone=True), nullable=False),
)

#: What is known of an interview beyond its video (``facts.py``): the context and region the policy
#: gate reads, the recording's purpose, who recorded it and when, the notice shown, the consent.
interview_facts = Table(
    "ve_interview_facts",
    metadata,
    Column("interview_id", BigInteger, primary_key=True, autoincrement=False),  # = interviews.id
    Column("context", String(64)),
    Column("region", String(64)),
    Column("purpose", Text),
    Column("recorded_by", Text),
    Column("recorded_at", DateTime(timezone=True)),
    Column("notice", Text),  # the notice text the candidate was shown
    Column("consent", Boolean),  # null: none recorded; false: refused or withdrawn
    Column("consent_at", DateTime(timezone=True)),
    Column("consent_by", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: The audit log (``audit.py``): who (API key id, ``open``, ``cli:<user>``) did what, when, with which
#: model and parameters, and how it ended. Append-only: no update or delete in the code, and a trigger
#: (migration 0006) refuses them. It names ids, never personal data: an erasure keeps its rows.
audit_log = Table(
    "ve_audit",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("actor", String(200), nullable=False, index=True),
    Column("action", String(32), nullable=False, index=True),
    Column("interview_id", BigInteger, index=True),
    Column("job_id", String(36)),
    Column("model_type", String(64)),
    Column("engine", String(64)),
    Column("parameters", Json, nullable=False),  # interval, force, format, ...
    Column("outcome", String(32), nullable=False),  # the HTTP status, or the command's result
    Column("client", String(64)),  # the caller's address
)

OWN_TABLES = (
    jobs,
    segment_results,
    job_chunks,
    job_attempts,
    webhook_deliveries,
    interview_facts,
    audit_log,
)
