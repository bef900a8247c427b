"""The reporting store: the one object through which submissions and forms are written and read.

Every write is one transaction: the raw payload (verbatim), its attachments, the logical
submission, its typed rows and its problems land together or not at all. Typed rows and
problems are derived from the raw layer and can be re-derived at any time (`rebuild`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Table, and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from nigraan.errors import FormError
from store import layout as lay
from store import schema as s
from store import tables as t
from store.app_users import AppUsers
from store.database import create_store_engine, migrate
from store.document import SubmissionDocument, SubmissionError, from_odata, from_openrosa_xml
from store.form_tables import build_tables, create_missing, recreate
from store.rows import Problem, RowPlan, document_rows

OPENROSA, CENTRAL, FILE = "openrosa", "central", "file"
# Outcomes of ingest. The last three store nothing: the sender keeps its copy and is told why.
CREATED, EDITED, DUPLICATE, UNREADABLE = "created", "edited", "duplicate", "unreadable"
CONFLICT, STALE_EDIT, UNKNOWN_DEPRECATED = "conflict", "stale_edit", "unknown_deprecated"
DELETED_RESEND = "deleted_resend"  # a device sends again what was deleted in Central
REFUSED = "refused"  # could not be stored whole, and the sender keeps its copy (all_or_nothing)
REJECTED = frozenset({CONFLICT, STALE_EDIT, UNKNOWN_DEPRECATED, DELETED_RESEND, REFUSED})
TYPED, RAW_ONLY, UNKNOWN_FORM, NOT_TYPED = "typed", "raw_only", "unknown_form", "not_typed"
DELETED = "deleted"  # deleted in Central: kept raw, no typed rows until restored
MAX_ID = 255  # form ids, versions, instanceIDs, file names: longer ones are not stored as such
BATCH = 1000  # submissions per transaction: fewer commits, bounded memory


@dataclass
class Incoming:
    """A submission as received: instance XML bytes (OpenRosa) or an OData row (Central)."""

    payload: bytes | Mapping[str, Any]
    source: str = OPENROSA
    form_id: str | None = None  # required for OData rows, which do not name their form
    attachments: Mapping[str, tuple[bytes, str | None]] = field(default_factory=dict)
    received_at: datetime | None = None
    submitter: str | None = None  # the device account that sent it (OpenRosa server)
    device_id: str | None = None  # Collect's deviceID query parameter
    # The sender keeps its copy (a device): refuse what cannot be stored whole (REFUSED) instead
    # of keeping it raw and unread, as a file load or a sync must.
    all_or_nothing: bool = False


@dataclass
class IngestResult:
    status: str
    form_id: str | None = None
    instance_id: str | None = None
    root_id: str | None = None
    normalised: str | None = None
    problems: list[Problem] = field(default_factory=list)
    message: str = ""


@dataclass
class RegisterResult:
    form_id: str
    version: str
    status: str  # new_form | new_version | unchanged
    new_columns: int = 0
    renormalised: int = 0


@dataclass(frozen=True)
class FormVersions:
    """What the OpenRosa server needs to accept a submission: the versions and encryption."""

    form_id: str
    versions: frozenset[str]
    encrypted: bool
    key_bytes: Mapping[str, int | None] = field(default_factory=dict)  # per version: RSA size


@dataclass
class _Form:
    form_id: str
    raw_only: bool
    latest: str
    schemas: dict[str, s.FormSchema]
    layout: lay.FormLayout | None
    tables: dict[str, Any] = field(default_factory=dict)
    plans: dict[str, RowPlan] = field(default_factory=dict)

    def schema_for(self, version: str | None) -> s.FormSchema:
        """The schema of `version`, or of the latest version when it was never registered."""
        return self.schemas.get(version or "") or self.schemas[self.latest]

    def plan(self, version: str) -> RowPlan:
        if version not in self.plans:
            self.plans[version] = RowPlan(self.schemas[version], self.layout)
        return self.plans[version]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_bytes(row: Mapping[str, Any], sort_keys: bool = False) -> bytes:
    try:
        return orjson.dumps(row, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError:  # an integer beyond 64 bits, which orjson cannot write: kept as sent
        text = json.dumps(row, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)
        return text.encode("utf-8")


def _data_digest(row: Mapping[str, Any]) -> str:
    """Digest of an OData row without __system: equal when only review state etc. changed."""
    data = {k: v for k, v in row.items() if k != "__system"}
    return _sha256(_json_bytes(data, sort_keys=True))


def _labels_json(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(labels), ensure_ascii=False, sort_keys=True)


def _label(labels: Mapping[str, str], lang: str) -> str | None:
    if lang in labels:
        return labels[lang]
    return labels.get("default") if lang == "en" else None


class Store:
    """Forms, raw submissions, typed tables and problems in one SQL database."""

    def __init__(self, engine: Engine, *, upgrade: bool = True):
        self.engine = engine
        if upgrade:
            migrate(engine)
        self._inserts: dict[Table, _BulkInsert] = {}
        self._forms: dict[str, _Form] = {}
        self._loaded = False
        self._forms_lock = threading.RLock()  # the server reads the form cache from many threads
        self.app_users = AppUsers(engine)

    @classmethod
    def open(cls, url: str, **kwargs) -> Store:
        return cls(create_store_engine(url), **kwargs)

    @classmethod
    def from_config(cls, config) -> Store:
        return cls.open(config["database.url"])

    def close(self) -> None:
        self.engine.dispose()

    # ---------------------------------------------------------------- forms

    def _load_forms(self, conn: Connection) -> None:
        if self._loaded:
            return
        versions: dict[str, dict[str, s.FormSchema]] = {}
        for row in conn.execute(select(t.form_versions).order_by(t.form_versions.c.seq)):
            versions.setdefault(row.form_id, {})[row.version] = s.parse_xform(row.xform)
        layouts: dict[str, lay.FormLayout] = {}
        for row in conn.execute(select(t.form_tables)):
            layout = layouts.setdefault(row.form_id, lay.FormLayout(row.form_id))
            layout.tables[row.repeat_path] = row.table_name
            if row.repeat_path:
                layout.parents[row.repeat_path] = row.parent_repeat_path or ""
        columns = select(t.form_columns).order_by(t.form_columns.c.position)
        for row in conn.execute(columns):
            layouts[row.form_id].columns[(row.repeat_path, row.field_path, row.part)] = lay.Column(
                row.table_name, row.column_name, row.repeat_path, row.field_path, row.part,
                row.storage,
            )  # fmt: skip
        for row in conn.execute(select(t.forms)):
            form = _Form(
                row.form_id, row.raw_only, row.latest_version, versions.get(row.form_id, {}),
                layouts.get(row.form_id),
            )  # fmt: skip
            if form.layout is not None:
                form.tables = build_tables(form.layout)
            self._forms[row.form_id] = form
        self._loaded = True

    def _form(
        self, conn: Connection, form_id: str | None, version: str | None = None
    ) -> _Form | None:
        """The form as registered; re-read when another process registered it (or `version`)."""
        with self._forms_lock:
            return self._cached_form(conn, form_id, version)

    def _cached_form(self, conn: Connection, form_id, version) -> _Form | None:
        self._load_forms(conn)
        if not form_id:
            return None
        form = self._forms.get(form_id)
        if form is None or (version is not None and version not in form.schemas):
            query = select(t.form_versions.c.seq).where(t.form_versions.c.form_id == form_id)
            if version is not None:
                query = query.where(t.form_versions.c.version == version)
            if conn.execute(query.limit(1)).first() is not None:
                self._forms.clear()
                self._loaded = False
                self._load_forms(conn)
                form = self._forms.get(form_id)
        return form

    def form_versions(self, form_id: str, version: str | None = None) -> FormVersions | None:
        """The registered versions of a form (None if unknown); looks again for a new `version`."""
        form = self._forms.get(form_id)  # versions are never unregistered: a hit needs no SQL
        if form is None or version is None or version not in form.schemas:
            with self.engine.connect() as conn:
                form = self._form(conn, form_id, version)
        if form is None:
            return None
        encrypted = any(schema.encrypted for schema in form.schemas.values())
        key_bytes = {version: schema.key_bytes for version, schema in form.schemas.items()}
        return FormVersions(form.form_id, frozenset(form.schemas), encrypted, key_bytes)

    def register_form(self, xform: bytes) -> RegisterResult:
        """Record a compiled XForm version and grow its tables; idempotent for the same bytes.

        A version already registered with different bytes is refused: ODK clients cache forms by
        version, so a changed form needs a new version.
        """
        schema = s.parse_xform(xform)
        digest = _sha256(xform)
        try:
            with self.engine.begin() as conn:
                return self._register(conn, schema, xform, digest)
        except Exception as exc:
            self._forms.clear()  # the cache may hold what the rollback undid
            self._loaded = False
            if isinstance(exc, DBAPIError) and not exc.connection_invalidated:
                reason = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
                raise FormError(  # nothing of the form was kept: say which form and why
                    f"Form '{schema.form_id}' version '{schema.version}' could not be registered:"
                    f" the database refused it ({reason}).",
                    hint="Nothing of this form was stored; other forms are not affected. Unless "
                    "the database was briefly unavailable, report it with the form's .xml file.",
                ) from exc
            raise

    def _register(self, conn, schema: s.FormSchema, xform: bytes, digest: str) -> RegisterResult:
        self._load_forms(conn)
        existing = conn.execute(
            select(t.form_versions.c.xform_sha256).where(
                t.form_versions.c.form_id == schema.form_id,
                t.form_versions.c.version == schema.version,
            )
        ).scalar()
        if existing == digest:
            return RegisterResult(schema.form_id, schema.version, "unchanged")
        if existing is not None:
            raise FormError(
                f"Form '{schema.form_id}' version '{schema.version}' is already registered with "
                "different content.",
                hint="Give the changed form a new version (settings sheet, YYYYMMDDNN) and build "
                "it again.",
            )
        now = t.utcnow()
        form = self._forms.get(schema.form_id)
        raw_only = schema.raw_only or (form is not None and form.raw_only)
        if form is None:
            conn.execute(
                insert(t.forms).values(
                    form_id=schema.form_id, title=schema.title, latest_version=schema.version,
                    encrypted=schema.encrypted, raw_only=raw_only, registered_at=now,
                )
            )  # fmt: skip
            form = _Form(schema.form_id, raw_only, schema.version, {}, None)
            self._forms[schema.form_id] = form
            status = "new_form"
        else:
            conn.execute(
                update(t.forms)
                .where(t.forms.c.form_id == schema.form_id)
                .values(
                    title=schema.title, latest_version=schema.version, raw_only=raw_only,
                    encrypted=schema.encrypted,
                )
            )  # fmt: skip
            status = "new_version"
        conn.execute(
            insert(t.form_versions).values(
                form_id=schema.form_id, version=schema.version, xform=xform, xform_sha256=digest,
                registered_at=now,
            )
        )  # fmt: skip
        form.schemas[schema.version] = schema
        form.latest = schema.version
        form.raw_only = raw_only
        form.plans.clear()
        self._write_field_metadata(conn, form)
        result = RegisterResult(schema.form_id, schema.version, status)
        if raw_only:
            return result  # identities and encrypted data never reach plain typed tables
        taken = set(conn.execute(select(t.form_tables.c.table_name)).scalars())
        taken |= set(t.metadata.tables)  # a form 'versions' must not get `form_versions`
        change = lay.plan_layout(schema, form.layout, taken)
        form.layout = change.layout
        form.tables = create_missing(conn, change)
        self._write_layout(conn, form.layout)
        result.new_columns = len(change.new_columns)
        if change.widened:
            recreate(conn, form.tables)
            result.renormalised = self._derive(conn, form.form_id)
        else:
            result.renormalised = self._derive(conn, form.form_id, only_unsettled=True)
        return result

    def _write_layout(self, conn: Connection, layout: lay.FormLayout) -> None:
        form_id = layout.form_id
        conn.execute(delete(t.form_columns).where(t.form_columns.c.form_id == form_id))
        conn.execute(delete(t.form_tables).where(t.form_tables.c.form_id == form_id))
        conn.execute(
            insert(t.form_tables),
            [
                {"table_name": name, "form_id": form_id, "repeat_path": repeat,
                 "parent_repeat_path": layout.parents.get(repeat) if repeat else None}
                for repeat, name in layout.tables.items()
            ],
        )  # fmt: skip
        if not layout.columns:  # only notes: executing an empty list would insert one blank row
            return
        conn.execute(
            insert(t.form_columns),
            [
                {"table_name": c.table, "column_name": c.name, "form_id": form_id,
                 "repeat_path": c.repeat, "field_path": c.path, "part": c.part,
                 "storage": c.storage, "position": i}
                for i, c in enumerate(layout.columns.values())
            ],
        )  # fmt: skip

    def _write_field_metadata(self, conn: Connection, form: _Form) -> None:
        """Labels (English, Urdu), kind and sensitivity of every field any version had."""
        fields: dict[str, dict[str, Any]] = {}
        choices: dict[tuple[str, str], dict[str, Any]] = {}
        for version, schema in form.schemas.items():  # registration order: later wins
            for position, f in enumerate(schema.fields):
                entry = fields.get(f.path)
                fields[f.path] = {
                    "form_id": form.form_id, "field_path": f.path, "repeat_path": f.repeat,
                    "kind": f.kind, "bind_type": f.bind_type, "sensitivity": f.sensitivity,
                    "restricted": f.restricted, "label_en": _label(f.labels, "en"),
                    "label_ur": _label(f.labels, "ur"), "labels": _labels_json(f.labels),
                    "position": position,
                    "first_version": entry["first_version"] if entry else version,
                    "last_version": version, "in_latest_version": version == form.latest,
                }  # fmt: skip
                for i, c in enumerate(f.choices):
                    choices[(f.path, c.name)] = {
                        "form_id": form.form_id, "field_path": f.path, "name": c.name,
                        "label_en": _label(c.labels, "en"), "label_ur": _label(c.labels, "ur"),
                        "labels": _labels_json(c.labels), "position": i,
                    }  # fmt: skip
        for entry in fields.values():
            entry["in_latest_version"] = entry["last_version"] == form.latest
        conn.execute(delete(t.form_fields).where(t.form_fields.c.form_id == form.form_id))
        conn.execute(delete(t.form_choices).where(t.form_choices.c.form_id == form.form_id))
        if fields:
            conn.execute(insert(t.form_fields), list(fields.values()))
        if choices:
            conn.execute(insert(t.form_choices), list(choices.values()))

    def form_table(self, form_id: str, repeat: str = ""):
        """The SQLAlchemy Table of a form's submissions (or of one of its repeats)."""
        with self.engine.connect() as conn:
            form = self._form(conn, form_id)
        if form is None or repeat not in form.tables:
            raise FormError(
                f"Form '{form_id}' has no typed table for {repeat or 'its submissions'!r}.",
                hint="Register the form first (`nigraan store init`); identity forms stay raw.",
            )
        return form.tables[repeat]

    def form_tables(self, form_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            form = self._form(conn, form_id)
        return dict(form.tables) if form else {}

    # ---------------------------------------------------------- submissions

    def ingest(self, payload, *, source: str = OPENROSA, form_id: str | None = None,
               attachments=None, received_at: datetime | None = None) -> IngestResult:  # fmt: skip
        """Store one submission (see Incoming); returns what happened."""
        item = Incoming(payload, source, form_id, attachments or {}, received_at)
        return self.ingest_many([item])[0]

    def ingest_many(self, items: Iterable[Incoming], batch_size: int = BATCH) -> list[IngestResult]:
        """Store submissions in transactions of `batch_size`; results in the same order."""
        results: list[IngestResult] = []
        batch: list[Incoming] = []
        for item in items:
            batch.append(item)
            if len(batch) >= batch_size:
                results += self._ingest_batch(batch)
                batch = []
        if batch:
            results += self._ingest_batch(batch)
        return results

    def _ingest_batch(self, items: list[Incoming]) -> list[IngestResult]:
        with self.engine.begin() as conn:
            writer = _BatchWriter(self, conn)
            parsed = [writer.parse(item) for item in items]
            writer.prefetch(parsed)
            results = [writer.add(p) for p in parsed]
            writer.flush()
        return results

    def add_attachment(self, form_id: str, instance_id: str, name: str, content: bytes,
                       content_type: str | None = None) -> bool:  # fmt: skip
        """Fill in an attachment the submission names; False if it names no such file."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(t.submission_attachments.c.sha256).where(
                    t.submission_attachments.c.form_id == form_id,
                    t.submission_attachments.c.instance_id == instance_id,
                    t.submission_attachments.c.name == name,
                )
            ).first()
            if row is None:
                return False
            self._fill_attachment(conn, form_id, instance_id, name, content, content_type)
        return True

    def _fill_attachment(self, conn, form_id, instance_id, name, content, content_type,
                         received: datetime | None = None) -> None:  # fmt: skip
        """Store a file once by sha256 and link it to the submission version that names it."""
        sa = t.submission_attachments
        digest = _sha256(content)
        blob = {"sha256": digest, "size": len(content), "content": content}
        _insert_ignore(conn, t.blobs, [blob])
        conn.execute(
            update(sa)
            .where(sa.c.form_id == form_id, sa.c.instance_id == instance_id, sa.c.name == name)
            .values(sha256=digest, size=len(content), content_type=_content_type(content_type),
                    received_at=received or t.utcnow())
        )  # fmt: skip

    def attachment(self, form_id: str, instance_id: str, name: str) -> bytes | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(t.blobs.c.content)
                .join(
                    t.submission_attachments, t.submission_attachments.c.sha256 == t.blobs.c.sha256
                )
                .where(
                    t.submission_attachments.c.form_id == form_id,
                    t.submission_attachments.c.instance_id == instance_id,
                    t.submission_attachments.c.name == name,
                )
            ).scalar()

    def _bulk_insert(self, conn: Connection, table: Table, rows: list) -> None:
        if not rows:
            return
        insert_ = self._inserts.get(table)
        if insert_ is None:
            insert_ = self._inserts[table] = _BulkInsert(table, conn.dialect)
        insert_(conn, rows)

    # -------------------------------------------------------------- rebuild

    def rebuild(self, form_id: str | None = None) -> int:
        """Re-derive typed tables and problems from the raw layer; returns submissions re-read."""
        with self.engine.begin() as conn:
            self._load_forms(conn)
            form_ids = [form_id] if form_id else sorted(self._forms)
            total = 0
            for fid in form_ids:
                form = self._forms.get(fid)
                if form is None:
                    raise FormError(
                        f"No form '{fid}' is registered.", hint="See `nigraan store status`."
                    )
                if form.tables:
                    recreate(conn, form.tables)
                total += self._derive(conn, fid)
            if form_id is None:  # submissions of forms never registered, and unreadable ones
                known = list(self._forms)
                conn.execute(
                    delete(t.problems).where(
                        or_(t.problems.c.form_id.is_(None), t.problems.c.form_id.not_in(known))
                    )
                )
                total += self._rederive(
                    conn, or_(t.submission_versions.c.form_id.is_(None),
                              t.submission_versions.c.form_id.not_in(known))
                )  # fmt: skip
        return total

    def _current_versions(self, conn: Connection, where) -> Iterator[Any]:
        last = 0
        while True:
            rows = conn.execute(
                select(t.submission_versions)
                .where(where, t.submission_versions.c.current, t.submission_versions.c.id > last)
                .order_by(t.submission_versions.c.id)
                .limit(BATCH)
            ).all()
            if not rows:
                return
            yield from rows
            last = rows[-1].id

    def _derive(self, conn: Connection, form_id: str, only_unsettled: bool = False) -> int:
        """(Re)write typed rows and problems of a form's submissions from their raw versions."""
        where = t.submission_versions.c.form_id == form_id
        if only_unsettled:
            unsettled = select(t.submissions.c.root_id).where(
                t.submissions.c.form_id == form_id,
                or_(t.submissions.c.normalised == UNKNOWN_FORM,
                    t.submissions.c.root_id.in_(
                        select(t.problems.c.root_id).where(
                            t.problems.c.form_id == form_id,
                            t.problems.c.code.in_(["unknown_version", "unknown_field"]),
                        )
                    )),
            )  # fmt: skip
            where = and_(where, t.submission_versions.c.root_id.in_(unsettled))
        else:
            conn.execute(delete(t.problems).where(t.problems.c.form_id == form_id))
        return self._rederive(conn, where)

    def _rederive(self, conn: Connection, where) -> int:
        """Typed rows and problems of every current, not deleted, version matching `where`."""
        sub, sv = t.submissions, t.submission_versions
        deleted = (
            select(sub.c.id)
            .where(sub.c.form_id == sv.c.form_id, sub.c.root_id == sv.c.root_id,
                   sub.c.deleted_at.is_not(None))
            .exists()
        )  # fmt: skip
        where = and_(where, ~deleted)
        writer = _BatchWriter(self, conn)
        count = 0
        for version in self._current_versions(conn, where):
            writer.rederive(version)
            count += 1
        writer.flush()
        return count

    # ------------------------------------------------- deletions and restores

    def mark_deleted(self, form_id: str, deleted: Mapping[str, str]) -> int:
        """Submissions deleted in Central ({root id: deletedAt}) stop counting; returns how many.

        The raw versions stay, so a restore (or a rebuild) brings the typed rows back.
        """
        sub = t.submissions
        changed = 0
        with self.engine.begin() as conn:
            writer = _BatchWriter(self, conn)
            for root_id, deleted_at in deleted.items():
                done = conn.execute(
                    update(sub)
                    .where(sub.c.form_id == form_id, sub.c.root_id == root_id,
                           sub.c.deleted_at.is_(None))
                    .values(deleted_at=deleted_at or t.utcnow().isoformat(), normalised=DELETED)
                ).rowcount  # fmt: skip
                if done:
                    writer._clear_derived(form_id, root_id)
                    changed += 1
        return changed

    def mark_restored(self, form_id: str, root_ids: Iterable[str]) -> int:
        """Submissions restored in Central count again: typed rows re-derived from the raw layer."""
        sub, sv = t.submissions, t.submission_versions
        restored: list[str] = []
        with self.engine.begin() as conn:
            for root_id in root_ids:
                done = conn.execute(
                    update(sub)
                    .where(sub.c.form_id == form_id, sub.c.root_id == root_id,
                           sub.c.deleted_at.is_not(None))
                    .values(deleted_at=None)
                ).rowcount  # fmt: skip
                if done:
                    restored.append(root_id)
            for i in range(0, len(restored), BATCH):
                chunk = restored[i : i + BATCH]
                self._rederive(conn, and_(sv.c.form_id == form_id, sv.c.root_id.in_(chunk)))
        return len(restored)

    def root_ids(self, form_id: str, *, deleted: bool = False) -> set[str]:
        """Root ids of a form's live submissions read from Central (or of its deleted ones)."""
        sub = t.submissions
        flag = sub.c.deleted_at.is_not(None) if deleted else sub.c.deleted_at.is_(None)
        query = select(sub.c.root_id).where(
            sub.c.form_id == form_id, flag, sub.c.central_submission_date.is_not(None)
        )
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def live_count(self, form_id: str) -> int:
        """Live submissions of a form that were read from Central."""
        sub = t.submissions
        query = select(func.count()).where(
            sub.c.form_id == form_id, sub.c.deleted_at.is_(None),
            sub.c.central_submission_date.is_not(None),
        )  # fmt: skip
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def find_submissions(self, instance_id: str, form_id: str | None = None) -> list[dict]:
        """Submissions whose root id or current instanceID is `instance_id`."""
        sub = t.submissions
        query = select(sub).where(
            or_(sub.c.root_id == instance_id, sub.c.current_instance_id == instance_id)
        )
        if form_id:
            query = query.where(sub.c.form_id == form_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def missing_attachments(self, form_id: str) -> dict[str, list[tuple[str, str]]]:
        """Files the current versions of live submissions name but that are not here yet.

        {root id: [(instanceID, file name)]}.
        """
        sub, sa = t.submissions, t.submission_attachments
        query = (
            select(sub.c.root_id, sa.c.instance_id, sa.c.name)
            .join(sa, and_(sa.c.form_id == sub.c.form_id,
                           sa.c.instance_id == sub.c.current_instance_id))
            .where(sub.c.form_id == form_id, sub.c.deleted_at.is_(None), sa.c.sha256.is_(None))
            .order_by(sub.c.root_id, sa.c.name)
        )  # fmt: skip
        missing: dict[str, list[tuple[str, str]]] = {}
        with self.engine.connect() as conn:
            for root_id, instance_id, name in conn.execute(query):
                missing.setdefault(root_id, []).append((instance_id, name))
        return missing

    # ------------------------------------------------------------ sync state

    def sync_state(self, scope: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.sync_state).where(t.sync_state.c.scope == scope)).first()
        return dict(row._mapping) if row else None

    def save_sync_state(self, scope: str, form_id: str, **values: Any) -> None:
        """Create or update a form's sync state (watermark, pass in progress)."""
        ss = t.sync_state
        values["updated_at"] = t.utcnow()
        with self.engine.begin() as conn:
            done = conn.execute(update(ss).where(ss.c.scope == scope).values(**values)).rowcount
            if not done:
                conn.execute(insert(ss).values(scope=scope, form_id=form_id, **values))

    # ---------------------------------------------------------- review outbox

    def record_review(self, form_id: str, root_id: str, review_state: str | None,
                      comment: str | None, *, for_central: bool = True) -> int:  # fmt: skip
        """A review decision made here: shown locally at once, queued for Central; its id.

        A submission that never came from Central (received by nigraan's own server) has no
        Central to tell: the decision is kept (comment included) but never pushed.
        """
        now = t.utcnow()
        with self.engine.begin() as conn:
            if review_state:
                conn.execute(
                    update(t.submissions)
                    .where(t.submissions.c.form_id == form_id,
                           t.submissions.c.root_id == root_id)
                    .values(review_state=review_state)
                )  # fmt: skip
            local = {} if for_central else {"done_at": now, "last_error": "not from Central"}
            return conn.execute(
                insert(t.review_outbox).values(
                    form_id=form_id, root_id=root_id, review_state=review_state,
                    comment=comment, created_at=now, attempts=0, **local,
                )
            ).inserted_primary_key[0]  # fmt: skip

    def pending_reviews(self) -> list[dict[str, Any]]:
        ro = t.review_outbox
        with self.engine.connect() as conn:
            rows = conn.execute(select(ro).where(ro.c.done_at.is_(None)).order_by(ro.c.id))
            return [dict(r._mapping) for r in rows]

    def reviews(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.review_outbox).order_by(t.review_outbox.c.id))
            return [dict(r._mapping) for r in rows]

    def review_progress(self, outbox_id: int, *, attempt: bool = False,
                        state_pushed: bool = False, comment_pushed: bool = False,
                        done: bool = False, error: str | None = None) -> None:  # fmt: skip
        """Record an attempt at an outbox entry, what Central confirmed, or why it failed."""
        ro = t.review_outbox
        now = t.utcnow()
        values: dict[str, Any] = {"attempts": ro.c.attempts + 1} if attempt else {}
        if error:
            values["last_error"] = error
        if state_pushed:
            values["state_pushed_at"] = now
        if comment_pushed:
            values["comment_pushed_at"] = now
        if done:
            values["done_at"] = now
            values["last_error"] = None
        with self.engine.begin() as conn:
            conn.execute(update(ro).where(ro.c.id == outbox_id).values(**values))

    # ---------------------------------------------------------------- reads

    def rows(self, table_name: str) -> list[dict[str, Any]]:
        """Every row of a form table, ordered by __id (for checks and exports)."""
        with self.engine.connect() as conn:
            self._load_forms(conn)
        table = next(
            (tb for f in self._forms.values() for tb in f.tables.values() if tb.name == table_name),
            None,
        )
        if table is None:
            raise FormError(f"No form table named '{table_name}'.")
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c["__id"]))]

    def problems(self, form_id: str | None = None) -> list[dict[str, Any]]:
        query = select(t.problems).order_by(t.problems.c.id)
        if form_id:
            query = query.where(t.problems.c.form_id == form_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def submission(self, form_id: str, root_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.submissions).where(
                    t.submissions.c.form_id == form_id, t.submissions.c.root_id == root_id
                )
            ).first()
        return dict(row._mapping) if row else None

    def attachments(self, form_id: str, instance_id: str) -> list[dict[str, Any]]:
        """The files a submission version names, as Central lists them: name and whether the
        file has arrived (plus its size, type and sha256)."""
        sa = t.submission_attachments
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(sa.c.name, sa.c.sha256, sa.c.size, sa.c.content_type)
                .where(sa.c.form_id == form_id, sa.c.instance_id == instance_id)
                .order_by(sa.c.name)
            )  # fmt: skip
            return [{**r._mapping, "exists": r.sha256 is not None} for r in rows]

    def version_ids(self, form_id: str, root_ids: Iterable[str]) -> dict[str, list[str]]:
        """{root id: instanceIDs of its stored versions, oldest first} for stored submissions."""
        sv, sub = t.submission_versions, t.submissions
        wanted = list(dict.fromkeys(root_ids))
        out: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), BATCH):
                chunk = wanted[i : i + BATCH]
                stored = select(sub.c.root_id).where(sub.c.form_id == form_id,
                                                     sub.c.root_id.in_(chunk))  # fmt: skip
                out.update((root, []) for root in conn.execute(stored).scalars())
                for root, instance_id in conn.execute(
                    select(sv.c.root_id, sv.c.instance_id)
                    .where(sv.c.form_id == form_id, sv.c.root_id.in_(chunk))
                    .order_by(sv.c.id)
                ):  # fmt: skip
                    out.setdefault(root, []).append(instance_id)
        return out

    def add_history(
        self, form_id: str, root_id: str, order: list[str], xml: Mapping[str, bytes],
        received_at: datetime | None = None,
    ) -> int:  # fmt: skip
        """Versions of a stored submission that Central holds and the store lacks.

        `order` is every instanceID Central lists for the submission, oldest first; `xml` the
        instance XML (as Central serves it) of the ones not stored. They are stored verbatim as
        past versions: the current version, its typed rows and problems stay as they are.
        Versions keep Central's order in the store (`versions()` reads them by id): stored ones
        that Central lists after a missing one are written again after it, unchanged but for
        `deprecated_id`, which becomes the version before it in Central's order (for a Central
        row nigraan had only guessed it: the version it knew before). Returns how many were
        added.
        """
        sv = t.submission_versions
        received = received_at or t.utcnow()
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(t.submissions.c.id).where(
                    t.submissions.c.form_id == form_id, t.submissions.c.root_id == root_id
                )
            ).first()
            if exists is None:
                return 0
            stored = {
                r.instance_id: r
                for r in conn.execute(
                    select(sv).where(sv.c.form_id == form_id, sv.c.root_id == root_id)
                )
            }
            taken = set(
                conn.execute(
                    select(sv.c.instance_id).where(
                        sv.c.form_id == form_id, sv.c.instance_id.in_(list(xml) or [""])
                    )
                ).scalars()
            )  # another submission's version: never moved here
            new = [i for i in order if i not in stored and i in xml and i not in taken]
            if not new:
                return 0
            first = order.index(new[0])
            rows: list[dict] = []
            moved: list[int] = []
            for position in range(first, len(order)):
                instance_id = order[position]
                previous = order[position - 1] if position else None
                if instance_id in stored:
                    row = dict(stored[instance_id]._mapping)
                    moved.append(row.pop("id"))
                    row["deprecated_id"] = previous
                    rows.append(row)
                elif instance_id in new:
                    rows.append(self._history_row(form_id, root_id, instance_id, previous,
                                                  xml[instance_id], received))  # fmt: skip
            if moved:
                conn.execute(delete(sv).where(sv.c.id.in_(moved)))
            for row in rows:  # one by one: ids in this order
                conn.execute(insert(sv).values(**row))
        return len(new)

    @staticmethod
    def _history_row(form_id, root_id, instance_id, previous, payload: bytes, received) -> dict:
        """A past version from Central's history: raw XML, not current, not typed."""
        try:
            doc = from_openrosa_xml(payload, with_data=False)
        except SubmissionError:
            doc = None  # kept all the same: the raw layer holds whatever Central held
        return {
            "form_id": form_id, "instance_id": instance_id, "root_id": root_id,
            "deprecated_id": (doc.deprecated_id if doc else None) or previous,
            "form_version": doc.form_version if doc else None, "source": CENTRAL,
            "payload_kind": "xml", "payload": payload, "payload_sha256": _sha256(payload),
            "received_at": received, "current": False,
        }  # fmt: skip

    def versions(self, form_id: str, root_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.submission_versions)
                .where(t.submission_versions.c.form_id == form_id,
                       t.submission_versions.c.root_id == root_id)
                .order_by(t.submission_versions.c.id)
            )  # fmt: skip
            return [dict(r._mapping) for r in rows]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per form: submissions (live), deleted ones, raw versions, problems."""
        out: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            sub = t.submissions
            for form_id, n in conn.execute(
                select(sub.c.form_id, func.count())
                .where(sub.c.deleted_at.is_not(None))
                .group_by(sub.c.form_id)
            ):
                out.setdefault(form_id, {})["deleted"] = n
            live = select(sub).where(sub.c.deleted_at.is_(None)).subquery()
            for table, key in (
                (live, "submissions"),
                (t.submission_versions, "versions"),
                (t.problems, "problems"),
            ):
                for form_id, n in conn.execute(
                    select(table.c.form_id, func.count()).group_by(table.c.form_id)
                ):
                    out.setdefault(form_id or "(unreadable)", {})[key] = n
        return out


class _BulkInsert:
    """executemany straight through the DBAPI, with each column's SQLAlchemy bind processor.

    Importing is dominated by per-value overhead; this keeps SQLAlchemy's type handling (the
    same processors Core would run) without its per-row statement machinery.
    """

    def __init__(self, table: Table, dialect):
        serial = table.autoincrement_column  # the database numbers these rows
        columns = [c for c in table.columns if c is not serial]
        self.names = [c.name for c in columns]
        quote = dialect.identifier_preparer.quote
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self.sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in self.names)}) "
            f"VALUES ({', '.join([mark] * len(columns))})"
        )
        self.processors = [
            (k, processor)
            for k, c in enumerate(columns)
            if (processor := c.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]

    def __call__(self, conn: Connection, rows: list) -> None:
        """Insert rows: dicts by column name, or lists already in the table's column order."""
        if isinstance(rows[0], dict):
            names = self.names
            rows = [[row.get(n) for n in names] for row in rows]
        processors = self.processors
        if processors:
            for row in rows:
                for k, process in processors:
                    value = row[k]
                    if value is not None:
                        row[k] = process(value)
        conn.exec_driver_sql(self.sql, [tuple(row) for row in rows])


