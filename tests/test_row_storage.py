"""PostgreSQL row storage: form rows kept whole up to a page, payloads compressed with lz4."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text

from store.database import alembic_config, migrate
from store.form_tables import STORAGE

FORM = "rec_visit"


@pytest.fixture
def pg_store(store, central_dir):
    if store.engine.dialect.name != "postgresql":
        pytest.skip("storage parameters are PostgreSQL's")
    store.register_form((central_dir / "forms" / "rec_visit.xml").read_bytes())
    return store


def _toast_targets(store) -> dict[str, list[str] | None]:
    names = [tb.name for tb in store.form_tables(FORM).values()]
    with store.engine.connect() as conn:
        return {
            name: conn.execute(
                text("SELECT reloptions FROM pg_class WHERE oid = to_regclass(:n)"), {"n": name}
            ).scalar()
            for name in names
        }


def _payload_compression(store) -> str:
    with store.engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT attcompression FROM pg_attribute "
                "WHERE attrelid = 'submission_versions'::regclass AND attname = 'payload'"
            )
        ).scalar()


def _lz4_available(store) -> bool:
    with store.engine.connect() as conn:
        try:
            conn.execute(text("CREATE TEMPORARY TABLE lz4_probe (b bytea COMPRESSION lz4)"))
        except Exception:
            return False
        finally:
            conn.rollback()
    return True


def test_form_tables_keep_rows_up_to_a_page_whole(pg_store):
    target = [f"toast_tuple_target={STORAGE['toast_tuple_target']}"]
    assert set(map(tuple, _toast_targets(pg_store).values())) == {tuple(target)}


def test_payloads_are_compressed_with_lz4_where_the_server_has_it(pg_store):
    assert _payload_compression(pg_store) == ("l" if _lz4_available(pg_store) else "")


def test_the_migration_sets_both_on_a_store_that_had_neither(pg_store):
    with pg_store.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0008")
    assert set(_toast_targets(pg_store).values()) == {None}
    assert _payload_compression(pg_store) == ""
    migrate(pg_store.engine)
    assert all(_toast_targets(pg_store).values())
    assert _payload_compression(pg_store) == ("l" if _lz4_available(pg_store) else "")
