"""Pure functions of the store: XForm -> schema, XML/OData -> document, document -> rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import layout as lay
from store.document import SubmissionError, from_odata, from_openrosa_xml
from store.layout import plan_layout
from store.rows import RowPlan, document_rows, repeat_row_id
from store.schema import parse_xform
from tests.central_records import FINAL_PAGES, REFUSED, odata_rows

PKT = timezone(timedelta(hours=5))


@pytest.fixture(scope="module")
def rec_visit(central_dir):
    schema = parse_xform((central_dir / "forms" / "rec_visit.xml").read_bytes())
    layout = plan_layout(schema, None, set()).layout
    return schema, RowPlan(schema, layout)


def _xml_by_instance(central_dir) -> dict[str, bytes]:
    """Every instance XML Central accepted, by its meta/instanceID (edits included)."""
    out = {}
    for path in sorted((central_dir / "submissions").glob("*.xml")):
        if path.name in REFUSED:
            continue
        try:
            doc = from_openrosa_xml(path.read_bytes())
        except SubmissionError:
            continue
        if doc.instance_id:
            out.setdefault(doc.instance_id, path.read_bytes())
    return out


def test_schema_reads_kinds_repeats_labels_and_choices(rec_visit):
    schema, _ = rec_visit
    kinds = {f.path: f.kind for f in schema.fields}
    assert kinds["household_size"] == "integer"
    assert kinds["distance_km"] == "decimal"
    assert kinds["visit_time"] == "dateTime"
    assert kinds["services"] == "select_multiple"
    assert kinds["location"] == "geopoint"
    assert kinds["photo"] == "attachment"
    assert kinds["intro_note"] == "note"
    assert kinds["size_doubled"] == "text"  # a calculate keeps its bind type (string)
    assert [(r.path, r.parent) for r in schema.repeats] == [
        ("detainee", ""),
        ("detainee/injury", "detainee"),
    ]
    gender = schema.field("detainee/detainee_info/detainee_gender")
    assert gender.repeat == "detainee"
    assert [c.name for c in gender.choices] == ["female", "male", "other"]
    assert gender.choices[0].labels == {"en": "Female", "ur": "عورت"}
    assert schema.field("visitor_name").labels["ur"] == "ملاقاتی کا نام"


def test_layout_names_are_sql_safe_stable_and_split_typed_values(rec_visit):
    schema, plan = rec_visit
    columns = {(c.path, c.part): (c.table, c.name, c.storage) for c in plan.layout.columns.values()}
    assert columns["location", "latitude"] == ("form_rec_visit", "location_latitude", "decimal")
    assert columns["services", "choice:legal"] == ("form_rec_visit", "services_legal", "flag")
    assert columns["visit_time", "utc_offset"][1] == "visit_time_utc_offset"
    assert columns["detainee/detainee_info/detainee_age", ""] == (
        "form_rec_visit__detainee",
        "detainee_info_detainee_age",
        "integer",
    )
    again = plan_layout(schema, plan_layout(schema, None, set()).layout, set())
    assert not again.new_columns and not again.new_tables and not again.widened


def test_sql_names_never_collide_and_fit_postgresql():
    taken: set[str] = {"__id"}
    names = []
    for text in ["A-b", "a_b", "a.b", "x" * 90, "x" * 90 + "y", "__id", "1st", "مقام"]:
        names.append(lay.sql_name(text, taken))
        taken.add(names[-1])
    assert names[:3] == ["a_b", "a_b_2", "a_b_3"]
    assert len(set(names)) == len(names)
    assert all(len(n) <= 63 and n.replace("_", "").isalnum() and n.isascii() for n in names)
    assert names[6] == "f_1st"


def test_xml_document_keeps_repeats_groups_and_empty_values(central_dir, rec_visit):
    schema, _ = rec_visit
    xml = (central_dir / "submissions" / "v01.xml").read_bytes()
    doc = from_openrosa_xml(xml, schema.repeat_paths)
    assert doc.form_id == "rec_visit" and doc.form_version == "2026112801"
    assert doc.instance_id == "uuid:25ad35fd-1776-405a-b3ac-ccfb159d9ce8"
    assert doc.data["respondent"] == {"resp_name": None, "resp_age": None}
    assert doc.data["services"] is None
    assert isinstance(doc.data["detainee"], list) and len(doc.data["detainee"]) == 1
    assert [i["severity"] for i in doc.data["detainee"][0]["injury"]] == ["minor", "moderate"]
    assert "instanceID" not in doc.data["meta"]


def test_odata_document_keeps_json_values_and_spells_them_as_xml(central_dir):
    row = next(
        r
        for r in odata_rows(central_dir, "134-odata-submissions-expand-all.json")
        if r["location"] and r["household_size"]
    )
    doc = from_odata(row, "rec_visit")
    lon, lat, alt = row["location"]["coordinates"]
    assert doc.data["household_size"] == row["household_size"]  # the JSON number, shared
    data = doc.lexical()
    assert data["location"].split()[:3] == [str(lat), str(lon), str(alt)]
    assert data["household_size"] == str(row["household_size"])
    assert doc.root_id == row["__id"] and doc.system["formVersion"] == "2026112801"
    assert not any("@odata" in k or k.startswith("__") for k in data)
    assert all("@odata" not in k and k != "__id" for d in data.get("detainee", []) for k in d)


def test_recorded_xml_and_odata_give_the_same_rows(central_dir, rec_visit):
    """Every submission Central holds, read as the XML Collect posted and as OData $expand=*."""
    schema, plan = rec_visit
    xml = _xml_by_instance(central_dir)
    rows = odata_rows(central_dir, "134-odata-submissions-expand-all.json") + odata_rows(
        central_dir,
        *FINAL_PAGES,
    )
    compared = edited = 0
    for row in rows:
        current = row["meta"]["instanceID"]
        if current not in xml:  # uuid:0 (Central took truncated XML) and Central's own ids
            continue
        from_xml = from_openrosa_xml(xml[current], schema.repeat_paths)
        from_json = from_odata(row, "rec_visit")
        assert from_xml.data == _same_shape(from_json.lexical(), from_xml.data)
        a = document_rows(from_xml, plan, row["__id"])
        b = document_rows(from_json, plan, row["__id"])
        assert a.tables == b.tables, current
        assert a.problems == b.problems == []
        compared += 1
        edited += row["__id"] != current
    assert compared >= 30 and edited >= 2


def _same_shape(odata, xml):
    """OData values with XML's lexical spelling where both mean the same number or point."""
    if isinstance(odata, dict):
        return {
            k: _same_shape(v, xml.get(k) if isinstance(xml, dict) else None)
            for k, v in odata.items()
        }
    if isinstance(odata, list):
        return [
            _same_shape(v, xml[i] if isinstance(xml, list) and i < len(xml) else None)
            for i, v in enumerate(odata)
        ]
    if isinstance(odata, str) and isinstance(xml, str) and odata != xml:
        try:
            if [float(x) for x in odata.split()] == [float(x) for x in xml.split()]:
                return xml
        except ValueError:
            pass
    return odata


