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


def _versions_storage(store) -> tuple[list[str] | None, int]:
    """submission_versions' reloptions, and how many bytes its TOAST table holds."""
    with store.engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT c.reloptions, pg_relation_size(c.reltoastrelid) FROM pg_class c "
                "WHERE c.oid = 'submission_versions'::regclass"
            )
        ).one()


def test_a_payload_that_compresses_into_a_page_stays_in_its_row(pg_store):
    from store.store import CENTRAL, CREATED, Incoming

    options, _ = _versions_storage(pg_store)
    assert options == ["toast_tuple_target=8160"]
    # 9 kB of JSON that compresses well: over the 2 kB TOAST threshold, under a page compressed
    rows = [
        {
            "__id": f"uuid:inline-{i}",
            "meta": {"instanceID": f"uuid:inline-{i}"},
            "notes": "custody register checked, no entry missing; " * 200,
            "__system": {"submissionDate": "2026-03-01T09:00:00.000Z", "formVersion": None},
        }
        for i in range(20)
    ]
    results = pg_store.ingest_many([Incoming(r, CENTRAL, FORM) for r in rows])
    assert {r.status for r in results} == {CREATED}
    _, toast_bytes = _versions_storage(pg_store)
    assert toast_bytes == 0
    with pg_store.engine.connect() as conn:  # and it reads back whole
        stored = conn.execute(
            text("SELECT payload FROM submission_versions WHERE instance_id = 'uuid:inline-3'")
        ).scalar_one()
    assert b"custody register checked" in bytes(stored) and len(bytes(stored)) > 8000


def test_the_payload_row_migration_goes_both_ways(pg_store):
    with pg_store.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0009")
    assert _versions_storage(pg_store)[0] is None
    migrate(pg_store.engine)
    assert _versions_storage(pg_store)[0] == ["toast_tuple_target=8160"]
