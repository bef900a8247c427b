"""PostgreSQL row storage: form rows stay whole up to a page, payloads compressed with lz4

Storage settings only, PostgreSQL only: no value changes, and rows already stored keep the
storage they were written with. A form table's row of a couple of hundred short texts (3 kB)
had dozens of its values moved out to TOAST one by one; pglz compressing every payload was most
of the rest of a batch's COPY (store/README.md, "Where ingest spends its time"). lz4 needs a
server built with it (PostgreSQL 14 and later, as Debian's and the official images are);
without it payloads stay with the server's default.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TOAST_TUPLE_TARGET = 8160  # as store.form_tables.STORAGE (new form tables get it there)


def _form_tables(bind) -> list[str]:
    names = bind.execute(sa.text("SELECT table_name FROM form_tables")).scalars().all()
    return [
        n
        for n in names
        if bind.execute(sa.text("SELECT to_regclass(quote_ident(:n))"), {"n": n}).scalar()
    ]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    quote = bind.dialect.identifier_preparer.quote
    for name in _form_tables(bind):
        op.execute(f"ALTER TABLE {quote(name)} SET (toast_tuple_target = {TOAST_TUPLE_TARGET})")
    if bind.dialect.server_version_info >= (14,):
        try:
            with bind.begin_nested():
                op.execute(
                    "ALTER TABLE submission_versions ALTER COLUMN payload SET COMPRESSION lz4"
                )
        except sa.exc.DBAPIError:  # "compression method lz4 not supported": keep the default
            pass


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    quote = bind.dialect.identifier_preparer.quote
    for name in _form_tables(bind):
        op.execute(f"ALTER TABLE {quote(name)} RESET (toast_tuple_target)")
    if bind.dialect.server_version_info >= (14,):
        op.execute("ALTER TABLE submission_versions ALTER COLUMN payload SET COMPRESSION default")