def test_repeat_row_ids_are_centrals(central_dir, rec_visit):
    _, plan = rec_visit
    rows = odata_rows(central_dir, "134-odata-submissions-expand-all.json")
    row = next(r for r in rows if any(d.get("injury") for d in r.get("detainee", [])))
    detainee = row["detainee"][0]
    assert detainee["__id"] == repeat_row_id(row["__id"], [("detainee", 0)])
    assert detainee["injury"][0]["__id"] == repeat_row_id(
        row["__id"], [("detainee", 0), ("injury", 0)]
    )
    tables = document_rows(from_odata(row, "rec_visit"), plan, row["__id"]).dicts()
    assert tables["form_rec_visit__detainee"][0]["__id"] == detainee["__id"]


GROUPREPEAT = (
    "345-odata-grouprepeat-expand-all.json",
    "346-odata-grouprepeat-person.json",
    "347-odata-grouprepeat-visits.json",
)


@pytest.mark.parametrize("source", ["xml", "odata"])
def test_repeat_row_ids_inside_groups_are_centrals(central_dir, source):
    """A repeat inside a group, and one inside a group inside it: the row ids and parent ids
    Central recorded (exchanges 346, 347), from the XML as from the OData row (fact 42)."""
    schema = parse_xform((central_dir / "forms" / "rec_grouprepeat.xml").read_bytes())
    plan = RowPlan(schema, plan_layout(schema, None, set()).layout)
    [row] = odata_rows(central_dir, GROUPREPEAT[0])
    if source == "xml":
        xml = (central_dir / "submissions" / "grouprepeat-1.xml").read_bytes()
        doc = from_openrosa_xml(xml, schema.repeat_paths)
    else:
        doc = from_odata(row, "rec_grouprepeat")
    tables = document_rows(doc, plan, row["__id"]).dicts()
    person = odata_rows(central_dir, GROUPREPEAT[1])
    visits = odata_rows(central_dir, GROUPREPEAT[2])
    person_table = plan.layout.tables["people/person"]
    visits_table = plan.layout.tables["people/person/details/visits"]
    assert [(r["__id"], r["__parent_id"]) for r in tables[person_table]] == [
        (r["__id"], r["__Submissions-id"]) for r in person
    ]
    assert [(r["__id"], r["__parent_id"]) for r in tables[visits_table]] == [
        (r["__id"], r["__Submissions-people-person-id"]) for r in visits
    ]
    assert repeat_row_id(row["__id"], [("people", None), ("person", 0)]) == person[0]["__id"]


