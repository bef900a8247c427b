"""the identity register (ciphertext only, found by HMAC) and flags on undecryptable submissions

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
        "identity_register",
        sa.Column("code_hmac", sa.String(length=64), nullable=False),
        sa.Column("code_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("created_at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code_hmac", name=op.f("pk_identity_register")),
    )
    op.create_table(
        "identity_fields",
        sa.Column("code_hmac", sa.String(length=64), nullable=False),
        sa.Column("field", sa.String(length=255), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["code_hmac"],
            ["identity_register.code_hmac"],
            name=op.f("fk_identity_fields_code_hmac_identity_register"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code_hmac", "field", name=op.f("pk_identity_fields")),
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
    op.drop_table("identity_fields")
    op.drop_table("identity_register")
