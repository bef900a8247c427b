"""The store on a real database: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from nigraan.errors import FormError
from store import tables as t
from store.store import Incoming, Store
from tests.central_records import FINAL_PAGES, odata_rows

FORM = "rec_visit"
V01 = "uuid:25ad35fd-1776-405a-b3ac-ccfb159d9ce8"
V05 = "uuid:d4211011-26dc-4d6b-8a33-323d31658545"
V05_EDIT = "uuid:5b3c44ca-17fb-44d3-9676-a676816210d1"


@pytest.fixture
def xform(central_dir) -> bytes:
    return (central_dir / "forms" / "rec_visit.xml").read_bytes()


def _submission(central_dir, name: str) -> bytes:
    return (central_dir / "submissions" / name).read_bytes()


def _instance_id(xml: bytes) -> str:
    return re.search(rb"<instanceID>([^<]+)</instanceID>", xml).group(1).decode()


def _accepted_xml(central_dir) -> list[Incoming]:
    """Every rec_visit XML Central accepted, in the order it was posted (edits last)."""
    index = json.loads((central_dir / "submissions" / "INDEX.json").read_text())[FORM]
    items, edits = [], []
    for entry in index.values():
        if entry.get("instance_file"):
            items.append(Incoming(_submission(central_dir, entry["instance_file"].split("/")[-1])))
        for edit in entry.get("edit_files", []):
            edits.append(Incoming(_submission(central_dir, edit.split("/")[-1])))
    return items + edits


def _snapshot(store: Store, form_id: str = FORM) -> dict[str, list[dict]]:
    out = {}
    for table in store.form_tables(form_id).values():
        out[table.name] = store.rows(table.name)
    out["problems"] = [
        {k: v for k, v in p.items() if k != "id"}
        for p in sorted(store.problems(form_id), key=lambda p: (p["root_id"] or "", p["code"]))
    ]
    return out


def test_migrations_match_the_models_and_rerun_harmlessly(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), t.metadata)
    assert diff == []
    Store(store.engine, upgrade=True)  # a second upgrade finds nothing to do
    assert set(t.metadata.tables) <= set(inspect(store.engine).get_table_names())


def test_recorded_xml_and_odata_fill_identical_tables(central_dir, xform, open_store):
    """The same Central submissions, posted as XML by Collect and read back as OData."""
    by_xml, by_odata = open_store(), open_store()
    for s in (by_xml, by_odata):
        s.register_form(xform)
    results = by_xml.ingest_many(_accepted_xml(central_dir))
    assert {r.status for r in results} <= {"created", "edited"}
    # Central's final state (v05 edited over OpenRosa, v11 over REST, v12 deleted).
    rows = odata_rows(central_dir, *FINAL_PAGES)
    accepted = {r.instance_id for r in results}
    rows = [r for r in rows if r["meta"]["instanceID"] in accepted]
    assert len(rows) >= 28
    by_odata.ingest_many([Incoming(r, "central", FORM) for r in rows])
    a, b = _snapshot(by_xml), _snapshot(by_odata)
    ids = {r["__id"] for r in b["form_rec_visit"]}
    a = {
        name: [
            r
            for r in table
            if r.get("__id", r.get("root_id")) in ids or r.get("__submission_id") in ids
        ]
        for name, table in a.items()
    }
    assert a == b
    assert len(a["form_rec_visit__detainee_injury"]) > 10
    edited = {r["__id"]: r for r in b["form_rec_visit"] if r["__id"] != r["__instance_id"]}
    assert len(edited) == 2 and edited[V05]["__instance_id"] == V05_EDIT
    assert edited[V05]["remarks"] == "EDITED: remarks corrected after review"


def test_typed_values_and_metadata(central_dir, xform, store):
    store.register_form(xform)
    store.ingest(_submission(central_dir, "v01.xml"))
    row = store.rows("form_rec_visit")[0]
    assert row["visit_date"].isoformat() == "2026-11-01"
    assert row["visit_time"].isoformat() == "2026-11-01T04:03:05.123000+00:00"
    assert row["visit_time_utc_offset"] == 300
    assert (row["location_latitude"], row["location_longitude"]) == (33.6, 73.0)
    assert row["household_size"] == 0 and row["distance_km"] == 1.5
    with store.engine.connect() as conn:
        fields = {r.field_path: r for r in conn.execute(select(t.form_fields))}
        choices = conn.execute(
            select(t.form_choices).where(t.form_choices.c.field_path == "services")
        ).all()
        columns = conn.execute(
            select(t.form_columns.c.column_name).where(t.form_columns.c.field_path == "services")
        ).scalars()
        assert sorted(columns) == [
            "services",
            "services_food",
            "services_legal",
            "services_medical",
            "services_shelter",
        ]
    assert fields["visitor_name"].label_ur == "ملاقاتی کا نام"
    assert fields["detainee/injury/severity"].repeat_path == "detainee/injury"
    assert next((c.name, c.label_en, c.label_ur) for c in choices) == ("food", "Food", "خوراک")


def test_select_multiple_is_queryable_per_choice(central_dir, xform, store):
    store.register_form(xform)
    store.ingest_many(_accepted_xml(central_dir))
    table = store.form_table(FORM)
    with store.engine.connect() as conn:
        legal = conn.execute(select(table.c.services).where(table.c.services_legal == 1)).scalars()
        legal = list(legal)
    assert legal and all("legal" in s.split() for s in legal)


def test_edits_keep_history_and_show_the_current_version(central_dir, xform, store):
    store.register_form(xform)
    store.ingest(_submission(central_dir, "v05.xml"))
    edit = store.ingest(_submission(central_dir, "v05-edit1.xml"))
    assert (edit.status, edit.root_id) == ("edited", V05)
    versions = store.versions(FORM, V05)
    assert [(v["instance_id"], v["current"]) for v in versions] == [(V05, False), (V05_EDIT, True)]
    assert versions[0]["payload"] == _submission(central_dir, "v05.xml")  # verbatim
    rows = store.rows("form_rec_visit")
    assert len(rows) == 1 and rows[0]["__instance_id"] == V05_EDIT
    assert store.submission(FORM, V05)["edits"] == 1
    assert store.ingest(_submission(central_dir, "v05-edit-stale.xml")).status == "stale_edit"
    unknown = store.ingest(_submission(central_dir, "edit-unknown-deprecated.xml"))
    assert unknown.status == "unknown_deprecated"
    assert len(store.versions(FORM, V05)) == 2


def test_central_edit_keeps_the_root_id(central_dir, xform, store):
    store.register_form(xform)
    before = odata_rows(central_dir, "134-odata-submissions-expand-all.json")
    after = odata_rows(central_dir, "237-odata-after-single-edited.json")[0]
    root = after["__id"]
    original = next(r for r in before if r["__id"] == root)
    assert store.ingest(original, source="central", form_id=FORM).status == "created"
    result = store.ingest(after, source="central", form_id=FORM)
    assert (result.status, result.root_id) == ("edited", root)
    submission = store.submission(FORM, root)
    assert submission["review_state"] == "edited" and submission["edits"] == 1
    assert submission["current_instance_id"] == after["meta"]["instanceID"]
    rows = store.rows("form_rec_visit")
    assert [r["remarks"] for r in rows] == [after["remarks"]]


def test_resends_are_idempotent_and_conflicts_store_nothing(central_dir, xform, store):
    store.register_form(xform)
    v01 = _submission(central_dir, "v01.xml")
    assert store.ingest(v01).status == "created"
    assert store.ingest(v01).status == "duplicate"
    assert store.ingest(_submission(central_dir, "v01-conflict.xml")).status == "conflict"
    assert len(store.versions(FORM, V01)) == 1
    row = next(
        r
        for r in odata_rows(central_dir, "134-odata-submissions-expand-all.json")
        if r["__id"] == V01
    )
    reviewed = dict(row, __system=dict(row["__system"], reviewState="approved"))
    assert store.ingest(row, source="central", form_id=FORM).status == "duplicate"
    assert store.ingest(reviewed, source="central", form_id=FORM).status == "duplicate"


def test_resends_of_several_submissions_in_one_batch(central_dir, xform, store):
    # The first resend flushes the batch's pending rows; the second must still be known as
    # stored (it was inserted again once, and the whole batch failed on the unique index).
    store.register_form(xform)
    a, b = _submission(central_dir, "v27.xml"), _submission(central_dir, "v28.xml")
    rows = {r["__id"]: r for r in odata_rows(central_dir, *FINAL_PAGES)}
    again = [Incoming(rows[i], "central", FORM) for i in (_instance_id(b), _instance_id(a))]
    results = store.ingest_many([Incoming(a), Incoming(b), Incoming(a), Incoming(b), *again])
    assert [r.status for r in results] == ["created", "created"] + ["duplicate"] * 4
    assert store.counts()[FORM]["submissions"] == 2


def test_attachments_are_content_addressed_and_filled_in_later(central_dir, xform, store):
    store.register_form(xform)
    photo = (central_dir / "submissions" / "media" / "photo0.jpg").read_bytes()
    v01 = _submission(central_dir, "v01.xml")
    name = "1764300000001.jpg"
    store.ingest(v01, attachments={"ignored.jpg": (b"x", "image/jpeg")})
    assert store.attachment(FORM, V01, name) is None
    store.ingest(v01, attachments={name: (photo, "image/jpeg")})  # the second half of a split
    assert store.attachment(FORM, V01, name) == photo
    with store.engine.connect() as conn:
        blob = conn.execute(select(t.blobs.c.sha256, t.blobs.c.size)).one()
        stored = conn.execute(select(t.submission_attachments)).all()
    assert blob == (hashlib.sha256(photo).hexdigest(), len(photo))
    assert [a.name for a in stored] == [name]  # parts the instance does not name are not kept


def test_bad_data_is_kept_raw_and_flagged(central_dir, xform, store):
    store.register_form(xform)
    bad = (
        b'<data id="rec_visit" version="2026112801"><visitor_name>Ok</visitor_name>'
        b"<household_size>many</household_size><meta><instanceID>uuid:b1</instanceID></meta></data>"
    )
    results = store.ingest_many(
        [
            Incoming(bad),
            Incoming(_submission(central_dir, "unknown-form.xml")),
            Incoming(_submission(central_dir, "wrong-version.xml")),
            Incoming(_submission(central_dir, "malformed.xml")),
            Incoming(_submission(central_dir, "no-instanceid.xml")),
        ]
    )
    assert [r.status for r in results] == ["created", "created", "created", "unreadable", "created"]
    codes = {(p["form_id"], p["code"], p["field_path"], p["value"]) for p in store.problems()}
    assert (FORM, "bad_value", "household_size", "many") in codes
    assert ("no_such_form", "unknown_form", None, "no_such_form") in codes
    assert (FORM, "unknown_version", None, "1999") in codes
    assert (None, "unreadable", None, None) in codes
    assert (FORM, "missing_instance_id", "meta/instanceID", None) in codes
    typed = {r["__id"]: r for r in store.rows("form_rec_visit")}
    assert typed["uuid:b1"]["visitor_name"] == "Ok" and typed["uuid:b1"]["household_size"] is None
    with store.engine.connect() as conn:
        payloads = conn.execute(select(t.submission_versions.c.payload)).scalars().all()
    assert _submission(central_dir, "malformed.xml") in payloads  # kept verbatim


def test_unknown_form_is_typed_once_registered(central_dir, xform, store):
    result = store.ingest(_submission(central_dir, "v01.xml"))
    assert result.normalised == "unknown_form"
    assert store.register_form(xform).renormalised == 1
    assert [r["__id"] for r in store.rows("form_rec_visit")] == [V01]
    assert store.problems(FORM) == []
    assert store.submission(FORM, V01)["normalised"] == "typed"


def test_rebuild_reproduces_every_table(central_dir, xform, store):
    store.register_form(xform)
    store.ingest_many(_accepted_xml(central_dir))
    store.ingest_many(
        [Incoming(r, "central", FORM) for r in odata_rows(central_dir, FINAL_PAGES[0])]
    )
    store.ingest(
        b'<data id="rec_visit" version="2026112801"><household_size>x</household_size>'
        b"<meta><instanceID>uuid:bad</instanceID></meta></data>"
    )
    before = _snapshot(store)
    assert sum(len(v) for v in before.values()) > 80 and before["problems"]
    assert store.rebuild() >= 29
    assert _snapshot(store) == before
    reopened = Store(store.engine)  # a new process sees the same tables
    assert reopened.rebuild(FORM) >= 29
    assert _snapshot(reopened) == before


def test_rebuild_gives_stored_repeat_rows_centrals_ids(central_dir, store):
    """Rows stored with the ids nigraan used to give repeats inside groups (no group steps:
    sha1 of `Submissions#<root>%%person#0`) get Central's ids from a rebuild (fact 42)."""
    store.register_form((central_dir / "forms" / "rec_grouprepeat.xml").read_bytes())
    store.ingest(_submission(central_dir, "grouprepeat-1.xml"))
    [row] = odata_rows(central_dir, "345-odata-grouprepeat-expand-all.json")
    root = row["__id"]

    def old_id(*chain):
        key = f"Submissions#{root}" + "".join(f"%%{name}#{i}" for name, i in chain)
        return hashlib.sha1(key.encode()).hexdigest()

    person = store.form_table("rec_grouprepeat", "people/person")
    visits = store.form_table("rec_grouprepeat", "people/person/details/visits")
    with store.engine.begin() as conn:  # the rows as an older nigraan wrote them
        position = {r[0]: r[1] for r in conn.execute(select(person.c.__id, person.c.__position))}
        for row_id, i in position.items():
            conn.execute(
                person.update()
                .where(person.c.__id == row_id)
                .values(__id=old_id(("person", i - 1)))
            )
        for row_id, parent, j in conn.execute(
            select(visits.c.__id, visits.c.__parent_id, visits.c.__position)
        ).all():
            chain = [("person", position[parent] - 1)]
            conn.execute(
                visits.update()
                .where(visits.c.__id == row_id)
                .values(__id=old_id(*chain, ("visits", j - 1)), __parent_id=old_id(*chain))
            )
    assert old_id(("person", 0)) in {r["__id"] for r in store.rows(person.name)}
    assert store.rebuild("rec_grouprepeat") == 1
    recorded_person = odata_rows(central_dir, "346-odata-grouprepeat-person.json")
    recorded_visits = odata_rows(central_dir, "347-odata-grouprepeat-visits.json")
    assert {(r["__id"], r["__parent_id"]) for r in store.rows(person.name)} == {
        (r["__id"], r["__Submissions-id"]) for r in recorded_person
    }
    assert {(r["__id"], r["__parent_id"]) for r in store.rows(visits.name)} == {
        (r["__id"], r["__Submissions-people-person-id"]) for r in recorded_visits
    }


