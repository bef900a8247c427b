"""cross-form check flags, the review queue's submission summary, and its indexes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flags",
        sa.Column("form_id", sa.String(length=255), nullable=False),
        sa.Column("root_id", sa.String(length=255), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("reason_en", sa.Text(), nullable=False),
        sa.Column("reason_ur", sa.Text(), nullable=False),
        sa.Column("since", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("form_id", "root_id", "rule_id", name=op.f("pk_flags")),
    )
    with op.batch_alter_table("flags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flags_rule_id"), ["rule_id"], unique=False)

    op.create_table(
        "submission_summary",
        sa.Column("form_id", sa.String(length=255), nullable=False),
        sa.Column("root_id", sa.String(length=255), nullable=False),
        sa.Column("district", sa.Text(), nullable=True),
        sa.Column("facility", sa.Text(), nullable=True),
        sa.Column("support_unit", sa.Text(), nullable=True),
        sa.Column("codes", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("form_id", "root_id", name=op.f("pk_submission_summary")),
    )
    with op.batch_alter_table("submission_summary", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_submission_summary_support_unit"), ["support_unit"], unique=False
        )

    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_submissions_first_received_at", ["first_received_at"], unique=False
        )
        batch_op.create_index(
            "ix_submissions_form_id_first_received_at",
            ["form_id", "first_received_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_submissions_review_state_first_received_at",
            ["review_state", "first_received_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_submissions_form_id_review_state_deleted_at",
            ["form_id", "review_state", "deleted_at"],
            unique=False,
        )

    op.create_table(
        "check_keys",
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=1000), nullable=False),
        sa.Column("form_id", sa.String(length=255), nullable=False),
        sa.Column("root_id", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("rule_id", "key", "form_id", "root_id", name=op.f("pk_check_keys")),
    )
    with op.batch_alter_table("check_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_check_keys_form_id_root_id"), ["form_id", "root_id"], unique=False
        )
    op.create_table(
        "sync_lease",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.Text(), nullable=True),
        sa.Column("until", store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sync_lease")),
    )
    op.create_table(
        "sync_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("started_at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.Column("new", sa.Integer(), server_default="0", nullable=False),
        sa.Column("changed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("deleted", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reviews_pushed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("summary", sa.Text(), server_default="", nullable=False),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sync_runs_started_at"), ["started_at"], unique=False)


def downgrade() -> None:
    op.drop_table("sync_runs")
    op.drop_table("check_keys")
    op.drop_table("sync_lease")
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_index("ix_submissions_form_id_review_state_deleted_at")
        batch_op.drop_index("ix_submissions_review_state_first_received_at")
        batch_op.drop_index("ix_submissions_form_id_first_received_at")
        batch_op.drop_index("ix_submissions_first_received_at")

    with op.batch_alter_table("submission_summary", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submission_summary_support_unit"))

    op.drop_table("submission_summary")
    with op.batch_alter_table("flags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flags_rule_id"))

    op.drop_table("flags")
