"""A submission's page as a view model: labels by language, choices, groups, repeats, files,
the edit history, reviews, decisions, and what each viewer may see."""

from __future__ import annotations

import orjson
import pytest
from pyxform.xls2xform import convert

from store.review_outbox import DecisionError
from store.schema import parse_xform
from store.submission_view import (
    FieldView,
    RepeatView,
    SectionView,
    build_submission_view,
    label_in,
    read_submission_view,
)
from tests.formtables import form_md

VERSION = "2026112801"
S = "bind::nigraan:sensitivity"

SURVEY = f"""
| survey |
|        | type                 | name     | label::English (en) | label::Urdu (ur) | {S}        |
|        | text                 | code     | Survivor code       | متاثرہ کوڈ        | pseudonym  |
|        | select_one district  | district | District            | ضلع               |            |
|        | select_multiple help | services | Services            | خدمات             |            |
|        | note                 | intro    | Read this out       | یہ پڑھیں          |            |
|        | begin_group          | details  | Details             | تفصیلات           |            |
|        | text                 | story    | Account             | بیان              | restricted |
|        | begin_group          | inner    | Inner               | اندرونی           |            |
|        | integer              | age      | Age                 | عمر               |            |
|        | end_group            |          |                     |                   |            |
|        | end_group            |          |                     |                   |            |
|        | begin_repeat         | visit    | Visits              | ملاقاتیں          |            |
|        | date                 | when     | Date                | تاریخ             |            |
|        | select_one district  | where    | Where               |                   |            |
|        | end_repeat           |          |                     |                   |            |
|        | image                | photo    | Photo               | تصویر             |            |
|        | file                 | letter   | Letter              | خط                |            |
"""
CHOICES = """
| choices |
|         | list_name | name   | label::English (en) | label::Urdu (ur) |
|         | district  | lahore | Lahore              | لاہور            |
|         | district  | multan | Multan              | ملتان            |
|         | help      | legal  | Legal aid           | قانونی مدد       |
|         | help      | health | Health              | صحت              |
"""
IDENTIFYING_ROW = """
|        | text                 | cnic     | CNIC                | شناختی کارڈ       | identifying |
"""


def xform(form_id: str = "survivor_intake", survey: str = SURVEY, version: str = VERSION) -> bytes:
    md = form_md(form_id, survey, CHOICES, version=version)
    return convert(xlsform=md, file_type=".md", warnings=[]).xform.encode()


def instance(
    uuid: str,
    body: str,
    *,
    form_id="survivor_intake",
    deprecated: str | None = None,
    version: str = VERSION,
) -> bytes:
    dep = f"<deprecatedID>uuid:{deprecated}</deprecatedID>" if deprecated else ""
    return (
        f'<data id="{form_id}" version="{version}">{body}'
        f"<meta><instanceID>uuid:{uuid}</instanceID>{dep}</meta></data>"
    ).encode()


BODY_1 = (
    "<code>S-0001</code><district>lahore</district><services>legal health</services><intro/>"
    "<details><story>Held two nights</story><inner><age>31</age></inner></details>"
    "<visit><when>2026-11-01</when><where>lahore</where></visit>"
    "<visit><when>2026-11-08</when><where>multan</where></visit>"
    "<photo>face.jpg</photo><letter>letter.pdf</letter>"
)
BODY_2 = (
    BODY_1.replace("<age>31</age>", "<age>32</age>")
    .replace("<where>multan</where>", "<where>lahore</where>")
    .replace("legal health", "health")
)


def version_row(
    uuid: str, payload: bytes, *, current: bool, kind: str = "xml", form_id: str = "survivor_intake"
) -> dict:
    return {
        "form_id": form_id,
        "instance_id": f"uuid:{uuid}",
        "payload": payload,
        "payload_kind": kind,
        "form_version": VERSION,
        "source": "openrosa",
        "current": current,
        "received_at": "2026-11-28T10:00:00Z",
        "submitter_name": "tablet-1",
        "device_id": "collect:abc",
    }