def test_form_versions_evolve_without_losing_values(central_dir, xform, store):
    store.register_form(xform)
    store.ingest(_submission(central_dir, "v01.xml"))
    old = store.rows("form_rec_visit")[0]
    assert isinstance(old["household_size"], int)
    v2 = (
        xform.replace(b'version="2026112801"', b'version="2026112901"')
        .replace(
            b'<bind nodeset="/data/household_size" type="int"',
            b'<bind nodeset="/data/household_size" type="string"',
        )
        .replace(b"<remarks/>", b"<cell_number/>")
        .replace(
            b'<bind nodeset="/data/remarks" type="string"/>',
            b'<bind nodeset="/data/cell_number" type="int"/>',
        )
    )
    with pytest.raises(FormError, match="new version"):
        store.register_form(v2.replace(b'version="2026112901"', b'version="2026112801"'))
    result = store.register_form(v2)
    assert (result.status, result.new_columns) == ("new_version", 1)
    new = (
        b'<data id="rec_visit" version="2026112901"><household_size>about 4</household_size>'
        b"<cell_number>12</cell_number><meta><instanceID>uuid:v2</instanceID></meta></data>"
    )
    assert store.ingest(new).problems == []
    rows = {r["__id"]: r for r in store.rows("form_rec_visit")}
    kept = rows[old["__id"]]
    assert kept["household_size"] == str(old["household_size"])  # widened to text, same value
    assert kept["remarks"] == old["remarks"] and kept["remarks"]  # a removed field keeps its data
    assert rows["uuid:v2"]["household_size"] == "about 4" and rows["uuid:v2"]["cell_number"] == 12
    with store.engine.connect() as conn:
        remarks = conn.execute(
            select(t.form_fields).where(t.form_fields.c.field_path == "remarks")
        ).one()
    assert (remarks.in_latest_version, remarks.last_version) == (False, "2026112801")


