"""Our own tables: job records and per-segment detail.

Revision ID: 0001
Revises:
Create Date: 2026-01-15
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Databases set up before migrations existed already hold these tables, created from the
    # same definitions: adopt them.
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "ve_jobs" not in existing:
        op.create_table(
            "ve_jobs",
            sa.Column("id", sa.String(36), primary_key=True),
            sa.Column("session_id", sa.BigInteger, nullable=False),
            sa.Column("interview_id", sa.BigInteger, nullable=False),
            sa.Column("model_type", sa.String(64), nullable=False),
            sa.Column("engine", sa.String(64)),
            sa.Column("model_file", sa.Text),
            sa.Column("model_sha256", sa.String(64)),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("error_kind", sa.String(32)),
            sa.Column("error", sa.Text),
            sa.Column("segments", sa.Integer),
            sa.Column("log_key", sa.Text),
            sa.Column("fingerprint", sa.String(64)),
            sa.Column("caller_left_at", sa.DateTime(timezone=True)),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("started_at", sa.DateTime(timezone=True)),
            sa.Column("finished_at", sa.DateTime(timezone=True)),
        )
        op.create_index("ix_ve_jobs_interview_id", "ve_jobs", ["interview_id"])
    if "ve_segment_results" not in existing:
        op.create_table(
            "ve_segment_results",
            sa.Column("result_id", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("interview_id", sa.BigInteger, nullable=False),
            sa.Column("job_id", sa.String(36), nullable=False),
            sa.Column("engine", sa.String(64), nullable=False),
            sa.Column("model_file", sa.Text),
            sa.Column("model_sha256", sa.String(64)),
            sa.Column("start_ms", sa.Float(precision=53), nullable=False),
            sa.Column("end_ms", sa.Float(precision=53), nullable=False),
            sa.Column("summary", Json, nullable=False),
            sa.Column("frames", Json, nullable=False),
            sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        )
        op.create_index("ix_ve_segment_results_interview_id", "ve_segment_results", ["interview_id"])


def downgrade() -> None:
    op.drop_table("ve_segment_results")
    op.drop_table("ve_jobs")