def submission_row(uuid: str = "2", *, form_id="survivor_intake", **extra) -> dict:
    row = {
        "form_id": form_id,
        "root_id": "uuid:1",
        "current_instance_id": f"uuid:{uuid}",
        "form_version": VERSION,
        "source": "openrosa",
        "encrypted": False,
        "edits": 1,
        "first_received_at": None,
        "updated_at": None,
        "submitter_name": "tablet-1",
        "device_id": "collect:abc",
        "review_state": None,
        "central_submission_date": None,
    }
    return {**row, **extra}


FILES = [
    {"name": "face.jpg", "exists": True, "size": 10, "content_type": "image/jpeg"},
    {"name": "letter.pdf", "exists": False, "size": None, "content_type": None},
]


def view(lang="en", may_see_restricted=False, *, schema_bytes=None, versions=None, **sub):
    schema = parse_xform(schema_bytes or xform())
    versions = versions or [
        version_row("1", instance("1", BODY_1), current=False),
        version_row("2", instance("2", BODY_2, deprecated="1"), current=True),
    ]
    return build_submission_view(
        submission=submission_row(**sub),
        schemas={schema.version: schema},
        versions=versions,
        attachments=FILES,
        reviews=[],
        lang=lang,
        may_see_restricted=may_see_restricted,
    )


def by_label(items) -> dict:
    return {item.label: item for item in items}


def test_fields_under_their_labels_with_choice_labels_in_english_and_urdu():
    en, ur = by_label(view("en").items), by_label(view("ur").items)
    assert en["Survivor code"].value == "S-0001"
    assert en["District"].value == "Lahore"
    assert ur["ضلع"].value == "لاہور"
    assert en["Services"].values == ("Health",)
    assert "Read this out" not in en  # notes are not data
    first = view("en", versions=[version_row("1", instance("1", BODY_1), current=True)])
    assert by_label(first.items)["Services"].values == ("Legal aid", "Health")
    assert by_label(
        view("ur", versions=[version_row("1", instance("1", BODY_1), current=True)]).items
    )["خدمات"].values == ("قانونی مدد", "صحت")


def test_a_missing_translation_falls_back_to_the_other_language():
    assert label_in({"en": "Where"}, "ur") == "Where"
    assert label_in({"ur": "کہاں"}, "en") == "کہاں"
    assert label_in({"default": "Plain"}, "ur") == "Plain"
    assert label_in({}, "en", "name") == "name"
    visits = by_label(view("ur").items)["ملاقاتیں"]
    assert visits.columns == ("تاریخ", "Where")


def test_groups_are_nested_sections():
    details = by_label(view("en", may_see_restricted=True).items)["Details"]
    assert isinstance(details, SectionView)
    inner = by_label(details.items)["Inner"]
    assert isinstance(inner, SectionView)
    assert [(f.label, f.value) for f in inner.items] == [("Age", "32")]
    assert by_label(view("ur").items)["تفصیلات"].items[0].label == "اندرونی"


def test_repeats_are_tables_a_column_per_field_a_row_per_instance():
    visits = by_label(view("en").items)["Visits"]
    assert isinstance(visits, RepeatView)
    assert visits.columns == ("Date", "Where")
    assert [[c.value for c in row] for row in visits.rows] == [
        ["2026-11-01", "Lahore"],
        ["2026-11-08", "Lahore"],
    ]


def test_photos_inline_and_other_files_as_downloads():
    v = view("en")
    photo, letter = by_label(v.items)["Photo"], by_label(v.items)["Letter"]
    assert photo.attachment.is_image and photo.attachment.arrived
    assert photo.attachment.endpoint == "submissions.attachment"
    assert photo.attachment.url_args == {
        "form_id": "survivor_intake",
        "instance_id": "uuid:2",
        "name": "face.jpg",
    }
    assert not letter.attachment.is_image and not letter.attachment.arrived
    assert [a.name for a in v.photos] == ["face.jpg"]
    assert [a.name for a in v.downloads] == ["letter.pdf"]


