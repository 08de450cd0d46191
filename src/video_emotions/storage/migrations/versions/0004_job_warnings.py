"""Jobs and their chunks say what a recording cut short kept them from covering.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("ve_jobs", sa.Column("warnings", Json))
    op.add_column("ve_job_chunks", sa.Column("warnings", Json))


def downgrade() -> None:
    with op.batch_alter_table("ve_job_chunks") as batch:
        batch.drop_column("warnings")
    with op.batch_alter_table("ve_jobs") as batch:
        batch.drop_column("warnings")