def test_identity_forms_stay_raw_and_restricted_fields_are_flagged(built_programme_forms, store):
    config, _ = built_programme_forms
    build = config["forms.build_dir"]
    identity = store.register_form((build / "identity_register.xml").read_bytes())
    store.register_form((build / "custody_visit.xml").read_bytes())
    assert store.form_tables("identity_register") == {}
    plain = (
        b'<data id="identity_register" version="%s"><full_name>A. Person</full_name>'
        b"<meta><instanceID>uuid:id1</instanceID></meta></data>" % identity.version.encode()
    )
    result = store.ingest(plain)
    assert (result.status, result.normalised) == ("created", "raw_only")
    names = set(inspect(store.engine).get_table_names())
    assert not any("identity" in n for n in names)
    with store.engine.connect() as conn:
        restricted = (
            conn.execute(
                select(t.form_fields.c.field_path).where(
                    t.form_fields.c.form_id == "custody_visit", t.form_fields.c.restricted
                )
            )
            .scalars()
            .all()
        )
    assert "b0_visit/areas_denied" in restricted


def test_encrypted_submissions_stay_raw(central_dir, store):
    store.register_form((central_dir / "forms" / "rec_encrypted.xml").read_bytes())
    envelope = (central_dir / "submissions" / "encrypted" / "e01.manifest.xml").read_bytes()
    result = store.ingest(envelope, attachments={"submission.xml.enc": (b"\x00cipher", None)})
    assert (result.status, result.normalised) == ("created", "raw_only")
    assert store.form_tables("rec_encrypted") == {}
    assert (
        store.attachment("rec_encrypted", result.instance_id, "submission.xml.enc") == b"\x00cipher"
    )


