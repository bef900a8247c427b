"""who sent each submission version: submission_versions.submitter_name and device_id

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submission_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("submitter_name", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("device_id", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submission_versions", schema=None) as batch_op:
        batch_op.drop_column("device_id")
        batch_op.drop_column("submitter_name")