def test_absent_repeats_give_no_rows(central_dir, rec_visit):
    schema, plan = rec_visit
    xml = (central_dir / "submissions" / "v02.xml").read_bytes()
    tables = document_rows(from_openrosa_xml(xml, schema.repeat_paths), plan, "x").tables
    assert "form_rec_visit__detainee" not in tables


def test_values_that_do_not_parse_are_problems_not_crashes(rec_visit):
    schema, plan = rec_visit
    xml = (
        b'<data id="rec_visit" version="2026112801"><household_size>many</household_size>'
        b"<distance_km>1,5</distance_km><visit_date>01/11/2026</visit_date>"
        b"<visit_time>yesterday</visit_time><start>0001-01-01T00:00:00+05:00</start>"
        b"<services>food cake</services>"
        b"<location>north</location><surprise>hello</surprise>"
        b"<meta><instanceID>uuid:bad</instanceID></meta></data>"
    )
    result = document_rows(from_openrosa_xml(xml, schema.repeat_paths), plan, "uuid:bad")
    row = result.dicts()["form_rec_visit"][0]
    assert row["household_size"] is None and row["visit_date"] is None
    assert row["services"] == "food cake" and row["services_food"] == 1
    found = {(p.code, p.path, p.value) for p in result.problems}
    assert found == {
        ("bad_value", "household_size", "many"),
        ("bad_value", "distance_km", "1,5"),
        ("bad_value", "visit_date", "01/11/2026"),
        ("bad_value", "visit_time", "yesterday"),
        ("bad_value", "start", "0001-01-01T00:00:00+05:00"),
        ("unknown_choice", "services", "food cake"),
        ("bad_value", "location", "north"),
        ("unknown_field", "surprise", "hello"),
    }


@pytest.mark.parametrize(
    "xml, said",
    [
        (b"<data id='x'><a>1</a>", "not well-formed"),
        (b"<data><a>1</a></data>", "no form id"),
        (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "boom">]><data id="x">&e;</data>',
            "DTD",
        ),
    ],
)
def test_unreadable_xml_is_refused_with_a_reason(xml, said):
    with pytest.raises(SubmissionError, match=said):
        from_openrosa_xml(xml)


def test_encrypted_envelope_names_its_files(central_dir):
    xml = (central_dir / "submissions" / "encrypted" / "e01.manifest.xml").read_bytes()
    doc = from_openrosa_xml(xml)
    assert doc.encrypted and doc.form_id == "rec_encrypted" and doc.data == {}
    assert doc.files[-1] == "submission.xml.enc" and doc.instance_id.startswith("uuid:")


# Documents generated from the rec_visit schema, written out both ways Central would show them.

_texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12
).filter(lambda t: t.strip() == t and t)


def _value(kind, choices):
    if kind == "integer":
        return st.integers(-(2**40), 2**40).map(lambda n: (str(n), n))
    if kind == "decimal":
        return st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: (repr(x), x))
    if kind == "date":
        return st.dates().map(lambda d: (d.isoformat(), d.isoformat()))
    if kind == "dateTime":
        return st.datetimes(
            datetime(1900, 1, 1), datetime(2100, 1, 1), timezones=st.sampled_from([UTC, PKT])
        ).map(lambda d: (d.isoformat(timespec="milliseconds"),) * 2)
    if kind == "select_one":
        return st.sampled_from([c.name for c in choices]).map(lambda c: (c, c))
    if kind == "select_multiple":
        return st.lists(st.sampled_from([c.name for c in choices]), min_size=1, unique=True).map(
            lambda cs: (" ".join(cs),) * 2
        )
    if kind == "geopoint":
        return st.tuples(
            st.floats(-90, 90), st.floats(-180, 180), st.floats(-100, 9000), st.floats(0, 100)
        ).map(
            lambda p: (
                " ".join(repr(x) for x in p),
                {
                    "type": "Point",
                    "coordinates": [p[1], p[0], p[2]],
                    "properties": {"accuracy": p[3]},
                },
            )
        )
    return _texts.map(lambda t: (t, t))


