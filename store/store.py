"""The reporting store: the one object through which submissions and forms are written and read.

Every write is one transaction: the raw payload (verbatim), its attachments, the logical
submission, its typed rows and its problems land together or not at all. Typed rows and
problems are derived from the raw layer and can be re-derived at any time (`rebuild`).

`Store` is the front; the work is done by the modules it composes:

    form_registry.py   registered forms, their schemas, layouts and generated tables
    incoming.py        Incoming, IngestResult and the reading of a payload
    ingest.py          the batch writer: new, edited, resent and unreadable submissions
    derived_rows.py    typed rows and problems of one transaction, written with executemany
    derive.py          rebuild, and re-deriving after a form is registered
    deletions.py       deleted and restored in Central
    central_history.py past versions from Central
    attachments.py     files, stored once by sha256
    sync_state.py      watermarks of the Central sync
    review_outbox.py   review decisions waiting for Central
    erasure.py         identities erased after retention or on request, and kept erased
    queries.py         the read side
    survivors.py       a survivor's records by her code, her support unit
    outcomes.py        the statuses (str-valued enums)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Engine

from store import attachments as files
from store import (
    central_history,
    deletions,
    derive,
    erasure,
    export_rows,
    queries,
    review_outbox,
    review_queue,  # web-queue
    survivors,
    sync_runs,  # web-queue
    sync_state,
)
from store.app_users import AppUsers
from store.bulk_insert import BATCH, BulkInserts
from store.database import create_store_engine, migrate, require_current_schema
from store.erasure import RETENTION, Erasure, RetentionRun, UnknownSurvivor
from store.form_registry import FormRegistry, FormVersions, RegisterResult
from store.incoming import MAX_ID, Incoming, IngestResult
from store.ingest import ingest_many
from store.outcomes import (
    CENTRAL,
    CONFLICT,
    CREATED,
    DELETED,
    DELETED_RESEND,
    DUPLICATE,
    EDITED,
    FILE,
    NOT_TYPED,
    OPENROSA,
    RAW_ONLY,
    REFUSED,
    REJECTED,
    STALE_EDIT,
    TYPED,
    UNKNOWN_DEPRECATED,
    UNKNOWN_FORM,
    UNREADABLE,
)
from store.people import Audit, People
from store.schema import FormSchema

__all__ = [
    "BATCH",
    "CENTRAL",
    "CONFLICT",
    "CREATED",
    "DELETED",
    "DELETED_RESEND",
    "DUPLICATE",
    "EDITED",
    "FILE",
    "MAX_ID",
    "NOT_TYPED",
    "OPENROSA",
    "RAW_ONLY",
    "REFUSED",
    "REJECTED",
    "RETENTION",
    "STALE_EDIT",
    "TYPED",
    "UNKNOWN_DEPRECATED",
    "UNKNOWN_FORM",
    "UNREADABLE",
    "Erasure",
    "FormVersions",
    "Incoming",
    "IngestResult",
    "RegisterResult",
    "RetentionRun",
    "Store",
    "UnknownSurvivor",
]


class Store:
    """Forms, raw submissions, typed tables and problems in one SQL database.

    Opening never changes the schema unless asked (`upgrade=True`: `nigraan store init` and the
    server's start-up); a database behind this nigraan's migrations is refused with what to do.
    """

    def __init__(self, engine: Engine, *, upgrade: bool = False):
        self.engine = engine
        if upgrade:
            migrate(engine)
        else:
            require_current_schema(engine)
        self.forms = FormRegistry(engine, BulkInserts())
        self.app_users = AppUsers(engine)
        self.people = People(engine)  # the web app's accounts
        self.audit = Audit(engine)  # append-only

    @classmethod
    def open(cls, url: str, *, upgrade: bool = False) -> Store:
        engine = create_store_engine(url)
        try:
            return cls(engine, upgrade=upgrade)
        except Exception:
            engine.dispose()
            raise

    @classmethod
    def from_config(cls, config, *, upgrade: bool = False) -> Store:
        return cls.open(config["database.url"], upgrade=upgrade)

    def close(self) -> None:
        self.engine.dispose()

    # ---------------------------------------------------------------- forms

    def register_form(self, xform: bytes) -> RegisterResult:
        """Record a compiled XForm version and grow its tables; idempotent for the same bytes."""
        return self.forms.register(xform)

    def form_versions(self, form_id: str, version: str | None = None) -> FormVersions | None:
        """The registered versions of a form (None if unknown); looks again for a new `version`."""
        return self.forms.form_versions(form_id, version)

    def form_schemas(self, form_id: str) -> dict[str, FormSchema]:
        """{version: FormSchema} of every registered version of a form, the latest last."""
        return self.forms.schemas(form_id)

    def form_table(self, form_id: str, repeat: str = "") -> Table:
        """The SQLAlchemy Table of a form's submissions (or of one of its repeats)."""
        return self.forms.form_table(form_id, repeat)

    def form_tables(self, form_id: str) -> dict[str, Any]:
        return self.forms.form_tables(form_id)

    # ---------------------------------------------------------- submissions

    def ingest(
        self,
        payload,
        *,
        source: str = OPENROSA,
        form_id: str | None = None,
        attachments=None,
        received_at: datetime | None = None,
    ) -> IngestResult:
        """Store one submission (see Incoming); returns what happened."""
        item = Incoming(payload, source, form_id, attachments or {}, received_at)
        return self.ingest_many([item])[0]

    def ingest_many(self, items: Iterable[Incoming], batch_size: int = BATCH) -> list[IngestResult]:
        """Store submissions in transactions of `batch_size`; results in the same order."""
        return ingest_many(self.engine, self.forms, items, batch_size)

    def add_attachment(
        self,
        form_id: str,
        instance_id: str,
        name: str,
        content: bytes,
        content_type: str | None = None,
    ) -> bool:
        """Fill in an attachment the submission names; False if it names no such file."""
        return files.add_attachment(self.engine, form_id, instance_id, name, content, content_type)

    def keep_envelope(
        self, form_id: str, instance_id: str, envelope: bytes, files: Mapping[str, bytes]
    ) -> bool:
        """Keep the envelope and `.enc` files of a submission stored from OData's encrypted
        placeholder (see store.encrypted_submissions.keep_envelope); True if it was new."""
        from store.encrypted_submissions import keep_envelope

        return keep_envelope(self.engine, form_id, instance_id, envelope, files)

    def add_attachments(
        self, form_id: str, downloaded: Iterable[tuple[str, str, bytes, str | None]]
    ) -> int:
        """Many attachments, (instanceID, name, content, content type) each, in one
        transaction; returns how many the submissions name."""
        return files.add_attachments(self.engine, form_id, downloaded)

    def add_history(
        self,
        form_id: str,
        root_id: str,
        order: list[str],
        xml: Mapping[str, bytes],
        received_at: datetime | None = None,
    ) -> int:
        """Versions of a stored submission that Central holds and the store lacks (see
        store.central_history.add_history); returns how many were added."""
        return central_history.add_history(self.engine, form_id, root_id, order, xml, received_at)

    def rebuild(self, form_id: str | None = None) -> int:
        """Re-derive typed tables and problems from the raw layer; returns submissions re-read."""
        return derive.rebuild(self.engine, self.forms, form_id)

    def mark_deleted(self, form_id: str, deleted: Mapping[str, str]) -> int:
        """Submissions deleted in Central ({root id: deletedAt}) stop counting; returns how many."""
        return deletions.mark_deleted(self.engine, self.forms, form_id, deleted)

    def mark_restored(self, form_id: str, root_ids: Iterable[str]) -> int:
        """Submissions restored in Central count again: typed rows re-derived from the raw layer."""
        return deletions.mark_restored(self.engine, self.forms, form_id, root_ids)

    # ------------------------------------------------------ sync and reviews

    def sync_state(self, scope: str) -> dict[str, Any] | None:
        return sync_state.sync_state(self.engine, scope)

    def save_sync_state(self, scope: str, form_id: str, **values: Any) -> None:
        """Create or update a form's sync state (watermark, pass in progress)."""
        sync_state.save_sync_state(self.engine, scope, form_id, **values)

    def record_review(
        self,
        form_id: str,
        root_id: str,
        review_state: str | None,
        comment: str | None,
        *,
        for_central: bool = True,
    ) -> int:
        """A review decision made here: shown locally at once, queued for Central; its id."""
        return review_outbox.record_review(
            self.engine, form_id, root_id, review_state, comment, for_central=for_central
        )

    def record_decision(
        self, form_id: str, root_id: str, state: str | None, comment: str | None
    ) -> int:
        """A reviewer's decision on a stored submission (see review_outbox.record_decision)."""
        return review_outbox.record_decision(self.engine, form_id, root_id, state, comment)

    def pending_reviews(self) -> list[dict[str, Any]]:
        return review_outbox.pending_reviews(self.engine)

    def reviews(self, form_id: str | None = None, root_id: str | None = None) -> list[dict]:
        """Review decisions made here, oldest first (of one submission when given)."""
        return review_outbox.reviews(self.engine, form_id, root_id)

    def review_progress(
        self,
        outbox_id: int,
        *,
        attempt: bool = False,
        state_pushed: bool = False,
        comment_pushed: bool = False,
        done: bool = False,
        error: str | None = None,
    ) -> None:
        """Record an attempt at an outbox entry, what Central confirmed, or why it failed."""
        review_outbox.review_progress(
            self.engine,
            outbox_id,
            attempt=attempt,
            state_pushed=state_pushed,
            comment_pushed=comment_pushed,
            done=done,
            error=error,
        )

    # ------------------------------------------------- identities: retention and erasure

    def run_retention(self, key, days: int, *, dry_run: bool = False, today=None, actor=None):
        """Erase the identities of survivors whose case closed more than `days` days ago
        (store/erasure.py); a dry run only lists them. A RetentionRun."""
        return erasure.run_retention(
            self, key, days, dry_run=dry_run, today=today, actor=actor or RETENTION
        )

    def erase_identity(self, key, code: str, *, reason: str, actor: str, role=None):
        """Erase one survivor's identity now, on her request (store/erasure.py); an Erasure.
        UnknownSurvivor when none is filed under `code`."""
        return erasure.erase_identity(self, key, code, reason=reason, actor=actor, role=role)

    # ---------------------------------------------------------------- reads

    def rows(self, table_name: str) -> list[dict[str, Any]]:
        """Every row of a form table, ordered by __id (for checks and exports)."""
        return queries.rows(self.engine, self.forms, table_name)

    def problems(self, form_id: str | None = None) -> list[dict[str, Any]]:
        return queries.problems(self.engine, form_id)

    def submission(self, form_id: str, root_id: str) -> dict[str, Any] | None:
        return queries.submission(self.engine, form_id, root_id)

    def find_submissions(self, instance_id: str, form_id: str | None = None) -> list[dict]:
        """Submissions whose root id or current instanceID is `instance_id`."""
        return queries.find_submissions(self.engine, instance_id, form_id)

    def versions(self, form_id: str, root_id: str) -> list[dict[str, Any]]:
        """A submission's stored versions, oldest first."""
        return queries.versions(self.engine, form_id, root_id)

    def version_ids(self, form_id: str, root_ids: Iterable[str]) -> dict[str, list[str]]:
        """{root id: instanceIDs of its stored versions, oldest first} for stored submissions."""
        return queries.version_ids(self.engine, form_id, root_ids)

    def attachment(self, form_id: str, instance_id: str, name: str) -> bytes | None:
        return files.attachment(self.engine, form_id, instance_id, name)

    def attachments(self, form_id: str, instance_id: str) -> list[dict[str, Any]]:
        """The files a submission version names: name, whether it arrived, size, type, sha256."""
        return files.attachments(self.engine, form_id, instance_id)

    def missing_attachments(self, form_id: str) -> dict[str, list[tuple[str, str]]]:
        """Files live submissions name that are not here yet: {root id: [(instanceID, name)]}."""
        return queries.missing_attachments(self.engine, form_id)

    def root_ids(self, form_id: str, *, deleted: bool = False) -> set[str]:
        """Root ids of a form's live submissions read from Central (or of its deleted ones)."""
        return queries.root_ids(self.engine, form_id, deleted=deleted)

    def live_count(self, form_id: str) -> int:
        """Live submissions of a form that were read from Central."""
        return queries.live_count(self.engine, form_id)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per form: submissions (live), deleted ones, raw versions, problems."""
        return queries.counts(self.engine)

    # ------------------------------------------------------------- exports

    def export_form_ids(self) -> list[str]:
        """Every registered form's id (exports check which of them may leave)."""
        return export_rows.form_ids(self.engine)

    def export_columns(self, form_id: str) -> dict[tuple[str, str, str], str]:
        """The store's column of each (repeat path, field path, part) of a form."""
        return export_rows.column_map(self.engine, form_id)

    def export_pages(
        self,
        form_id: str,
        *,
        support_unit: str | None = None,
        consent: export_rows.ConsentFilter | None = None,
        page_size: int | None = None,
    ):
        """A form's live typed submissions, newest first, in pages with their repeat rows
        (store/export_rows.py); streamed, so memory stays bounded by one page."""
        return export_rows.export_pages(
            self.engine,
            form_id,
            self.form_tables(form_id),
            support_unit=support_unit,
            consent=consent,
            page_size=page_size or export_rows.PAGE_SIZE,
        )

    def export_count(self, form_id: str, support_unit: str | None = None) -> int:
        """How many submissions an export of the form holds."""
        return export_rows.live_typed_count(
            self.engine, form_id, self.form_table(form_id), support_unit
        )

    def field_catalogue(self, form_id: str) -> dict[str, dict[str, Any]]:
        """Every field's labels, kind, sensitivity and choices (form_fields, form_choices)."""
        return export_rows.field_catalogue(self.engine, form_id)

    # ------------------------------------------- web-queue: flags and the review queue

    def flags(self, form_id: str | None = None, root_id: str | None = None) -> list[dict]:
        """Cross-form check flags (store/cross_form_checks.py) of a submission, a form, or all."""
        return review_queue.flags(self.engine, form_id, root_id)

    def recheck(self) -> None:
        """Re-run every cross-form check over the whole store (rebuild does it too)."""
        from store import cross_form_checks

        with self.engine.begin() as conn:
            cross_form_checks.evaluate(conn)

    def review_queue(
        self,
        filter: review_queue.QueueFilter,
        *,
        page: int = 1,
        per_page: int = 50,
        sort: str = "received",
        descending: bool = True,
    ) -> review_queue.QueuePage:
        """A page of the review queue (store/review_queue.py), with counts per state."""
        return review_queue.queue(
            self.engine, filter, page=page, per_page=per_page, sort=sort, descending=descending
        )

    # ------------------------------------------------------- a survivor's records

    def survivor(self, code: str) -> survivors.Survivor | None:
        """A survivor's live submissions of the survivor forms and her support unit (her
        registration's), by her code; None when none carries it."""
        return survivors.survivor(self.engine, code)

    def survivor_code(self, form_id: str, root_id: str) -> str | None:
        """The survivor code of a survivor-form submission (None for other forms)."""
        return survivors.survivor_code(self.engine, form_id, root_id)

    def support_unit(self, form_id: str, root_id: str) -> str | None:
        """The support unit a submission belongs to; a case closure's is her registration's."""
        return survivors.support_unit(self.engine, form_id, root_id)

    # ------------------------------------------- web-queue: the scheduled sync's lease and log

    def take_sync_lease(self, holder: str, seconds: float, now: datetime | None = None) -> bool:
        """One Central sync at a time across processes: True if `holder` now holds it."""
        return sync_runs.take_lease(self.engine, holder, seconds, now)

    def release_sync_lease(self, holder: str) -> None:
        sync_runs.release_lease(self.engine, holder)

    def start_sync_run(self, trigger: str, now: datetime | None = None) -> int:
        return sync_runs.start_run(self.engine, trigger, now)

    def finish_sync_run(
        self, run_id: int, *, ok: bool, now: datetime | None = None, **values: Any
    ) -> None:
        sync_runs.finish_run(self.engine, run_id, ok=ok, now=now, **values)

    def sync_status(self, now: datetime | None = None) -> dict[str, Any]:
        """When the store last synced with Central, what came in, any failure, whether a sync
        runs now (the queue page shows it)."""
        return sync_runs.sync_status(self.engine, now)
