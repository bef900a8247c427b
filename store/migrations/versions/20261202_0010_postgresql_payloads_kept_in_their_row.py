"""PostgreSQL: payloads kept in their row (compressed) up to a page, not moved out to TOAST

Storage settings only, PostgreSQL only: no value changes, and rows already stored keep the
storage they were written with. A custody visit's payload (9.8 kB of OData JSON) passed the
2 kB TOAST threshold, so each was compressed and then moved out to the TOAST table in 2 kB
chunks, a row and an index entry each; with `toast_tuple_target = 8160` a payload that
compresses to fit in a page stays in its row of `submission_versions` (20,000 visits: the
table's COPY 131 -> 98 µs a visit, the TOAST table empty; store/README.md). Larger payloads
(an XML with long texts) are still moved out.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TOAST_TUPLE_TARGET = 8160  # a page (8 kB) less its header, as 0009 set on the form tables


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE submission_versions SET (toast_tuple_target = {TOAST_TUPLE_TARGET})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE submission_versions RESET (toast_tuple_target)")