def test_the_history_says_what_each_edit_changed_in_order():
    third = instance("3", BODY_2.replace("S-0001", "S-0002"), deprecated="2")
    versions = [
        version_row("1", instance("1", BODY_1), current=False),
        version_row("2", instance("2", BODY_2, deprecated="1"), current=False),
        version_row("3", third, current=True),
    ]
    v = view("en", True, versions=versions, uuid="3")
    assert [x.number for x in v.versions] == [1, 2, 3]
    assert v.versions[0].changes == ()
    assert [(c.label, c.old, c.new) for c in v.versions[1].changes] == [
        ("Services", "Legal aid, Health", "Health"),
        ("Details › Inner › Age", "31", "32"),
        ("Visits 2 › Where", "Multan", "Lahore"),
    ]
    assert [(c.label, c.old, c.new) for c in v.versions[2].changes] == [
        ("Survivor code", "S-0001", "S-0002")
    ]
    ur = view("ur", versions=versions, uuid="3")
    assert ("ملاقاتیں 2 › Where", "ملتان", "لاہور") in [
        (c.label, c.old, c.new) for c in ur.versions[1].changes
    ]


def test_odata_versions_read_like_xml():
    row = {
        "__id": "uuid:1",
        "__system": {"formVersion": VERSION},
        "code": "S-0001",
        "district": "multan",
        "services": "legal",
        "details": {"story": "x", "inner": {"age": 40}},
        "visit": [{"when": "2026-11-01", "where": "lahore"}],
        "meta": {"instanceID": "uuid:1"},
    }
    v = view(
        "en", versions=[version_row("1", orjson.dumps(row), current=True, kind="json")], uuid="1"
    )
    items = by_label(v.items)
    assert (items["District"].value, items["Services"].values) == ("Multan", ("Legal aid",))
    assert by_label(by_label(items["Details"].items)["Inner"].items)["Age"].value == "40"
    assert [[c.value for c in r] for r in items["Visits"].rows] == [["2026-11-01", "Lahore"]]


def test_restricted_fields_only_for_those_who_may_see_them():
    hidden, shown = view("en", False), view("en", True)
    assert "Account" not in by_label(by_label(hidden.items)["Details"].items)
    assert hidden.hidden_restricted == 1
    story = by_label(by_label(shown.items)["Details"].items)["Account"]
    assert (story.value, story.restricted, shown.hidden_restricted) == ("Held two nights", True, 0)
    changed = [
        c.label
        for v in view(
            "en",
            False,
            versions=[
                version_row("1", instance("1", BODY_1), current=False),
                version_row(
                    "2", instance("2", BODY_1.replace("two", "three"), deprecated="1"), current=True
                ),
            ],
        ).versions
        for c in v.changes
    ]
    assert changed == []  # nor in the history


def test_identifying_fields_never_appear_whatever_the_role():
    survey = SURVEY + IDENTIFYING_ROW
    body = BODY_1 + "<cnic>35202-0000000-0</cnic>"
    edited = BODY_1 + "<cnic>35202-1111111-1</cnic>"
    versions = [
        version_row("1", instance("1", body), current=False),
        version_row("2", instance("2", edited, deprecated="1"), current=True),
    ]
    v = view("en", True, schema_bytes=xform(survey=survey), versions=versions)
    assert "CNIC" not in by_label(v.items)
    assert all(c.label != "CNIC" for x in v.versions for c in x.changes)
    assert "35202" not in repr(v)


@pytest.mark.parametrize("lang", ["en", "ur"])
def test_encrypted_and_identity_register_submissions_show_no_data(lang):
    encrypted = view(lang, True, encrypted=True)
    assert encrypted.items == () and encrypted.photos == () and encrypted.downloads == ()
    assert ("encrypted" in encrypted.note) if lang == "en" else ("خفیہ" in encrypted.note)
    register = view(
        lang,
        True,
        schema_bytes=xform("identity_register"),
        form_id="identity_register",
        versions=[
            version_row(
                "1",
                instance("1", BODY_1, form_id="identity_register"),
                current=True,
                form_id="identity_register",
            )
        ],
    )
    assert register.items == () and register.note
    assert "S-0001" not in repr(register) and all(x.changes == () for x in register.versions)