@st.composite
def _documents(draw, schema):
    """(instance XML, OData row) pairs for one generated submission of `schema`."""

    def fill(repeat, depth):
        xml_parts, odata = [], {}
        for f in schema.fields:
            if f.repeat != repeat or f.kind in ("note", "deprecatedID"):
                continue
            local = f.local_path.split("/")
            empty = draw(st.booleans())
            if f.kind == "instanceID":
                lexical = json_value = instance_id
            elif empty:
                lexical = json_value = None
            else:
                lexical, json_value = draw(_value(f.kind, f.choices))
            xml_parts.append((local, lexical))
            target = odata
            for part in local[:-1]:
                target = target.setdefault(part, {})
            target[local[-1]] = json_value
        children = {}
        for r in schema.repeats:
            if r.parent == repeat:
                items = [fill(r.path, depth + 1) for _ in range(draw(st.integers(0, 3 - depth)))]
                children[r.name] = items
                if items:
                    odata[r.name] = [o for _, o in items]
        return (xml_parts, children), odata

    instance_id = f"uuid:{draw(st.uuids())}"
    (parts, children), odata = fill("", 0)
    xml = _render(schema.root, parts, children)
    odata["__id"] = instance_id
    odata["__system"] = {"formVersion": schema.version, "status": None}
    xml = xml.replace(
        f"<{schema.root}>", f'<{schema.root} id="{schema.form_id}" version="{schema.version}">', 1
    )
    return xml.encode("utf-8"), odata


def _render(name, parts, children):
    from xml.sax.saxutils import escape

    tree: dict = {}
    for local, lexical in parts:
        node = tree
        for part in local[:-1]:
            node = node.setdefault(part, {})
        node[local[-1]] = lexical

    def out(node):
        text = ""
        for key, value in node.items():
            if isinstance(value, dict):
                text += f"<{key}>{out(value)}</{key}>"
            elif value is None:
                text += f"<{key}/>"
            else:
                text += f"<{key}>{escape(value)}</{key}>"
        return text

    body = out(tree)
    for child_name, items in children.items():
        for (child_parts, grandchildren), _ in items:
            body += _render(child_name, child_parts, grandchildren)
    return f"<{name}>{body}</{name}>"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_generated_submissions_give_the_same_rows_from_xml_and_odata(rec_visit, data):
    schema, plan = rec_visit
    xml, odata = data.draw(_documents(schema))
    from_xml = from_openrosa_xml(xml, schema.repeat_paths)
    from_json = from_odata(odata, schema.form_id)
    assert from_xml.instance_id == from_json.instance_id
    a = document_rows(from_xml, plan, from_json.root_id)
    b = document_rows(from_json, plan, from_json.root_id)
    assert a.tables == b.tables
    assert a.problems == b.problems == []
    # Same submission, same rows: nothing depends on anything but the document.
    assert document_rows(from_xml, plan, from_json.root_id).tables == a.tables


def test_many_siblings_become_one_list_in_order():
    """Repeated siblings used to be gathered by copying the list for each one (quadratic)."""
    xml = (
        '<data id="x"><meta><instanceID>uuid:s</instanceID></meta>'
        + "".join(f"<x>{i}</x>" for i in range(200_000))
        + "</data>"
    ).encode()
    doc = from_openrosa_xml(xml)
    assert doc.data["x"] == [str(i) for i in range(200_000)]
    assert from_openrosa_xml(xml, max_elements=200_003).instance_id == "uuid:s"  # all of them
    with pytest.raises(SubmissionError, match="more than 200,002 XML elements") as refused:
        from_openrosa_xml(xml, with_data=False, max_elements=200_002)
    assert refused.value.reason == SubmissionError.TOO_MANY_ELEMENTS


def test_undeclared_odk_prefixes_are_declared_and_nothing_else_is_forgiven():
    xml = (
        b'<?xml version="1.0"?><data id="x" xmlns:h="http://www.w3.org/1999/xhtml"><a jr:x="1">1'
        b"</a><odk:b>2</odk:b><orx:meta><orx:instanceID>uuid:o</orx:instanceID></orx:meta></data>"
    )
    doc = from_openrosa_xml(xml)
    assert (doc.instance_id, doc.data) == ("uuid:o", {"a": "1", "b": "2", "meta": {}})
    for broken in (
        xml.replace(b"orx:", b"foo:"),  # an unknown prefix
        xml[:-20],  # cut off as well
        b'<!DOCTYPE data [<!ENTITY e "x">]>' + xml[21:],  # a DTD stays refused
    ):
        with pytest.raises(SubmissionError) as refused:
            from_openrosa_xml(broken)
        assert refused.value.reason in (
            SubmissionError.NOT_WELL_FORMED,
            SubmissionError.FORBIDDEN,
        )