def _insert_ignore(conn: Connection, table, rows: list[dict]) -> None:
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).on_conflict_do_nothing(), rows)


@dataclass
class _Parsed:
    item: Incoming
    doc: SubmissionDocument | None
    payload: bytes
    kind: str
    digest: str
    error: str | None = None  # why the payload could not be read
    generated_id: bool = False


class _BatchWriter:
    """Collects new submissions of one transaction and writes them with executemany.

    Anything that is not plainly new (a resend, an edit, a Central row seen before) flushes
    the pending rows first and is handled on its own, so order inside a batch is respected.
    """

    def __init__(self, store: Store, conn: Connection):
        self.store = store
        self.conn = conn
        self.versions: list[dict] = []
        self.submissions: list[dict] = []
        self.typed: dict[str, list[dict]] = {}
        self.typed_tables: dict[str, Any] = {}
        self.problems: list[dict] = []
        self.attachments: list[dict] = []
        self.blobs: dict[str, dict] = {}
        self.pending_ids: set[tuple[str | None, str | None]] = set()
        self.known_instances: set[tuple[str, str]] = set()
        self.known_roots: set[tuple[str, str]] = set()

    # -- parsing

    def parse(self, item: Incoming) -> _Parsed:
        parsed = self._parse(item)
        doc = parsed.doc
        if doc is not None:
            ids = (doc.form_id, doc.form_version, doc.instance_id, doc.deprecated_id, doc.root_id)
            if any(value is not None and len(value) > MAX_ID for value in ids):
                parsed.doc = None
                parsed.error = (
                    f"The submission's form id, version, instanceID or deprecatedID is longer "
                    f"than {MAX_ID} characters"
                    + ("." if item.all_or_nothing else "; it is kept raw, unread.")
                )
            elif item.all_or_nothing and any(len(name) > MAX_ID for name in self._named(doc)):
                parsed.doc = None
                parsed.error = f"The submission names a file whose name is longer than {MAX_ID} "
                parsed.error += "characters."
        if parsed.doc is not None and not parsed.doc.instance_id:
            # Collect always sends one; Central makes a random one. Derived from the bytes, an
            # identical resend is recognised (before the batch looks up what is stored) and a
            # rebuild gives the same id.
            parsed.doc.instance_id = _derived_id(parsed.digest)
            parsed.generated_id = True
        return parsed

    def _named(self, doc: SubmissionDocument) -> list[str]:
        """Every file name the document names in its form's attachment fields (any length)."""
        form = self.store._form(self.conn, doc.form_id)
        if doc.encrypted or form is None or not form.schemas:
            return list(doc.files)
        parts_list = form.schema_for(doc.form_version).attachment_paths
        return [v for parts in parts_list for v in _values(doc.data, parts) if isinstance(v, str)]

    def _parse(self, item: Incoming) -> _Parsed:
        if isinstance(item.payload, (bytes, bytearray)):
            payload = bytes(item.payload)
            digest = _sha256(payload)
            try:
                doc = from_openrosa_xml(payload)
            except SubmissionError as exc:
                return _Parsed(item, None, payload, "xml", digest, error=exc.message)
            form = self.store._form(self.conn, doc.form_id)
            if form is not None and form.schemas and not doc.encrypted:
                doc.conform_repeats(form.schema_for(doc.form_version).repeat_paths)
            return _Parsed(item, doc, payload, "xml", digest)
        if not item.form_id:
            raise ValueError("An OData row needs the form id it was read from (Incoming.form_id).")
        payload = _json_bytes(item.payload)
        try:
            doc = from_odata(item.payload, item.form_id)
        except SubmissionError as exc:
            return _Parsed(item, None, payload, "json", _sha256(payload), error=exc.message)
        return _Parsed(item, doc, payload, "json", _sha256(payload))

    def prefetch(self, parsed: list[_Parsed]) -> None:
        """Which of the batch's instanceIDs and root ids are stored already (two queries)."""
        docs = [p.doc for p in parsed if p.doc is not None]
        instance_ids = list({d.instance_id for d in docs if d.instance_id})
        root_ids = list({d.root_id for d in docs if d.root_id})
        sv, sub = t.submission_versions, t.submissions
        self.known_instances |= self._stored(sv.c.form_id, sv.c.instance_id, instance_ids)
        self.known_roots |= self._stored(sub.c.form_id, sub.c.root_id, root_ids)

    def _stored(self, form_column, id_column, ids: list[str]) -> set[tuple[str, str]]:
        """(form id, id) pairs among `ids` that the table holds, in chunks of BATCH."""
        found: set[tuple[str, str]] = set()
        for i in range(0, len(ids), BATCH):
            query = select(form_column, id_column).where(id_column.in_(ids[i : i + BATCH]))
            found.update(tuple(r) for r in self.conn.execute(query))
        return found

    def add(self, parsed: _Parsed) -> IngestResult:
        item = parsed.item
        received = item.received_at or t.utcnow()
        if parsed.doc is None:
            return self._unreadable(parsed, received)
        doc = parsed.doc
        key = (doc.form_id, doc.instance_id)
        root_key = (doc.form_id, doc.root_id) if doc.root_id else None
        if (
            doc.deprecated_id is None
            and doc.instance_id
            and key not in self.pending_ids
            and (root_key is None or root_key not in self.pending_ids)
            and key not in self.known_instances
            and (root_key is None or root_key not in self.known_roots)
        ):
            return self._new(parsed, doc, doc.root_id or doc.instance_id, received, None)
        self.flush()
        result = self._existing(parsed, doc, received)
        self.known_instances.add(key)
        if result.root_id:
            self.known_roots.add((doc.form_id, result.root_id))
        return result

    # -- outcomes

    def _unreadable(self, parsed: _Parsed, received) -> IngestResult:
        item = parsed.item
        message = parsed.error or "unreadable"
        if item.all_or_nothing:  # nothing stored: the sender is told and keeps its copy
            return IngestResult(REFUSED, item.form_id, message=message)
        self.versions.append(self._version_row(parsed, received, form_id=item.form_id))
        problem = Problem("unreadable", None, None, message)
        self._problem_rows(item.form_id, None, None, [problem])
        return IngestResult(UNREADABLE, item.form_id, problems=[problem], message=message)

    def _normalise(self, doc: SubmissionDocument, root_id: str) -> tuple[str, list[Problem]]:
        """Typed rows (queued) and problems of one document; returns how it was normalised.

        A failure here is a bug in nigraan, not in the data: the submission stays stored raw,
        flagged, and the rest of the batch goes on.
        """
        try:
            return self._normalise_document(doc, root_id)
        except Exception as exc:  # noqa: BLE001 - keep the raw submission whatever happened
            return NOT_TYPED, [
                Problem(
                    "not_typed", None, None,
                    f"nigraan could not type this submission ({type(exc).__name__}: {exc}); it is "
                    "kept raw. Report it; `nigraan store rebuild` retries after a fix.",
                )
            ]  # fmt: skip

    def _normalise_live(self, doc: SubmissionDocument, root_id: str) -> tuple[str, list[Problem]]:
        """As _normalise, but a row Central reports deleted gets no typed rows."""
        if doc.system and doc.system.get("deletedAt"):
            return DELETED, []
        return self._normalise(doc, root_id)

    def _normalise_document(self, doc, root_id: str) -> tuple[str, list[Problem]]:
        form = self.store._form(self.conn, doc.form_id, doc.form_version or "")
        if form is None or not form.schemas:
            return UNKNOWN_FORM, [
                Problem(
                    "unknown_form", None, doc.form_id,
                    f"No form '{doc.form_id}' is registered; the submission is kept raw and is "
                    "typed once the form is registered.",
                )
            ]  # fmt: skip
        if form.raw_only or doc.encrypted:
            return RAW_ONLY, []
        problems: list[Problem] = []
        version = doc.form_version or ""
        if version not in form.schemas:
            problems.append(
                Problem(
                    "unknown_version", None, doc.form_version,
                    f"Form '{doc.form_id}' has no version {doc.form_version!r}; the submission was "
                    f"typed with version {form.latest!r} as far as its fields match.",
                )
            )  # fmt: skip
            version = form.latest
        rows = document_rows(doc, form.plan(version), root_id)
        for table_name, table_rows in rows.tables.items():  # positional, in the Table's order
            self.typed.setdefault(table_name, []).extend(table_rows)
        for table in form.tables.values():
            self.typed_tables[table.name] = table
        return TYPED, problems + rows.problems

    def _expected_files(self, doc: SubmissionDocument, form: _Form | None) -> list[str]:
        if doc.encrypted:
            return list(doc.files)
        if form is None or not form.schemas:
            return []
        names: list[str] = []
        for parts in form.schema_for(doc.form_version).attachment_paths:
            names += [
                v
                for v in _values(doc.data, parts)
                if isinstance(v, str) and v.strip() and len(v) <= MAX_ID
            ]
        return list(dict.fromkeys(names))

    def _attachment_rows(self, doc, item: Incoming, received, previous: str | None = None) -> None:
        """The files the version names; with `previous` (an edit's deprecated version) a file
        it names but does not send is carried forward from that version, as Central does."""
        form = self.store._form(self.conn, doc.form_id)
        expected = self._expected_files(doc, form)
        if form is None:  # form unknown: which parts are files cannot be told; keep them all
            expected = list(dict.fromkeys(expected + list(item.attachments)))
        carried = self._arrived(doc.form_id, previous) if previous and expected else {}
        for name in expected:
            content, content_type = item.attachments.get(name, (None, None))
            row = {"form_id": doc.form_id, "instance_id": doc.instance_id, "name": name,
                   "sha256": None, "content_type": _content_type(content_type), "size": None,
                   "received_at": None}  # fmt: skip
            if content is not None:
                digest = _sha256(content)
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

    def _problem_rows(self, form_id, root_id, instance_id, problems: list[Problem]) -> None:
        self.problems += [
            {"form_id": form_id, "root_id": root_id, "instance_id": instance_id,
             "code": p.code, "field_path": p.path, "value": p.value, "message": p.message}
            for p in problems
        ]  # fmt: skip

    def _version_row(self, parsed: _Parsed, received, root_id=None, deprecated=None,
                     form_id=None) -> dict:  # fmt: skip
        """The raw version row; without a document (unreadable) only the payload is known."""
        doc = parsed.doc
        return {
            "form_id": doc.form_id if doc else form_id,
            "instance_id": doc.instance_id if doc else None, "root_id": root_id,
            "deprecated_id": deprecated, "form_version": doc.form_version if doc else None,
            "source": parsed.item.source, "payload_kind": parsed.kind, "payload": parsed.payload,
            "payload_sha256": parsed.digest, "received_at": received, "current": True,
            "submitter_name": parsed.item.submitter,
            "device_id": (parsed.item.device_id or "")[:255] or None,
        }  # fmt: skip

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
        normalised, problems = self._normalise_live(doc, root_id)
        if parsed.generated_id:
            problems.insert(0, _missing_id(doc.instance_id))
        self.versions.append(self._version_row(parsed, received, root_id, deprecated))
        submission = {
            "form_id": doc.form_id, "root_id": root_id, "current_instance_id": doc.instance_id,
            "form_version": doc.form_version, "source": parsed.item.source,
            "encrypted": doc.encrypted, "edits": 0, "first_received_at": received,
            "updated_at": received, "central_submission_date": None, "central_updated_at": None,
            "submitter_id": None, "submitter_name": parsed.item.submitter,
            "device_id": (parsed.item.device_id or "")[:255] or None,
            "review_state": None, "status": "notDecrypted" if doc.encrypted else None,
            "deleted_at": None, "normalised": normalised,
        }  # fmt: skip
        submission.update(self._system_values(doc))
        self.submissions.append(submission)
        self._attachment_rows(doc, parsed.item, received)
        self._problem_rows(doc.form_id, root_id, doc.instance_id, problems)
        self.pending_ids.add((doc.form_id, doc.instance_id))
        self.pending_ids.add((doc.form_id, root_id))
        return IngestResult(CREATED, doc.form_id, doc.instance_id, root_id, normalised, problems)

    def _existing(self, parsed: _Parsed, doc: SubmissionDocument, received) -> IngestResult:
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
                    DELETED_RESEND, doc.form_id, doc.instance_id, same.root_id,
                    message="This submission has been deleted. You may not resubmit it.",
                )  # fmt: skip
            if self._same_content(parsed, same):
                return self._resend(parsed, doc, same, received)
            return IngestResult(
                CONFLICT, doc.form_id, doc.instance_id, same.root_id,
                message="A submission already exists with this instanceID but different content.",
            )  # fmt: skip
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
                UNKNOWN_DEPRECATED, doc.form_id, doc.instance_id,
                message=f"The submission this edits ({deprecated}) is not stored here.",
            )  # fmt: skip
        if not base.current:
            return IngestResult(
                STALE_EDIT, doc.form_id, doc.instance_id, base.root_id,
                message=f"The edited copy ({deprecated}) is no longer the current version.",
            )  # fmt: skip
        return self._edit(parsed, doc, base.root_id, deprecated, received)

    def _deleted(self, form_id: str, root_id: str | None) -> bool:
        sub = t.submissions
        return (
            self.conn.execute(
                select(sub.c.deleted_at).where(sub.c.form_id == form_id, sub.c.root_id == root_id)
            ).scalar()
            is not None
        )

    def _same_content(self, parsed: _Parsed, same) -> bool:
        """Is this the stored version again (byte-identical, or the same data from Central)?"""
        if same.payload_sha256 == parsed.digest:
            return True
        if parsed.kind == "json" and same.payload_kind == "json":
            return _data_digest(json.loads(same.payload)) == _data_digest(parsed.item.payload)
        if parsed.kind == same.payload_kind:
            return False
        # Received by OpenRosa and read again from Central (or the reverse): same typed rows?
        kind = same.payload_kind
        stored = json.loads(same.payload) if kind == "json" else bytes(same.payload)
        other = self.parse(Incoming(stored, same.source, same.form_id)).doc
        form = self.store._form(self.conn, parsed.doc.form_id)
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
        self._clear_derived(doc.form_id, root_id)
        normalised, problems = self._normalise_live(doc, root_id)
        values = {
            "current_instance_id": doc.instance_id, "form_version": doc.form_version,
            "updated_at": received, "normalised": normalised, "encrypted": doc.encrypted,
            "edits": t.submissions.c.edits + 1,
        }  # fmt: skip
        values.update(self._system_values(doc))
        conn.execute(
            update(t.submissions)
            .where(t.submissions.c.form_id == doc.form_id, t.submissions.c.root_id == root_id)
            .values(**values)
        )
        self._attachment_rows(doc, parsed.item, received, previous=deprecated)
        self._problem_rows(doc.form_id, root_id, doc.instance_id, problems)
        self.flush()
        return IngestResult(EDITED, doc.form_id, doc.instance_id, root_id, normalised, problems)

    def _resend(self, parsed, doc, same, received) -> IngestResult:
        """Identical resend: fill in attachments that were missing; Central metadata refreshed."""
        conn = self.conn
        sa = t.submission_attachments
        missing = conn.execute(
            select(sa.c.name).where(
                sa.c.form_id == doc.form_id,
                sa.c.instance_id == doc.instance_id,
                sa.c.sha256.is_(None),
            )
        ).scalars().all()  # fmt: skip
        for name in missing:
            if name in parsed.item.attachments:
                content, content_type = parsed.item.attachments[name]
                self.store._fill_attachment(
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
                    self._clear_derived(doc.form_id, same.root_id)
                    values["normalised"] = DELETED
                conn.execute(
                    update(t.submissions)
                    .where(t.submissions.c.form_id == doc.form_id,
                           t.submissions.c.root_id == same.root_id)
                    .values(updated_at=received, **values)
                )  # fmt: skip
                if was_deleted and not values.get("deleted_at"):  # restored in Central
                    current = conn.execute(
                        select(t.submission_versions).where(t.submission_versions.c.id == same.id)
                    ).first()
                    self.rederive(current)
        return IngestResult(DUPLICATE, doc.form_id, doc.instance_id, same.root_id)

    def _clear_derived(self, form_id: str, root_id: str) -> None:
        form = self.store._form(self.conn, form_id)
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
            self._problem_rows(version.form_id, None, None, [problem])
            return
        doc = parsed.doc
        generated = parsed.generated_id
        doc.instance_id = version.instance_id if generated else doc.instance_id
        self._clear_derived(doc.form_id, version.root_id)
        normalised, problems = self._normalise(doc, version.root_id)
        if generated:
            problems.insert(0, _missing_id(doc.instance_id))
        self._problem_rows(doc.form_id, version.root_id, doc.instance_id, problems)
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
        bulk = self.store._bulk_insert
        bulk(conn, t.submission_versions, self.versions)
        bulk(conn, t.submissions, self.submissions)
        if self.blobs:
            _insert_ignore(conn, t.blobs, list(self.blobs.values()))
        bulk(conn, t.submission_attachments, self.attachments)
        for table_name, rows in self.typed.items():
            bulk(conn, self.typed_tables[table_name], rows)
        bulk(conn, t.problems, self.problems)
        self.versions, self.submissions, self.attachments, self.problems = [], [], [], []
        self.blobs, self.typed = {}, {}
        self.pending_ids.clear()


def _content_type(value: str | None) -> str | None:
    """A part's content type, if it fits its column (a longer one is no content type at all)."""
    return value if value is None or len(value) <= 255 else None


def _derived_id(digest: str) -> str:
    return f"uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'nigraan:' + digest)}"


def _missing_id(instance_id: str) -> Problem:
    return Problem(
        "missing_instance_id", "meta/instanceID", None,
        f"The submission had no meta/instanceID; nigraan gave it {instance_id}, derived from its "
        "content.",
    )  # fmt: skip


def _values(data: Any, parts: tuple[str, ...]) -> Iterator[Any]:
    """Every value at `parts`, through repeats (lists) on the way."""
    if isinstance(data, list):
        for item in data:
            yield from _values(item, parts)
        return
    if not isinstance(data, dict):
        return
    if len(parts) == 1:
        value = data.get(parts[0])
        if isinstance(value, list):
            yield from value
        else:
            yield value
        return
    yield from _values(data.get(parts[0]), parts[1:])
