"""The audit log: an append-only table of who did what, when, with which model and parameters.

A trigger refuses UPDATE, DELETE (and on PostgreSQL TRUNCATE) of its rows, on PostgreSQL and on the
embedded SQLite alike.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

REFUSAL = "ve_audit is append-only: its rows are never updated or deleted"

POSTGRES_UP = (
    f"""
    CREATE FUNCTION ve_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{REFUSAL} (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    "CREATE TRIGGER ve_audit_append_only BEFORE UPDATE OR DELETE ON ve_audit"
    " FOR EACH ROW EXECUTE FUNCTION ve_audit_append_only()",
    "CREATE TRIGGER ve_audit_no_truncate BEFORE TRUNCATE ON ve_audit"
    " FOR EACH STATEMENT EXECUTE FUNCTION ve_audit_append_only()",
)
POSTGRES_DOWN = (
    "DROP TRIGGER IF EXISTS ve_audit_no_truncate ON ve_audit",
    "DROP TRIGGER IF EXISTS ve_audit_append_only ON ve_audit",
    "DROP FUNCTION IF EXISTS ve_audit_append_only()",
)
SQLITE_UP = tuple(
    f"CREATE TRIGGER ve_audit_no_{verb.lower()} BEFORE {verb} ON ve_audit"
    f" BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
    for verb in ("UPDATE", "DELETE")
)
SQLITE_DOWN = ("DROP TRIGGER IF EXISTS ve_audit_no_update", "DROP TRIGGER IF EXISTS ve_audit_no_delete")


def upgrade() -> None:
    op.create_table(
        "ve_audit",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("interview_id", sa.BigInteger),
        sa.Column("job_id", sa.String(36)),
        sa.Column("model_type", sa.String(64)),
        sa.Column("engine", sa.String(64)),
        sa.Column("parameters", Json, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("client", sa.String(64)),
    )
    for column in ("at", "actor", "action", "interview_id"):
        op.create_index(f"ix_ve_audit_{column}", "ve_audit", [column])
    dialect = op.get_bind().dialect.name
    for statement in {"postgresql": POSTGRES_UP, "sqlite": SQLITE_UP}.get(dialect, ()):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in {"postgresql": POSTGRES_DOWN, "sqlite": SQLITE_DOWN}.get(dialect, ()):
        op.execute(statement)
    op.drop_table("ve_audit")
