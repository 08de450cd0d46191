"""What is known of an interview beyond its video: context, region, purpose, recording, notice, consent.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ve_interview_facts",
        sa.Column("interview_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("context", sa.String(64)),
        sa.Column("region", sa.String(64)),
        sa.Column("purpose", sa.Text),
        sa.Column("recorded_by", sa.Text),
        sa.Column("recorded_at", sa.DateTime(timezone=True)),
        sa.Column("notice", sa.Text),
        sa.Column("consent", sa.Boolean),
        sa.Column("consent_at", sa.DateTime(timezone=True)),
        sa.Column("consent_by", sa.Text),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ve_interview_facts")
