"""PostgreSQL's statistics on the columns ingest finds rows by, gathered as the tables grow.

Ingest and the cross-form checks ask for a batch's ids with `form_id = $1 AND root_id =
ANY($2)` (`id_lists.py`). Without statistics (a fresh store, a server whose autovacuum is off
or has not come round yet) the planner takes `form_id = $1` for a selective condition and picks
an index on `form_id` alone; once psycopg prepares the statement (its sixth run) the generic
plan then tests every row of the form against the array, element by element: each batch reads
the whole table, 1,000 comparisons a row, and a load turns quadratic (store/README.md has the
figures). With statistics on these columns the planner probes the `(form_id, root_id)` index.

`ANALYZE table (columns)` samples only those columns (a form table has hundreds, and all of
them take seconds), and leaves the counters autovacuum goes by alone, so its own full ANALYZE
still comes when it would. A table is analysed again each time it has doubled since the last
time: a load of N rows pays for a handful, not one per batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import Table, text
from sqlalchemy.engine import Engine

from store import tables as t

if TYPE_CHECKING:
    from store.form_registry import FormRegistry

# The columns each fixed table is looked up by in a batch (ingest's prefetch and edits, the
# cross-form checks, the queue's summary).
LOOKUPS: dict[Table, tuple[str, ...]] = {
    t.submissions: ("form_id", "root_id"),
    t.submission_versions: ("form_id", "instance_id", "root_id"),
    t.flags: ("form_id", "root_id", "rule_id"),
    t.check_keys: ("rule_id", "key", "form_id", "root_id"),
    t.submission_summary: ("form_id", "root_id"),
}
MIN_PAGES = 64  # 512 kB: below that any plan reads little, and small stores (tests) never ANALYZE
GROWTH = 2  # analysed again once this many times the pages it had when last analysed
# Submissions stored between two looks at the tables' sizes (a look is a connection and a
# catalog query, 2-3 ms: nothing for a batch of 1,000, not to be paid by every Collect upload).
LOOK_EVERY = 1000
_stored_since_look: dict[str, int] = {}  # database URL -> submissions stored in this process


_SIZES = text(
    "SELECT n.name, c.relpages, pg_relation_size(c.oid) / current_setting('block_size')::int "
    "FROM unnest(CAST(:names AS text[])) AS n(name) "
    "JOIN pg_class c ON c.oid = to_regclass(quote_ident(n.name))"
)


def after_batch(engine: Engine, forms: FormRegistry, touched: dict[str, set[str]]) -> list[str]:
    """`refresh` once LOOK_EVERY submissions have been stored since the last look (the first
    batch of a process looks at once); `touched`: {form id: root ids} of a batch."""
    if engine.dialect.name != "postgresql" or not touched:
        return []
    key = engine.url.render_as_string(hide_password=True)
    stored = _stored_since_look.get(key, LOOK_EVERY) + sum(len(ids) for ids in touched.values())
    if stored < LOOK_EVERY:
        _stored_since_look[key] = stored
        return []
    _stored_since_look[key] = 0
    return refresh(engine, forms, touched)


def refresh(engine: Engine, forms: FormRegistry, form_ids: Iterable[str]) -> list[str]:
    """ANALYZE the lookup columns of the fixed tables and of these forms' typed tables where
    they have grown enough; returns the tables analysed.

    Runs between batches, in a transaction of its own: ANALYZE takes a lock that only another
    ANALYZE or VACUUM of the same table waits for, and its statistics serve every connection
    (prepared statements are planned again when they change).
    """
    form_ids = set(form_ids)
    if engine.dialect.name != "postgresql" or not form_ids:
        return []
    with engine.begin() as conn:
        by_name = {tb.name: columns for tb, columns in LOOKUPS.items()}
        for form_id in sorted(form_ids):
            form = forms.form(conn, form_id)
            for tb in form.tables.values() if form else ():
                # the checks and the queue's summary read a form's rows by submission
                by_name[tb.name] = ("__submission_id",) if "__submission_id" in tb.c else ("__id",)
        sizes = conn.execute(_SIZES, {"names": sorted(by_name)}).all()
        grown = [
            name
            for name, analysed, pages in sizes
            if pages >= MIN_PAGES and pages >= GROWTH * analysed
        ]
        quote = conn.dialect.identifier_preparer.quote
        for name in grown:
            columns = ", ".join(quote(c) for c in by_name[name])
            conn.exec_driver_sql(f"ANALYZE {quote(name)} ({columns})")  # our own tables' names
    return grown