def test_review_history_and_decision_choices():
    reviews = [
        {
            "review_state": "hasIssues",
            "comment": "Check the age",
            "created_at": "t1",
            "done_at": "t2",
            "last_error": None,
        },
        {
            "review_state": "approved",
            "comment": None,
            "created_at": "t3",
            "done_at": None,
            "last_error": "Central is not reachable",
        },
        {
            "review_state": None,
            "comment": "kept",
            "created_at": "t4",
            "done_at": "t4",
            "last_error": "not from Central",
        },
    ]
    schema = parse_xform(xform())
    v = build_submission_view(
        submission=submission_row(review_state="approved", central_submission_date="d"),
        schemas={VERSION: schema},
        versions=[],
        attachments=[],
        reviews=reviews,
        lang="ur",
    )
    assert [(r.state, r.comment, r.status) for r in v.reviews] == [
        ("hasIssues", "Check the age", "sent"),
        ("approved", None, "failed"),
        (None, "kept", "local"),
    ]
    assert v.reviews[0].state_label == "مسائل ہیں"
    assert [s for s, _ in v.decision.choices] == ["approved", "hasIssues", "rejected"]
    assert (v.decision.current, v.decision.current_label, v.decision.to_central) == (
        "approved",
        "منظور",
        True,
    )
    fresh = view("en", edits=0)
    assert (fresh.decision.current, fresh.decision.to_central) == ("received", False)
    assert view("en").decision.current == "edited"


# ------------------------------------------------------------- from the store


def test_read_from_the_store(store):
    schema = xform()
    store.register_form(schema)
    photo = b"\xff\xd8\xff\xe0 not a real jpeg"
    store.ingest(instance("1", BODY_1), attachments={"face.jpg": (photo, "image/jpeg")})
    store.ingest(
        instance("2", BODY_2, deprecated="1"), attachments={"face.jpg": (photo, "image/jpeg")}
    )
    store.record_decision("survivor_intake", "uuid:1", "hasIssues", "Age?")
    v = read_submission_view(store, "survivor_intake", "uuid:1", lang="ur", may_see_restricted=True)
    items = by_label(v.items)
    assert items["ضلع"].value == "لاہور"
    assert [a.name for a in v.photos] == ["face.jpg"] and v.photos[0].arrived
    assert [a.name for a in v.downloads] == ["letter.pdf"] and not v.downloads[0].arrived
    assert [(c.old, c.new) for c in v.versions[1].changes][1] == ("31", "32")
    assert [(r.state, r.comment, r.status) for r in v.reviews] == [("hasIssues", "Age?", "local")]
    assert v.decision.current == "hasIssues"
    assert read_submission_view(store, "survivor_intake", "uuid:nope") is None
    assert isinstance(items["متاثرہ کوڈ"], FieldView)


def test_a_local_decision_stays_local_and_bad_ones_are_refused(store):
    store.register_form(xform())
    store.ingest(instance("1", BODY_1))
    store.record_decision("survivor_intake", "uuid:1", "approved", "  fine  ")
    assert store.pending_reviews() == []  # nothing for Central
    [entry] = store.reviews("survivor_intake", "uuid:1")
    assert (entry["review_state"], entry["comment"]) == ("approved", "fine")
    assert store.submission("survivor_intake", "uuid:1")["review_state"] == "approved"
    for state, comment, root in [
        ("edited", None, "uuid:1"),
        (None, " ", "uuid:1"),
        ("approved", None, "uuid:nope"),
    ]:
        with pytest.raises(DecisionError) as refused:
            store.record_decision("survivor_intake", root, state, comment)
        assert refused.value.hint
    assert len(store.reviews()) == 1
    store.mark_deleted("survivor_intake", {"uuid:1": "2026-11-30T10:00:00.000Z"})
    with pytest.raises(DecisionError, match="deleted in Central"):
        store.record_decision("survivor_intake", "uuid:1", "rejected", None)
    assert len(store.reviews()) == 1
