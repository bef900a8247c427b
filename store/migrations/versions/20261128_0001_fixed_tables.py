"""fixed tables: forms, raw submissions, attachments, problems

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_blobs")),
    )
    op.create_table(
        "form_choices",
        sa.Column("form_id", sa.String(length=255), nullable=False),
        sa.Column("field_path", sa.String(length=1000), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("label_en", sa.Text(), nullable=True),
        sa.Column("label_ur", sa.Text(), nullable=True),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("form_id", "field_path", "name", name=op.f("pk_form_choices")),
    )
    op.create_table(
        "forms",
        sa.Column("form_id", sa.String(length=255), nullable=False),
        sa.Column("title", sa.Text(), server_default="", nullable=False),
        sa.Column("latest_version", sa.String(length=255), nullable=False),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("raw_only", sa.Boolean(), nullable=False),
        sa.Column("registered_at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("form_id", name=op.f("pk_forms")),
    )
    op.create_table(
        "problems",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("form_id", sa.String(length=255), nullable=True),
        sa.Column("root_id", sa.String(length=255), nullable=True),
        sa.Column("instance_id", sa.String(length=255), nullable=True),
        sa.Column("version_id", sa.BigInteger(), nullable=True),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("field_path", sa.Text(), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_problems")),
    )
    with op.batch_alter_table("problems", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_problems_form_id_root_id"), ["form_id", "root_id"], unique=False
        )

    op.create_table(
        "submission_versions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("form_id", sa.String(length=255), nullable=True),
        sa.Column("instance_id", sa.String(length=255), nullable=True),
        sa.Column("root_id", sa.String(length=255), nullable=True),
        sa.Column("deprecated_id", sa.String(length=255), nullable=True),
        sa.Column("form_version", sa.String(length=255), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("payload_kind", sa.String(length=8), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.Column("received_at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submission_versions")),
        sa.UniqueConstraint(
            "form_id", "instance_id", name=op.f("uq_submission_versions_form_id_instance_id")
        ),
    )
    with op.batch_alter_table("submission_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_submission_versions_form_id_root_id"),
            ["form_id", "root_id"],
            unique=False,
        )

    op.create_table(
        "submissions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("form_id", sa.String(length=255), nullable=False),
        sa.Column("root_id", sa.String(length=255), nullable=False),
        sa.Column("current_instance_id", sa.String(length=255), nullable=False),
        sa.Column("form_version", sa.String(length=255), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("edits", sa.Integer(), server_default="0", nullable=False),
        sa.Column("first_received_at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("central_submission_date", sa.Text(), nullable=True),
        sa.Column("central_updated_at", sa.Text(), nullable=True),
        sa.Column("submitter_id", sa.Text(), nullable=True),
        sa.Column("submitter_name", sa.Text(), nullable=True),
        sa.Column("device_id", sa.Text(), nullable=True),
        sa.Column("review_state", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("deleted_at", sa.Text(), nullable=True),
        sa.Column("normalised", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
        sa.UniqueConstraint("form_id", "root_id", name=op.f("uq_submissions_form_id_root_id")),
    )
    op.create_table(
        "form_fields",
        sa.Column("form_id", sa.String(length=255), nullable=False),
        sa.Column("field_path", sa.String(length=1000), nullable=False),
        sa.Column("repeat_path", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("bind_type", sa.String(length=32), nullable=False),
        sa.Column("sensitivity", sa.String(length=32), nullable=True),
        sa.Column("restricted", sa.Boolean(), nullable=False),
        sa.Column("label_en", sa.Text(), nullable=True),
        sa.Column("label_ur", sa.Text(), nullable=True),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("first_version", sa.String(length=255), nullable=False),
        sa.Column("last_version", sa.String(length=255), nullable=False),
        sa.Column("in_latest_version", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["form_id"], ["forms.form_id"], name=op.f("fk_form_fields_form_id_forms")
        ),
        sa.PrimaryKeyConstraint("form_id", "field_path", name=op.f("pk_form_fields")),
    )
    op.create_table(
        "form_tables",
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("form_id", sa.String(length=255), nullable=False),
        sa.Column("repeat_path", sa.Text(), nullable=False),
        sa.Column("parent_repeat_path", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["form_id"], ["forms.form_id"], name=op.f("fk_form_tables_form_id_forms")
        ),
        sa.PrimaryKeyConstraint("table_name", name=op.f("pk_form_tables")),
        sa.UniqueConstraint(
            "form_id", "repeat_path", name=op.f("uq_form_tables_form_id_repeat_path")
        ),
    )
    op.create_table(
        "form_versions",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("form_id", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("xform", sa.LargeBinary(), nullable=False),
        sa.Column("xform_sha256", sa.String(length=64), nullable=False),
        sa.Column("registered_at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["form_id"], ["forms.form_id"], name=op.f("fk_form_versions_form_id_forms")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_form_versions")),
        sa.UniqueConstraint("form_id", "version", name=op.f("uq_form_versions_form_id_version")),
    )
    op.create_table(
        "submission_attachments",
        sa.Column("form_id", sa.String(length=255), nullable=False),
        sa.Column("instance_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("received_at", store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["sha256"], ["blobs.sha256"], name=op.f("fk_submission_attachments_sha256_blobs")
        ),
        sa.PrimaryKeyConstraint(
            "form_id", "instance_id", "name", name=op.f("pk_submission_attachments")
        ),
    )
    op.create_table(
        "form_columns",
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("column_name", sa.String(length=63), nullable=False),
        sa.Column("form_id", sa.String(length=255), nullable=False),
        sa.Column("repeat_path", sa.Text(), nullable=False),
        sa.Column("field_path", sa.Text(), nullable=False),
        sa.Column("part", sa.Text(), nullable=False),
        sa.Column("storage", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["table_name"],
            ["form_tables.table_name"],
            name=op.f("fk_form_columns_table_name_form_tables"),
        ),
        sa.PrimaryKeyConstraint("table_name", "column_name", name=op.f("pk_form_columns")),
    )
    with op.batch_alter_table("form_columns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_form_columns_form_id_field_path"),
            ["form_id", "field_path"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("form_columns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_form_columns_form_id_field_path"))

    op.drop_table("form_columns")
    op.drop_table("submission_attachments")
    op.drop_table("form_versions")
    op.drop_table("form_tables")
    op.drop_table("form_fields")
    op.drop_table("submissions")
    with op.batch_alter_table("submission_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submission_versions_form_id_root_id"))

    op.drop_table("submission_versions")
    with op.batch_alter_table("problems", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_problems_form_id_root_id"))

    op.drop_table("problems")
    op.drop_table("forms")
    op.drop_table("form_choices")
    op.drop_table("blobs")
