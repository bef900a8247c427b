"""device accounts (app users) of the embedded OpenRosa server and their forms

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_users",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("digest_ha1", sa.String(length=32), nullable=False),
        sa.Column("created_at", store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_users")),
        sa.UniqueConstraint("name", name=op.f("uq_app_users_name")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_app_users_token_sha256")),
    )
    op.create_table(
        "app_user_forms",
        sa.Column(
            "app_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("form_id", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_user_id"],
            ["app_users.id"],
            name=op.f("fk_app_user_forms_app_user_id_app_users"),
        ),
        sa.PrimaryKeyConstraint("app_user_id", "form_id", name=op.f("pk_app_user_forms")),
    )


def downgrade() -> None:
    op.drop_table("app_user_forms")
    op.drop_table("app_users")
