"""identity erasure: which submissions filed an identity, and tombstones of erased ones

Identities filed before this revision have no recorded source: `nigraan identity import`
records them (it files every stored identity submission again).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.tables

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("code_hmac", sa.String(length=64), nullable=False),
        sa.Column("code_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("erased_at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
    )
    with op.batch_alter_table("erasures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_erasures_code_hmac"), ["code_hmac"], unique=False)

    op.create_table(
        "sealed_sources",
        sa.Column("form_id", sa.String(length=255), nullable=False),
        sa.Column("instance_id", sa.String(length=255), nullable=False),
        sa.Column("code_hmac", sa.String(length=64), nullable=False),
        sa.Column("filed_at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("form_id", "instance_id", name=op.f("pk_sealed_sources")),
    )
    with op.batch_alter_table("sealed_sources", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sealed_sources_code_hmac"), ["code_hmac"], unique=False
        )

    op.create_table(
        "erased_submissions",
        sa.Column("form_id", sa.String(length=255), nullable=False),
        sa.Column("instance_id", sa.String(length=255), nullable=False),
        sa.Column("root_id", sa.String(length=255), nullable=True),
        sa.Column("erasure_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["erasure_id"], ["erasures.id"], name=op.f("fk_erased_submissions_erasure_id_erasures")
        ),
        sa.PrimaryKeyConstraint("form_id", "instance_id", name=op.f("pk_erased_submissions")),
    )
    with op.batch_alter_table("erased_submissions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_erased_submissions_form_id_root_id"),
            ["form_id", "root_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("erased_submissions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_erased_submissions_form_id_root_id"))

    op.drop_table("erased_submissions")
    with op.batch_alter_table("sealed_sources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sealed_sources_code_hmac"))

    op.drop_table("sealed_sources")
    with op.batch_alter_table("erasures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_erasures_code_hmac"))

    op.drop_table("erasures")
