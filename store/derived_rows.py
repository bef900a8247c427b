"""The rows one transaction writes, gathered and written together with executemany.

A submission's typed rows and problems are derived from its raw version (`normalise`); a
stored current version is derived again with `rederive` (rebuild, a form registered, a
restore). New raw rows (versions, submissions, attachments, blobs) wait here too, so a batch of
new submissions costs one executemany per table.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, update
from sqlalchemy.engine import Connection

from store import tables as t
from store.bulk_insert import insert_ignore
from store.document import SubmissionDocument
from store.incoming import Incoming, ParsedSubmission, missing_id_problem, parse_incoming
from store.outcomes import DELETED, NOT_TYPED, RAW_ONLY, TYPED, UNKNOWN_FORM
from store.rows import Problem, document_rows

if TYPE_CHECKING:
    from store.form_registry import FormRegistry


class DerivedRows:
    """Rows waiting to be written in `conn`'s transaction; `flush` writes them."""

    def __init__(self, forms: FormRegistry, conn: Connection):
        self.forms = forms
        self.conn = conn
        self.versions: list[dict] = []
        self.submissions: list[dict] = []
        self.typed: dict[str, list[dict]] = {}
        self.typed_tables: dict[str, Any] = {}
        self.problems: list[dict] = []
        self.attachments: list[dict] = []
        self.blobs: dict[str, dict] = {}
        self.pending_ids: set[tuple[str | None, str | None]] = set()

    def parse(self, item: Incoming) -> ParsedSubmission:
        return parse_incoming(item, lambda form_id: self.forms.form(self.conn, form_id))

    def problem_rows(self, form_id, root_id, instance_id, problems: list[Problem]) -> None:
        self.problems += [
            {
                "form_id": form_id,
                "root_id": root_id,
                "instance_id": instance_id,
                "code": p.code,
                "field_path": p.path,
                "value": p.value,
                "message": p.message,
            }
            for p in problems
        ]

    def normalise(self, doc: SubmissionDocument, root_id: str) -> tuple[str, list[Problem]]:
        """Typed rows (queued) and problems of one document; returns how it was normalised.

        A failure here is a bug in nigraan, not in the data: the submission stays stored raw,
        flagged, and the rest of the batch goes on.
        """
        try:
            return self._normalise_document(doc, root_id)
        except Exception as exc:
            return NOT_TYPED, [
                Problem(
                    "not_typed",
                    None,
                    None,
                    f"nigraan could not type this submission ({type(exc).__name__}: {exc}); it is "
                    "kept raw. Report it; `nigraan store rebuild` retries after a fix.",
                )
            ]

    def normalise_live(self, doc: SubmissionDocument, root_id: str) -> tuple[str, list[Problem]]:
        """As normalise, but a row Central reports deleted gets no typed rows."""
        if doc.system and doc.system.get("deletedAt"):
            return DELETED, []
        return self.normalise(doc, root_id)

    def _normalise_document(self, doc, root_id: str) -> tuple[str, list[Problem]]:
        form = self.forms.form(self.conn, doc.form_id, doc.form_version or "")
        if form is None or not form.schemas:
            return UNKNOWN_FORM, [
                Problem(
                    "unknown_form",
                    None,
                    doc.form_id,
                    f"No form '{doc.form_id}' is registered; the submission is kept raw and is "
                    "typed once the form is registered.",
                )
            ]
        if form.raw_only or doc.encrypted:
            return RAW_ONLY, []
        problems: list[Problem] = []
        version = doc.form_version or ""
        if version not in form.schemas:
            problems.append(
                Problem(
                    "unknown_version",
                    None,
                    doc.form_version,
                    f"Form '{doc.form_id}' has no version {doc.form_version!r}; the submission was "
                    f"typed with version {form.latest!r} as far as its fields match.",
                )
            )
            version = form.latest
        rows = document_rows(doc, form.plan(version), root_id)
        for table_name, table_rows in rows.tables.items():  # positional, in the Table's order
            self.typed.setdefault(table_name, []).extend(table_rows)
        for table in form.tables.values():
            self.typed_tables[table.name] = table
        return TYPED, problems + rows.problems

    def clear_derived(self, form_id: str, root_id: str) -> None:
        """Remove a submission's typed rows and problems (they are derived again, or not)."""
        form = self.forms.form(self.conn, form_id)
        if form is not None:
            for repeat, table in form.tables.items():
                key = table.c["__submission_id"] if repeat else table.c["__id"]
                self.conn.execute(delete(table).where(key == root_id))
        self.conn.execute(
            delete(t.problems).where(
                t.problems.c.form_id == form_id, t.problems.c.root_id == root_id
            )
        )

    def rederive(self, version) -> None:
        """Typed rows and problems of one stored current version (rebuild, form registered)."""
        item = Incoming(bytes(version.payload), version.source, version.form_id)
        if version.payload_kind == "json":
            item.payload = json.loads(version.payload)
        parsed = self.parse(item)
        if parsed.doc is None:
            problem = Problem("unreadable", None, None, parsed.error or "unreadable")
            self.problem_rows(version.form_id, None, None, [problem])
            return
        doc = parsed.doc
        generated = parsed.generated_id
        doc.instance_id = version.instance_id if generated else doc.instance_id
        self.clear_derived(doc.form_id, version.root_id)
        normalised, problems = self.normalise(doc, version.root_id)
        if generated:
            problems.insert(0, missing_id_problem(doc.instance_id))
        self.problem_rows(doc.form_id, version.root_id, doc.instance_id, problems)
        self.conn.execute(
            update(t.submissions)
            .where(
                t.submissions.c.form_id == doc.form_id, t.submissions.c.root_id == version.root_id
            )
            .values(normalised=normalised)
        )
        if sum(len(rows) for rows in self.typed.values()) > 5000:
            self.flush()

    def flush(self) -> None:
        conn = self.conn
        bulk = self.forms.inserts
        bulk(conn, t.submission_versions, self.versions)
        bulk(conn, t.submissions, self.submissions)
        if self.blobs:
            insert_ignore(conn, t.blobs, list(self.blobs.values()))
        bulk(conn, t.submission_attachments, self.attachments)
        for table_name, rows in self.typed.items():
            bulk(conn, self.typed_tables[table_name], rows)
        bulk(conn, t.problems, self.problems)
        self.versions, self.submissions, self.attachments, self.problems = [], [], [], []
        self.blobs, self.typed = {}, {}
        self.pending_ids.clear()
