"""people's accounts for the web app, and the append-only audit log

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.tables

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

REFUSE_SQLITE = """
CREATE TRIGGER audit_log_no_{op} BEFORE {OP} ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
"""
REFUSE_POSTGRES_FUNCTION = """
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$
"""
REFUSE_POSTGRES = """
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()
"""


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", ID_TYPE, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("unit", sa.String(length=50), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("created_at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failed_at", store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("locked_until", store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", ID_TYPE, autoincrement=True, nullable=False),
        sa.Column("at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("actor_kind", sa.String(length=10), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("form_id", sa.String(length=255), nullable=True),
        sa.Column("record", sa.String(length=255), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_index(op.f("ix_audit_log_actor"), "audit_log", ["actor"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(REFUSE_POSTGRES_FUNCTION)
        op.execute(REFUSE_POSTGRES)
    else:
        for name in ("update", "delete"):
            op.execute(REFUSE_SQLITE.format(op=name, OP=name.upper()))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    op.drop_index(op.f("ix_audit_log_actor"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("users")
