"""Job records say why the engine that ran is not the one the request named.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ve_jobs", sa.Column("note", sa.Text))


def downgrade() -> None:
    op.drop_column("ve_jobs", "note")
