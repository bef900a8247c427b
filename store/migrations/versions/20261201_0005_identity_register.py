"""the identity register (sealed_identities, sealed_values: ciphertext only, found by HMAC)
and decryption_flags (encrypted submissions that did not decrypt)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sealed_identities",
        sa.Column("code_hmac", sa.String(length=64), nullable=False),
        sa.Column("code_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("created_at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code_hmac", name=op.f("pk_sealed_identities")),
    )
    op.create_table(
        "sealed_values",
        sa.Column("code_hmac", sa.String(length=64), nullable=False),
        sa.Column("field", sa.String(length=255), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["code_hmac"],
            ["sealed_identities.code_hmac"],
            name=op.f("fk_sealed_values_code_hmac_sealed_identities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code_hmac", "field", name=op.f("pk_sealed_values")),
    )
    op.create_table(
        "decryption_flags",
        sa.Column("form_id", sa.String(length=255), nullable=False),
        sa.Column("instance_id", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("flagged_at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("form_id", "instance_id", name=op.f("pk_decryption_flags")),
    )


def downgrade() -> None:
    op.drop_table("decryption_flags")
    op.drop_table("sealed_values")
    op.drop_table("sealed_identities")