def test_two_instance_ids_are_refused():
    xml = b'<data id="x"><meta><instanceID>a</instanceID><instanceID>b</instanceID></meta></data>'
    for with_data in (True, False):
        with pytest.raises(SubmissionError, match="2 meta/instanceID elements") as refused:
            from_openrosa_xml(xml, with_data=with_data)
        assert refused.value.reason == SubmissionError.BAD_INSTANCE_ID


_KEY = "A" * 342 + "=="  # 256 bytes
_SIG = "B" * 342 + "=="


@pytest.mark.parametrize(
    "body, said",
    [
        (f"<base64EncryptedKey>{_KEY}</base64EncryptedKey><name>Ayesha</name>", "<name>"),
        (f"<base64EncryptedKey>{_KEY}</base64EncryptedKey>", "no encryptedXmlFile"),
        ("<encryptedXmlFile>s.xml.enc</encryptedXmlFile>", "no base64EncryptedKey"),
        (
            "<base64EncryptedKey>not base64!</base64EncryptedKey>"
            "<encryptedXmlFile>s.xml.enc</encryptedXmlFile>",
            "not base64",
        ),
        (
            f"<base64EncryptedKey>{_KEY}</base64EncryptedKey>Ayesha 35202-1234567-8"
            "<encryptedXmlFile>s.xml.enc</encryptedXmlFile>",
            "text outside",
        ),
        (
            f"<base64EncryptedKey>{_KEY}</base64EncryptedKey><encryptedXmlFile>s.xml.enc"
            "</encryptedXmlFile><meta><instanceID>u</instanceID><name>Ayesha</name></meta>",
            "<meta> holds <name>",
        ),
        (
            f"<base64EncryptedKey>{_KEY}</base64EncryptedKey><encryptedXmlFile>s.xml.enc"
            "</encryptedXmlFile><media><file>a.jpg</file></media>",
            "'a.jpg'",
        ),
        (
            f"<base64EncryptedKey>{_KEY}</base64EncryptedKey><encryptedXmlFile>s.xml.enc"
            "</encryptedXmlFile><base64EncryptedElementSignature>QUJD"
            "</base64EncryptedElementSignature>",
            "different sizes",
        ),
        (
            f"<base64EncryptedKey>{_KEY}</base64EncryptedKey><base64EncryptedKey>{_KEY}"
            "</base64EncryptedKey><encryptedXmlFile>s.xml.enc</encryptedXmlFile>",
            "more than one",
        ),
        (
            f'<base64EncryptedKey name="Ayesha">{_KEY}</base64EncryptedKey>'
            "<encryptedXmlFile>s.xml.enc</encryptedXmlFile>",
            "has attributes",
        ),
    ],
)
def test_an_envelope_must_be_only_an_envelope(body, said):
    xml = f'<data id="f" version="1" encrypted="yes">{body}</data>'.encode()
    with pytest.raises(SubmissionError, match=re.escape(said)) as refused:
        from_openrosa_xml(xml)
    assert refused.value.reason == SubmissionError.BAD_ENVELOPE


def test_a_complete_envelope_gives_its_files_and_key_size():
    xml = (
        f'<data id="f" version="1" encrypted="yes"><base64EncryptedKey>{_KEY}'
        "</base64EncryptedKey><encryptedXmlFile>s.xml.enc</encryptedXmlFile><media><file>a.jpg.enc"
        "</file></media><media><file>b.m4a.enc</file></media><base64EncryptedElementSignature>"
        f"{_SIG}</base64EncryptedElementSignature><orx:meta><orx:instanceID>uuid:e"
        "</orx:instanceID></orx:meta></data>"
    ).encode()
    doc = from_openrosa_xml(xml)
    assert (doc.encrypted, doc.instance_id, doc.key_size) == (True, "uuid:e", 256)
    assert doc.files == ("a.jpg.enc", "b.m4a.enc", "s.xml.enc")


def test_an_encrypted_form_knows_the_size_of_its_wrapped_keys(central_dir, rec_visit):
    encrypted = parse_xform((central_dir / "forms" / "rec_encrypted.xml").read_bytes())
    assert encrypted.key_bytes == 256  # RSA-2048
    assert rec_visit[0].key_bytes is None
