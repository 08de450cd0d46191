"""The job system: per-request parameters, progress by chunk, attempts, webhook deliveries.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("ve_jobs") as batch:
        batch.add_column(sa.Column("interval", sa.Float(precision=53)))
        batch.add_column(sa.Column("classifier", sa.String(128)))
        batch.add_column(sa.Column("callback_url", sa.Text))
        batch.add_column(sa.Column("active_key", sa.String(200)))
        batch.add_column(sa.Column("stages", Json))
        batch.create_unique_constraint("uq_ve_jobs_active_key", ["active_key"])
    # The states are now queued | running | succeeded | failed | cancelled. A job left queued or
    # running by the service before this version cannot be resumed by it: it failed.
    op.execute("UPDATE ve_jobs SET status = 'succeeded' WHERE status = 'done'")
    op.execute(
        "UPDATE ve_jobs SET status = 'failed', error_kind = 'internal', "
        "error = 'left unfinished by an earlier version of the service' "
        "WHERE status IN ('queued', 'running')"
    )
    op.create_table(
        "ve_job_chunks",
        sa.Column("job_id", sa.String(36), primary_key=True),
        sa.Column("chunk", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("segment_ids", Json, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("samples_done", sa.Integer, nullable=False),
        sa.Column("samples_expected", sa.Integer, nullable=False),
        sa.Column("segments_done", sa.Integer, nullable=False),
        sa.Column("segments_total", sa.Integer, nullable=False),
        sa.Column("result", Json),
        sa.Column("log", sa.Text),
        sa.Column("stages", Json),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "ve_job_attempts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("chunk", sa.Integer, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_kind", sa.String(32)),
        sa.Column("error", sa.Text),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_ve_job_attempts_job_id", "ve_job_attempts", ["job_id"])
    op.create_table(
        "ve_webhook_deliveries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("webhook_id", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_ve_webhook_deliveries_job_id", "ve_webhook_deliveries", ["job_id"])


def downgrade() -> None:
    op.drop_table("ve_webhook_deliveries")
    op.drop_table("ve_job_attempts")
    op.drop_table("ve_job_chunks")
    op.execute("UPDATE ve_jobs SET status = 'done' WHERE status = 'succeeded'")
    with op.batch_alter_table("ve_jobs") as batch:
        batch.drop_constraint("uq_ve_jobs_active_key", type_="unique")
        for column in ("stages", "active_key", "callback_url", "classifier", "interval"):
            batch.drop_column(column)
