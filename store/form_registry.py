"""The registered forms: their XForm versions, schemas, layouts and generated tables.

Registering a version records its bytes, its fields' labels and sensitivity, and grows the
form's tables; the registry also keeps every form in memory (read once, re-read when another
process registers a form) for ingest, rebuild and the OpenRosa server's threads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from nigraan.errors import FormError
from store import layout as lay
from store import schema as s
from store import tables as t
from store.bulk_insert import BulkInserts
from store.derive import derive_form
from store.form_tables import build_tables, create_missing, recreate
from store.incoming import sha256
from store.outcomes import Registration
from store.rows import RowPlan


@dataclass
class RegisterResult:
    form_id: str
    version: str
    status: str  # a Registration: new_form | new_version | unchanged
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
class RegisteredForm:
    """A form as registered: every version's schema, its layout and its generated tables."""

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


class FormRegistry:
    """The forms of one store, cached; `inserts` writes the rows a registration re-derives."""

    def __init__(self, engine: Engine, inserts: BulkInserts):
        self.engine = engine
        self.inserts = inserts
        self._forms: dict[str, RegisteredForm] = {}
        self._loaded = False
        self._lock = threading.RLock()  # the server reads the form cache from many threads

    def all(self, conn: Connection) -> dict[str, RegisteredForm]:
        """Every registered form by id (as this process last read them)."""
        with self._lock:
            self._load(conn)
            return self._forms

    def forget(self) -> None:
        """Drop the cache: the next use reads the forms again."""
        self._forms.clear()
        self._loaded = False

    def _load(self, conn: Connection) -> None:
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
                row.table_name,
                row.column_name,
                row.repeat_path,
                row.field_path,
                row.part,
                row.storage,
            )
        for row in conn.execute(select(t.forms)):
            form = RegisteredForm(
                row.form_id,
                row.raw_only,
                row.latest_version,
                versions.get(row.form_id, {}),
                layouts.get(row.form_id),
            )
            if form.layout is not None:
                form.tables = build_tables(form.layout)
            self._forms[row.form_id] = form
        self._loaded = True

    def form(
        self, conn: Connection, form_id: str | None, version: str | None = None
    ) -> RegisteredForm | None:
        """The form as registered; re-read when another process registered it (or `version`)."""
        with self._lock:
            return self._cached_form(conn, form_id, version)

    def _cached_form(self, conn: Connection, form_id, version) -> RegisteredForm | None:
        self._load(conn)
        if not form_id:
            return None
        form = self._forms.get(form_id)
        if form is None or (version is not None and version not in form.schemas):
            query = select(t.form_versions.c.seq).where(t.form_versions.c.form_id == form_id)
            if version is not None:
                query = query.where(t.form_versions.c.version == version)
            if conn.execute(query.limit(1)).first() is not None:
                self.forget()
                self._load(conn)
                form = self._forms.get(form_id)
        return form

    def schemas(self, form_id: str) -> dict[str, s.FormSchema]:
        """Every registered version's schema ({} for an unknown form); the latest last."""
        with self.engine.connect() as conn:
            form = self.form(conn, form_id)
        if form is None:
            return {}
        return {
            **{v: x for v, x in form.schemas.items() if v != form.latest},
            form.latest: form.schemas[form.latest],
        }

    def form_versions(self, form_id: str, version: str | None = None) -> FormVersions | None:
        """The registered versions of a form (None if unknown); looks again for a new `version`."""
        form = self._forms.get(form_id)  # versions are never unregistered: a hit needs no SQL
        if form is None or version is None or version not in form.schemas:
            with self.engine.connect() as conn:
                form = self.form(conn, form_id, version)
        if form is None:
            return None
        encrypted = any(schema.encrypted for schema in form.schemas.values())
        key_bytes = {version: schema.key_bytes for version, schema in form.schemas.items()}
        return FormVersions(form.form_id, frozenset(form.schemas), encrypted, key_bytes)

    def form_table(self, form_id: str, repeat: str = "") -> Table:
        """The SQLAlchemy Table of a form's submissions (or of one of its repeats)."""
        with self.engine.connect() as conn:
            form = self.form(conn, form_id)
        if form is None or repeat not in form.tables:
            raise FormError(
                f"Form '{form_id}' has no typed table for {repeat or 'its submissions'!r}.",
                hint="Register the form first (`nigraan store init`); identity forms stay raw.",
            )
        return form.tables[repeat]

    def form_tables(self, form_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            form = self.form(conn, form_id)
        return dict(form.tables) if form else {}

    def table_named(self, table_name: str) -> Table | None:
        """The generated table called `table_name`, of any form (None if there is none)."""
        with self.engine.connect() as conn:
            forms = self.all(conn)
        return next(
            (tb for f in forms.values() for tb in f.tables.values() if tb.name == table_name),
            None,
        )

    def register(self, xform: bytes) -> RegisterResult:
        """Record a compiled XForm version and grow its tables; idempotent for the same bytes.

        A version already registered with different bytes is refused: ODK clients cache forms by
        version, so a changed form needs a new version.
        """
        schema = s.parse_xform(xform)
        digest = sha256(xform)
        try:
            with self.engine.begin() as conn:
                return self._register(conn, schema, xform, digest)
        except Exception as exc:
            self.forget()  # the cache may hold what the rollback undid
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
        self._load(conn)
        existing = conn.execute(
            select(t.form_versions.c.xform_sha256).where(
                t.form_versions.c.form_id == schema.form_id,
                t.form_versions.c.version == schema.version,
            )
        ).scalar()
        if existing == digest:
            return RegisterResult(schema.form_id, schema.version, Registration.UNCHANGED)
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
                    form_id=schema.form_id,
                    title=schema.title,
                    latest_version=schema.version,
                    encrypted=schema.encrypted,
                    raw_only=raw_only,
                    registered_at=now,
                )
            )
            form = RegisteredForm(schema.form_id, raw_only, schema.version, {}, None)
            self._forms[schema.form_id] = form
            status = Registration.NEW_FORM
        else:
            conn.execute(
                update(t.forms)
                .where(t.forms.c.form_id == schema.form_id)
                .values(
                    title=schema.title,
                    latest_version=schema.version,
                    raw_only=raw_only,
                    encrypted=schema.encrypted,
                )
            )
            status = Registration.NEW_VERSION
        conn.execute(
            insert(t.form_versions).values(
                form_id=schema.form_id,
                version=schema.version,
                xform=xform,
                xform_sha256=digest,
                registered_at=now,
            )
        )
        form.schemas[schema.version] = schema
        form.latest = schema.version
        form.raw_only = raw_only
        form.plans.clear()
        _write_field_metadata(conn, form)
        result = RegisterResult(schema.form_id, schema.version, status)
        if raw_only:
            return result  # identities and encrypted data never reach plain typed tables
        taken = set(conn.execute(select(t.form_tables.c.table_name)).scalars())
        taken |= set(t.metadata.tables)  # a form 'versions' must not get `form_versions`
        change = lay.plan_layout(schema, form.layout, taken)
        form.layout = change.layout
        form.tables = create_missing(conn, change)
        _write_layout(conn, form.layout)
        result.new_columns = len(change.new_columns)
        if change.widened:
            recreate(conn, form.tables)
            result.renormalised = derive_form(conn, self, form.form_id)
        else:
            result.renormalised = derive_form(conn, self, form.form_id, only_unsettled=True)
        return result


