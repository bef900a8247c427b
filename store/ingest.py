"""Ingest: submissions stored in batches, each batch one transaction.

New submissions of a batch are gathered and written with executemany; anything that is not
plainly new (a resend, an edit, a Central row seen before) flushes the pending rows first and
is handled on its own, so order inside a batch is respected. What each submission came to is
an IngestResult whose status is an Outcome (store/outcomes.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import ExitStack
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from nigraan.xform import IDENTITY_FORM
from store import cross_form_checks, planner_statistics, wal_checkpoints
from store import tables as t
from store.attachments import fill_attachment
from store.bulk_insert import BATCH
from store.derived_rows import DerivedRows
from store.document import SubmissionDocument
from store.erasure import erased_ids
from store.gc_pause import collector_paused
from store.id_lists import among
from store.incoming import (
    MAX_ID,
    Incoming,
    IngestResult,
    ParsedSubmission,
    data_digest,
    fitting_content_type,
    missing_id_problem,
    sha256,
    values_at,
)
from store.outcomes import (
    CONFLICT,
    CREATED,
    DELETED,
    DELETED_RESEND,
    DUPLICATE,
    EDITED,
    ERASED,
    REFUSED,
    STALE_EDIT,
    UNKNOWN_DEPRECATED,
    UNREADABLE,
)
from store.rows import Problem, document_rows

if TYPE_CHECKING:
    from store.form_registry import FormRegistry, RegisteredForm


def ingest_many(
    engine: Engine, forms: FormRegistry, items: Iterable[Incoming], batch_size: int = BATCH
) -> list[IngestResult]:
    """Store submissions in transactions of `batch_size`; results in the same order.

    From the first full batch on (a load, a sync, not a tablet's upload), SQLite's WAL is
    checkpointed by a thread beside the writer (store/wal_checkpoints.py), and on PostgreSQL
    each batch is read and typed while the one before is written (store/overlapped_ingest.py).
    """
    from store import overlapped_ingest  # it builds on this module

    results: list[IngestResult] = []
    batch: list[Incoming] = []
    items = iter(items)
    with engine.connect() as conn, ExitStack() as bulk:
        checkpoints = None
        for item in items:
            batch.append(item)
            if len(batch) >= batch_size:
                if overlapped_ingest.applies(engine):
                    return results + overlapped_ingest.ingest(conn, forms, batch, items, batch_size)
                if checkpoints is None and wal_checkpoints.applies(engine):
                    checkpoints = bulk.enter_context(wal_checkpoints.bulk_writer(conn))
                results += _ingest_batch(conn, forms, batch, checkpoints)
                batch = []
        if batch:
            results += _ingest_batch(conn, forms, batch, checkpoints)
    return results


def _ingest_batch(
    conn: Connection,
    forms: FormRegistry,
    items: list[Incoming],
    checkpoints: wal_checkpoints.BackgroundCheckpoints | None = None,
) -> list[IngestResult]:
    with collector_paused(), conn.begin():
        writer = BatchWriter(forms, conn)
        results = writer.add_all(items)
        changed = writer.store(results)
    if checkpoints is not None:
        checkpoints.after_commit()
    planner_statistics.after_batch(conn.engine, forms, changed)  # after the commit, in its own
    return results


def touched(results: Iterable[IngestResult]) -> dict[str, set[str]]:
    """{form id: root ids} of the submissions a batch stored or changed."""
    out: dict[str, set[str]] = {}
    for r in results:
        if r.form_id and r.root_id:
            out.setdefault(r.form_id, set()).add(r.root_id)
    return out


class BatchWriter(DerivedRows):
    """Collects new submissions of one transaction and writes them with executemany."""

    def __init__(self, forms: FormRegistry, conn: Connection):
        super().__init__(forms, conn)
        self.known_instances: set[tuple[str, str]] = set()
        self.known_roots: set[tuple[str, str]] = set()
        self.erased: set[tuple[str, str]] = set()  # erased identities' (form id, id)

    def add_all(self, items: list[Incoming]) -> list[IngestResult]:
        """Read a batch, look up its ids, and add each submission in order."""
        parsed = [self.parse(item) for item in items]
        self.prefetch(parsed)
        return [self.add(p) for p in parsed]

    def store(self, results: list[IngestResult]) -> dict[str, set[str]]:
        """Write what is pending and run the cross-form checks of what the batch touched, in
        the batch's transaction; returns {form id: root ids} touched."""
        self.flush()
        changed = touched(results)
        # web-queue: the cross-form checks of what this batch touched, in the same transaction.
        cross_form_checks.evaluate(self.conn, changed, self.forms)
        return changed

    def prefetch(self, parsed: list[ParsedSubmission]) -> None:
        """Which of the batch's instanceIDs and root ids are stored already (two queries a form)."""
        docs = [p.doc for p in parsed if p.doc is not None]
        sv, sub = t.submission_versions, t.submissions
        instance_ids = {(d.form_id, d.instance_id) for d in docs if d.instance_id}
        root_ids = {(d.form_id, d.root_id) for d in docs if d.root_id}
        self.known_instances |= self._stored(sv.c.form_id, sv.c.instance_id, instance_ids)
        self.known_roots |= self._stored(sub.c.form_id, sub.c.root_id, root_ids)
        # only identity submissions (encrypted envelopes) are ever erased (store/erasure.py)
        named = [
            (d.form_id, i)
            for d in docs
            if d.encrypted or d.form_id == IDENTITY_FORM
            for i in (d.instance_id, d.root_id, d.deprecated_id)
        ]
        if named:
            self.erased |= erased_ids(self.conn, named)

    def _stored(self, form_column, id_column, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (form id, id) pairs that the table holds, asked per form in chunks of BATCH.

        By form: the unique index is (form_id, id); asked by id alone, SQLite reads the whole
        table, every batch (quadratic in the store's size).
        """
        by_form: dict[str, list[str]] = {}
        for form_id, id_ in pairs:
            by_form.setdefault(form_id, []).append(id_)
        found: set[tuple[str, str]] = set()
        for form_id, ids in by_form.items():
            ids.sort()
            for i in range(0, len(ids), BATCH):
                chunk = ids[i : i + BATCH]
                query = select(form_column, id_column).where(
                    form_column == form_id, among(self.conn, id_column, chunk)
                )
                found.update(tuple(r) for r in self.conn.execute(query))
        return found

    def add(self, parsed: ParsedSubmission) -> IngestResult:
        item = parsed.item
        received = item.received_at or t.utcnow()
        if parsed.doc is None:
            return self._unreadable(parsed, received)
        doc = parsed.doc
        key = (doc.form_id, doc.instance_id)
        root_key = (doc.form_id, doc.root_id) if doc.root_id else None
        if self.erased and self._names_erased(doc):
            # An erased identity (store/erasure.py) is not stored again: a device resending it
            # is told it arrived (so it stops), a sync counts it unchanged.
            return IngestResult(
                DUPLICATE,
                doc.form_id,
                doc.instance_id,
                doc.root_id or doc.instance_id,
                ERASED,
                message="This submission was erased; it is not stored again.",
            )
        if (
            doc.deprecated_id is None
            and doc.instance_id
            and key not in self.pending_ids
            and (root_key is None or root_key not in self.pending_ids)
            and key not in self.known_instances
            and (root_key is None or root_key not in self.known_roots)
        ):
            return self._new(parsed, doc, doc.root_id or doc.instance_id, received, None)
        return self._not_new(parsed, doc, received)

    def _not_new(self, parsed: ParsedSubmission, doc: SubmissionDocument, received) -> IngestResult:
        """A submission the store may hold already: looked up and written in the batch's
        transaction, after what is pending."""
        key = (doc.form_id, doc.instance_id)
        self.flush()
        result = self._existing(parsed, doc, received)
        self.known_instances.add(key)
        if result.root_id:
            self.known_roots.add((doc.form_id, result.root_id))
        return result

    def flush(self) -> None:
        # What was pending is stored now: later submissions of the batch that name it (a
        # resend, the same submission from Central) must be looked up, not inserted again.
        stored = set(self.pending_ids)
        super().flush()
        self.known_instances |= stored
        self.known_roots |= stored

    def _names_erased(self, doc: SubmissionDocument) -> bool:
        return any(
            (doc.form_id, i) in self.erased
            for i in (doc.instance_id, doc.root_id, doc.deprecated_id)
            if i
        )

    def _unreadable(self, parsed: ParsedSubmission, received) -> IngestResult:
        item = parsed.item
        message = parsed.error or "unreadable"
        if item.all_or_nothing:  # nothing stored: the sender is told and keeps its copy
            return IngestResult(REFUSED, item.form_id, message=message)
        self.versions.append(self._version_row(parsed, received, form_id=item.form_id))
        problem = Problem("unreadable", None, None, message)
        self.problem_rows(item.form_id, None, None, [problem])
        return IngestResult(UNREADABLE, item.form_id, problems=[problem], message=message)

    def _expected_files(self, doc: SubmissionDocument, form: RegisteredForm | None) -> list[str]:
        if doc.encrypted:
            return list(doc.files)
        if form is None or not form.schemas:
            return []
        names: list[str] = []
        for parts in form.schema_for(doc.form_version).attachment_paths:
            names += [
                v
                for v in values_at(doc.data, parts)
                if isinstance(v, str) and v.strip() and len(v) <= MAX_ID
            ]
        return list(dict.fromkeys(names))

    def _attachment_rows(self, doc, item: Incoming, received, previous: str | None = None) -> None:
        """The files the version names; with `previous` (an edit's deprecated version) a file
        it names but does not send is carried forward from that version, as Central does."""
        form = self.forms.form(self.conn, doc.form_id)
        expected = self._expected_files(doc, form)
        if form is None:  # form unknown: which parts are files cannot be told; keep them all
            expected = list(dict.fromkeys(expected + list(item.attachments)))
        carried = self._arrived(doc.form_id, previous) if previous and expected else {}
        for name in expected:
            content, content_type = item.attachments.get(name, (None, None))
            row = {
                "form_id": doc.form_id,
                "instance_id": doc.instance_id,
                "name": name,
                "sha256": None,
                "content_type": fitting_content_type(content_type),
                "size": None,
                "received_at": None,
            }
            if content is not None:
                digest = sha256(content)
                self.blobs[digest] = {"sha256": digest, "size": len(content), "content": content}
                row.update(sha256=digest, size=len(content), received_at=received)
            elif name in carried:
                row.update(carried[name])
            self.attachments.append(row)

    def _arrived(self, form_id: str, instance_id: str) -> dict[str, dict]:
        """The files of a stored version that have arrived, by name."""
        sa = t.submission_attachments
        rows = self.conn.execute(
            select(sa.c.name, sa.c.sha256, sa.c.content_type, sa.c.size, sa.c.received_at).where(
                sa.c.form_id == form_id, sa.c.instance_id == instance_id, sa.c.sha256.is_not(None)
            )
        )
        return {r.name: {k: v for k, v in r._mapping.items() if k != "name"} for r in rows}

    def _version_row(
        self, parsed: ParsedSubmission, received, root_id=None, deprecated=None, form_id=None
    ) -> dict:
        """The raw version row; without a document (unreadable) only the payload is known."""
        doc = parsed.doc
        return {
            "form_id": doc.form_id if doc else form_id,
            "instance_id": doc.instance_id if doc else None,
            "root_id": root_id,
            "deprecated_id": deprecated,
            "form_version": doc.form_version if doc else None,
            "source": parsed.item.source,
            "payload_kind": parsed.kind,
            "payload": parsed.payload,
            "payload_sha256": parsed.digest,
            "received_at": received,
            "current": True,
            "submitter_name": parsed.item.submitter,
            "device_id": (parsed.item.device_id or "")[:255] or None,
        }

    def _system_values(self, doc: SubmissionDocument) -> dict:
        sysd = doc.system
        if not sysd:
            return {}
        submitter = sysd.get("submitterId")
        return {
            "central_submission_date": sysd.get("submissionDate"),
            "central_updated_at": sysd.get("updatedAt"),
            "submitter_id": str(submitter) if submitter is not None else None,
            "submitter_name": sysd.get("submitterName"),
            "device_id": sysd.get("deviceId"),
            "review_state": sysd.get("reviewState"),
            "status": sysd.get("status"),
            "deleted_at": sysd.get("deletedAt"),
            "edits": int(sysd.get("edits") or 0),
        }

    def _new(self, parsed, doc, root_id, received, deprecated) -> IngestResult:
        normalised, problems = self.normalise_live(doc, root_id)
        if parsed.generated_id:
            problems.insert(0, missing_id_problem(doc.instance_id))
        self.versions.append(self._version_row(parsed, received, root_id, deprecated))
        submission = {
            "form_id": doc.form_id,
            "root_id": root_id,
            "current_instance_id": doc.instance_id,
            "form_version": doc.form_version,
            "source": parsed.item.source,
            "encrypted": doc.encrypted,
            "edits": 0,
            "first_received_at": received,
            "updated_at": received,
            "central_submission_date": None,
            "central_updated_at": None,
            "submitter_id": None,
            "submitter_name": parsed.item.submitter,
            "device_id": (parsed.item.device_id or "")[:255] or None,
            "review_state": None,
            "status": "notDecrypted" if doc.encrypted else None,
            "deleted_at": None,
            "normalised": normalised,
        }
        submission.update(self._system_values(doc))
        self.submissions.append(submission)
        self._attachment_rows(doc, parsed.item, received)
        self.problem_rows(doc.form_id, root_id, doc.instance_id, problems)
        self.pending_ids.add((doc.form_id, doc.instance_id))
        self.pending_ids.add((doc.form_id, root_id))
        return IngestResult(CREATED, doc.form_id, doc.instance_id, root_id, normalised, problems)

    def _existing(
        self, parsed: ParsedSubmission, doc: SubmissionDocument, received
    ) -> IngestResult:
        """A resend, an edit, or a Central row seen before; pending rows are already flushed."""
        conn = self.conn
        sv = t.submission_versions
        same = conn.execute(
            select(sv).where(sv.c.form_id == doc.form_id, sv.c.instance_id == doc.instance_id)
        ).first()
        if same is not None:
            if parsed.kind == "xml" and self._deleted(doc.form_id, same.root_id):
                # As Central (409.18): a deleted submission is not brought back by a device.
                return IngestResult(
                    DELETED_RESEND,
                    doc.form_id,
                    doc.instance_id,
                    same.root_id,
                    message="This submission has been deleted. You may not resubmit it.",
                )
            if self._same_content(parsed, same):
                return self._resend(parsed, doc, same, received)
            return IngestResult(
                CONFLICT,
                doc.form_id,
                doc.instance_id,
                same.root_id,
                message="A submission already exists with this instanceID but different content.",
            )
        deprecated = doc.deprecated_id
        if doc.root_id is not None:  # Central: the row names its root; a new instanceID is an edit
            current = conn.execute(
                select(t.submissions).where(
                    t.submissions.c.form_id == doc.form_id, t.submissions.c.root_id == doc.root_id
                )
            ).first()
            if current is None:
                return self._flush_after(self._new(parsed, doc, doc.root_id, received, deprecated))
            deprecated = current.current_instance_id
            return self._edit(parsed, doc, doc.root_id, deprecated, received)
        if deprecated is None:
            return self._flush_after(self._new(parsed, doc, doc.instance_id, received, None))
        base = conn.execute(
            select(sv).where(sv.c.form_id == doc.form_id, sv.c.instance_id == deprecated)
        ).first()
        if base is None:
            return IngestResult(
                UNKNOWN_DEPRECATED,
                doc.form_id,
                doc.instance_id,
                message=f"The submission this edits ({deprecated}) is not stored here.",
            )
        if not base.current:
            return IngestResult(
                STALE_EDIT,
                doc.form_id,
                doc.instance_id,
                base.root_id,
                message=f"The edited copy ({deprecated}) is no longer the current version.",
            )
        return self._edit(parsed, doc, base.root_id, deprecated, received)

    def _deleted(self, form_id: str, root_id: str | None) -> bool:
        sub = t.submissions
        return (
            self.conn.execute(
                select(sub.c.deleted_at).where(sub.c.form_id == form_id, sub.c.root_id == root_id)
            ).scalar()
            is not None
        )

    def _same_content(self, parsed: ParsedSubmission, same) -> bool:
        """Is this the stored version again (byte-identical, or the same data from Central)?"""
        if same.payload_sha256 == parsed.digest:
            return True
        if parsed.kind == "json" and same.payload_kind == "json":
            return data_digest(json.loads(same.payload)) == data_digest(parsed.item.payload)
        if parsed.kind == same.payload_kind:
            return False
        # Received by OpenRosa and read again from Central (or the reverse): same typed rows?
        kind = same.payload_kind
        stored = json.loads(same.payload) if kind == "json" else bytes(same.payload)
        other = self.parse(Incoming(stored, same.source, same.form_id)).doc
        # OData shows an envelope only as a placeholder (no data, no files), so a placeholder
        # and an envelope of one instanceID are one submission, whichever came first (an
        # envelope after its placeholder is kept: _resend).
        if other is not None and other.encrypted and parsed.doc.encrypted:
            envelope, placeholder = (
                (other, parsed.doc) if parsed.kind == "json" else (parsed.doc, other)
            )
            return bool(envelope.files) and not placeholder.files
        form = self.forms.form(self.conn, parsed.doc.form_id)
        if other is None or form is None or not form.schemas:
            return False
        if form.raw_only or other.encrypted or parsed.doc.encrypted:
            return other.data == parsed.doc.data and other.files == parsed.doc.files
        plan = form.plan(form.latest)
        mine = document_rows(parsed.doc, plan, same.root_id)
        theirs = document_rows(other, plan, same.root_id)
        return mine.tables == theirs.tables

    def _flush_after(self, result: IngestResult) -> IngestResult:
        self.flush()
        return result

    def _edit(self, parsed, doc, root_id, deprecated, received) -> IngestResult:
        conn = self.conn
        sv = t.submission_versions
        conn.execute(
            update(sv)
            .where(sv.c.form_id == doc.form_id, sv.c.root_id == root_id)
            .values(current=False)
        )
        conn.execute(insert(sv), [self._version_row(parsed, received, root_id, deprecated)])
        self.clear_derived(doc.form_id, root_id)
        normalised, problems = self.normalise_live(doc, root_id)
        values = {
            "current_instance_id": doc.instance_id,
            "form_version": doc.form_version,
            "updated_at": received,
            "normalised": normalised,
            "encrypted": doc.encrypted,
            "edits": t.submissions.c.edits + 1,
            "review_state": "edited",  # web-queue: as Central marks an edit (its rows say theirs)
        }
        values.update(self._system_values(doc))
        conn.execute(
            update(t.submissions)
            .where(t.submissions.c.form_id == doc.form_id, t.submissions.c.root_id == root_id)
            .values(**values)
        )
        self._attachment_rows(doc, parsed.item, received, previous=deprecated)
        self.problem_rows(doc.form_id, root_id, doc.instance_id, problems)
        self.flush()
        return IngestResult(EDITED, doc.form_id, doc.instance_id, root_id, normalised, problems)

    def _resend(self, parsed, doc, same, received) -> IngestResult:
        """Identical resend: fill in attachments that were missing; Central metadata refreshed."""
        conn = self.conn
        sa = t.submission_attachments
        if parsed.kind == "xml" and same.payload_kind == "json" and doc.encrypted:
            # The envelope of a submission the sync stored as Central's placeholder (see
            # _same_content): the version's payload becomes the envelope, with its files.
            conn.execute(
                update(t.submission_versions)
                .where(t.submission_versions.c.id == same.id)
                .values(payload=parsed.payload, payload_kind="xml", payload_sha256=parsed.digest)
            )
            self._attachment_rows(doc, parsed.item, received)
            self.flush()
        missing = (
            conn.execute(
                select(sa.c.name).where(
                    sa.c.form_id == doc.form_id,
                    sa.c.instance_id == doc.instance_id,
                    sa.c.sha256.is_(None),
                )
            )
            .scalars()
            .all()
        )
        for name in missing:
            if name in parsed.item.attachments:
                content, content_type = parsed.item.attachments[name]
                fill_attachment(
                    conn, doc.form_id, doc.instance_id, name, content, content_type, received
                )
        if parsed.kind == "json" and same.payload_sha256 != parsed.digest:
            if same.payload_kind == "json":  # same data, newer __system: keep Central's latest
                conn.execute(
                    update(t.submission_versions)
                    .where(t.submission_versions.c.id == same.id)
                    .values(payload=parsed.payload, payload_sha256=parsed.digest)
                )
            if same.current:
                values = self._system_values(doc)
                values.pop("edits", None)
                was_deleted = conn.execute(
                    select(t.submissions.c.deleted_at).where(
                        t.submissions.c.form_id == doc.form_id,
                        t.submissions.c.root_id == same.root_id,
                    )
                ).scalar()
                if values.get("deleted_at") and not was_deleted:
                    self.clear_derived(doc.form_id, same.root_id)
                    values["normalised"] = DELETED
                conn.execute(
                    update(t.submissions)
                    .where(
                        t.submissions.c.form_id == doc.form_id,
                        t.submissions.c.root_id == same.root_id,
                    )
                    .values(updated_at=received, **values)
                )
                if was_deleted and not values.get("deleted_at"):  # restored in Central
                    current = conn.execute(
                        select(t.submission_versions).where(t.submission_versions.c.id == same.id)
                    ).first()
                    self.rederive(current)
        return IngestResult(DUPLICATE, doc.form_id, doc.instance_id, same.root_id)