def test_programme_forms_get_typed_tables(built_programme_forms, store):
    config, _ = built_programme_forms
    for path in sorted(config["forms.build_dir"].glob("*.xml")):
        store.register_form(path.read_bytes())
    tables = store.form_tables("custody_visit")
    assert set(tables) == {"", "b11_interviews/interview"}
    names = inspect(store.engine).get_table_names()
    assert (
        "form_custody_visit" in names and "form_survivor_intake__perpetrators_perpetrator" in names
    )
    columns = {c["name"] for c in inspect(store.engine).get_columns("form_custody_visit")}
    assert len(columns) > 200 and all(len(c) <= 63 for c in columns)


def test_a_form_registered_by_another_process_is_seen(central_dir, xform, open_store):
    server = open_store()
    server.ingest(_submission(central_dir, "v02.xml"))  # before the form is known here
    url = server.engine.url.render_as_string(hide_password=False)
    open_store(url).register_form(xform)  # e.g. `nigraan store init` while the server runs
    result = server.ingest(_submission(central_dir, "v03.xml"))
    assert (result.status, result.normalised, result.problems) == ("created", "typed", [])
    assert len(server.rows("form_rec_visit")) == 2


def test_a_typing_failure_keeps_the_submission_and_the_batch(
    central_dir, xform, store, monkeypatch
):
    store.register_form(xform)

    def broken(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr("store.derived_rows.document_rows", broken)
    results = store.ingest_many(
        [Incoming(_submission(central_dir, n)) for n in ("v01.xml", "v02.xml")]
    )
    assert [(r.status, r.normalised) for r in results] == [("created", "not_typed")] * 2
    assert {p["code"] for p in store.problems()} == {"not_typed"}
    monkeypatch.undo()  # the fix is deployed: a rebuild types them
    assert store.rebuild() == 2
    assert len(store.rows("form_rec_visit")) == 2 and store.problems() == []


def test_overlong_identifiers_are_kept_raw_unread(xform, store):
    store.register_form(xform)
    long_id = "uuid:" + "x" * 300
    xml = f'<data id="rec_visit"><meta><instanceID>{long_id}</instanceID></meta></data>'.encode()
    result = store.ingest(xml)
    assert result.status == "unreadable" and "255" in result.message
    assert store.counts()["(unreadable)"]["versions"] == 1


def _edit_of(xml: bytes, old_id: str, new_id: str) -> bytes:
    return xml.replace(
        f"<instanceID>{old_id}</instanceID>".encode(),
        f"<instanceID>{new_id}</instanceID><deprecatedID>{old_id}</deprecatedID>".encode(),
    ).replace(b"Follow-up needed", b"Edited")


def test_an_edit_that_does_not_resend_its_files_keeps_them(central_dir, xform, store):
    """As Central: a file the edit names but does not send is carried forward."""
    store.register_form(xform)
    photo = (central_dir / "submissions" / "media" / "photo0.jpg").read_bytes()
    name = "1764300000001.jpg"
    v01 = _submission(central_dir, "v01.xml")
    store.ingest(v01, attachments={name: (photo, "image/jpeg")})
    edit_id = "uuid:0e0e0e0e-0000-4000-8000-000000000001"
    edit = store.ingest(_edit_of(v01, V01, edit_id))
    assert edit.status == "edited"
    assert store.attachment(FORM, edit_id, name) == photo
    assert [
        (a["name"], a["exists"], a["content_type"]) for a in store.attachments(FORM, edit_id)
    ] == [(name, True, "image/jpeg")]
    assert store.missing_attachments(FORM) == {}
    # a photo the edit does send replaces the old one in the new version only
    again_id = "uuid:0e0e0e0e-0000-4000-8000-000000000002"
    other = (central_dir / "submissions" / "media" / "photo1.jpg").read_bytes()
    store.ingest(
        _edit_of(v01, V01, again_id).replace(V01.encode(), edit_id.encode()),
        attachments={name: (other, "image/jpeg")},
    )
    assert store.attachment(FORM, again_id, name) == other
    assert store.attachment(FORM, edit_id, name) == photo


def test_a_number_out_of_range_is_flagged_and_the_batch_is_stored(central_dir, xform, store):
    """A value beyond the column (64-bit integer, double) used to roll the whole batch back."""
    store.register_form(xform)
    good = [
        f'<data id="rec_visit" version="2026112801"><household_size>{i}</household_size>'
        f"<meta><instanceID>uuid:good-{i}</instanceID></meta></data>".encode()
        for i in range(20)
    ]
    huge = (
        b'<data id="rec_visit" version="2026112801"><household_size>'
        b"123456789012345678901234567890</household_size><meta><instanceID>uuid:huge"
        b"</instanceID></meta></data>"
    )
    row = dict(odata_rows(central_dir, "134-odata-submissions-expand-all.json")[0])
    row.update(household_size=2**64, distance_km=10**400)
    results = store.ingest_many(
        [Incoming(x) for x in good[:10]]
        + [Incoming(huge), Incoming(row, "central", FORM)]
        + [Incoming(x) for x in good[10:]]
    )
    assert {r.status for r in results} == {"created"}
    assert store.counts()[FORM]["submissions"] == 22
    flagged = {(p["root_id"], p["field_path"]) for p in store.problems(FORM)}
    assert flagged == {
        ("uuid:huge", "household_size"),
        (row["__id"], "household_size"),
        (row["__id"], "distance_km"),
    }
    typed = {r["__id"]: r for r in store.rows("form_rec_visit")}
    assert typed["uuid:huge"]["household_size"] is None
    assert typed["uuid:good-3"]["household_size"] == 3


def test_a_resend_without_instance_id_is_a_duplicate(central_dir, xform, store):
    store.register_form(xform)
    xml = _submission(central_dir, "no-instanceid.xml")
    first, again = store.ingest(xml), store.ingest(xml)
    assert (first.status, again.status) == ("created", "duplicate")
    assert again.instance_id == first.instance_id
    assert store.rebuild() == 1
    assert [p["code"] for p in store.problems(FORM)] == ["missing_instance_id"]


def test_a_device_upload_that_cannot_be_stored_whole_stores_nothing(xform, store):
    store.register_form(xform)
    long_id = "uuid:" + "x" * 300
    xml = f'<data id="rec_visit"><meta><instanceID>{long_id}</instanceID></meta></data>'.encode()
    result = store.ingest_many([Incoming(xml, all_or_nothing=True)])[0]
    assert result.status == "refused" and "255" in result.message
    named = b'<data id="rec_visit"><photo>' + b"p" * 300 + b".jpg</photo><meta><instanceID>uuid:p"
    named += b"</instanceID></meta></data>"
    assert store.ingest_many([Incoming(named, all_or_nothing=True)])[0].status == "refused"
    assert store.counts() == {}
