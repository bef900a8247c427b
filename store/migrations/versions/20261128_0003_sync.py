"""sync with ODK Central: sync_state (watermarks, resumable passes) and review_outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_state",
        sa.Column("scope", sa.String(length=1000), nullable=False),
        sa.Column("form_id", sa.String(length=255), nullable=False),
        sa.Column("watermark", sa.Text(), nullable=True),
        sa.Column("pass_filter", sa.Text(), nullable=True),
        sa.Column("pass_high", sa.Text(), nullable=True),
        sa.Column("resume_link", sa.Text(), nullable=True),
        sa.Column("updated_at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_sync_state")),
    )
    op.create_table(
        "review_outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("form_id", sa.String(length=255), nullable=False),
        sa.Column("root_id", sa.String(length=255), nullable=False),
        sa.Column("review_state", sa.String(length=32), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("state_pushed_at", store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("comment_pushed_at", store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("done_at", store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_outbox")),
    )
    with op.batch_alter_table("review_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_outbox_done_at"), ["done_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("review_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_outbox_done_at"))
    op.drop_table("review_outbox")
    op.drop_table("sync_state")