def _write_layout(conn: Connection, layout: lay.FormLayout) -> None:
    form_id = layout.form_id
    conn.execute(delete(t.form_columns).where(t.form_columns.c.form_id == form_id))
    conn.execute(delete(t.form_tables).where(t.form_tables.c.form_id == form_id))
    conn.execute(
        insert(t.form_tables),
        [
            {
                "table_name": name,
                "form_id": form_id,
                "repeat_path": repeat,
                "parent_repeat_path": layout.parents.get(repeat) if repeat else None,
            }
            for repeat, name in layout.tables.items()
        ],
    )
    if not layout.columns:  # only notes: executing an empty list would insert one blank row
        return
    conn.execute(
        insert(t.form_columns),
        [
            {
                "table_name": c.table,
                "column_name": c.name,
                "form_id": form_id,
                "repeat_path": c.repeat,
                "field_path": c.path,
                "part": c.part,
                "storage": c.storage,
                "position": i,
            }
            for i, c in enumerate(layout.columns.values())
        ],
    )


def _write_field_metadata(conn: Connection, form: RegisteredForm) -> None:
    """Labels (English, Urdu), kind and sensitivity of every field any version had."""
    fields: dict[str, dict[str, Any]] = {}
    choices: dict[tuple[str, str], dict[str, Any]] = {}
    for version, schema in form.schemas.items():  # registration order: later wins
        for position, f in enumerate(schema.fields):
            entry = fields.get(f.path)
            fields[f.path] = {
                "form_id": form.form_id,
                "field_path": f.path,
                "repeat_path": f.repeat,
                "kind": f.kind,
                "bind_type": f.bind_type,
                "sensitivity": f.sensitivity,
                "restricted": f.restricted,
                "label_en": _label(f.labels, "en"),
                "label_ur": _label(f.labels, "ur"),
                "labels": _labels_json(f.labels),
                "position": position,
                "first_version": entry["first_version"] if entry else version,
                "last_version": version,
                "in_latest_version": version == form.latest,
            }
            for i, c in enumerate(f.choices):
                choices[(f.path, c.name)] = {
                    "form_id": form.form_id,
                    "field_path": f.path,
                    "name": c.name,
                    "label_en": _label(c.labels, "en"),
                    "label_ur": _label(c.labels, "ur"),
                    "labels": _labels_json(c.labels),
                    "position": i,
                }
    for entry in fields.values():
        entry["in_latest_version"] = entry["last_version"] == form.latest
    conn.execute(delete(t.form_fields).where(t.form_fields.c.form_id == form.form_id))
    conn.execute(delete(t.form_choices).where(t.form_choices.c.form_id == form.form_id))
    if fields:
        conn.execute(insert(t.form_fields), list(fields.values()))
    if choices:
        conn.execute(insert(t.form_choices), list(choices.values()))


def _labels_json(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(labels), ensure_ascii=False, sort_keys=True)


def _label(labels: Mapping[str, str], lang: str) -> str | None:
    if lang in labels:
        return labels[lang]
    return labels.get("default") if lang == "en" else None
