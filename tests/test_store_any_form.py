"""Any form pyxform compiles registers, or is refused with a message naming it: no code per form.

Each form is written as a markdown table, compiled by pyxform, registered on SQLite and on
PostgreSQL, and a submission is ingested and its rows read back.
"""

from __future__ import annotations

import json

import pytest
from pyxform.xls2xform import convert
from sqlalchemy import select

from nigraan.cli import main
from nigraan.errors import FormError
from store import layout as lay
from store import tables as t
from store.document import from_openrosa_xml
from store.schema import _lang_key, parse_xform, version_of

VERSION = "2026112801"


def compile_md(form_id: str, survey: str, choices: str = "", extra: str = "") -> bytes:
    """The XForm pyxform makes of these sheets (plus a settings sheet with id and version)."""
    settings = f"""
    | settings |
    |          | form_id   | version   |
    |          | {form_id} | {VERSION} |
    """
    md = survey + choices + extra + settings
    return convert(xlsform=md, file_type=".md", warnings=[]).xform.encode()


def instance(form_id: str, body: str, uuid: str, version_attr: str = "version") -> bytes:
    return (
        f'<data xmlns:orx="http://openrosa.org/xforms" id="{form_id}" {version_attr}="{VERSION}">'
        f"{body}<meta><instanceID>uuid:{uuid}</instanceID></meta></data>"
    ).encode()


def _fields(store, form_id: str) -> dict:
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.form_fields).where(t.form_fields.c.form_id == form_id))
        return {r.field_path: r for r in rows}


# A 24-character id (like onadata's childrens_survey_unicode) and three levels of repeats: the
# repeat tables' names are cut to 63 characters and share their first 54.
NESTED = """
| survey |
|        | type         | name                      | label    |
|        | begin repeat | household_roster_members  | Members  |
|        | text         | member_name               | Name     |
|        | begin repeat | child_information_records | Children |
|        | integer      | child_age                 | Age      |
|        | begin repeat | vaccination_visits        | Visits   |
|        | date         | visit_date                | Date     |
|        | end repeat   |                           |          |
|        | end repeat   |                           |          |
|        | end repeat   |                           |          |
"""


def test_a_long_form_id_with_three_levels_of_repeats_registers(store):
    form_id = "childrens_survey_unicode"
    store.register_form(compile_md(form_id, NESTED))
    tables = store.form_tables(form_id)
    assert len(tables) == 4
    names = [tb.name for tb in tables.values()]
    indexes = [ix.name for tb in tables.values() for ix in tb.indexes]
    assert len(set(names)) == 4 and len(set(indexes)) == 3
    assert all(len(n) <= lay.MAX_NAME for n in names + indexes)

    body = (
        "<household_roster_members><member_name>Amna</member_name>"
        "<child_information_records><child_age>3</child_age>"
        "<vaccination_visits><visit_date>2026-11-01</visit_date></vaccination_visits>"
        "<vaccination_visits><visit_date>2026-11-20</visit_date></vaccination_visits>"
        "</child_information_records></household_roster_members>"
    )
    result = store.ingest(instance(form_id, body, "nested-1"))
    assert (result.status, result.normalised) == ("created", "typed")
    visits = store.rows(
        tables["household_roster_members/child_information_records/vaccination_visits"].name
    )
    assert [v["visit_date"].isoformat() for v in visits] == ["2026-11-01", "2026-11-20"]
    children = store.rows(tables["household_roster_members/child_information_records"].name)
    assert children[0]["child_age"] == 3
    assert {v["__parent_id"] for v in visits} == {children[0]["__id"]}


def test_an_index_name_keeps_apart_tables_that_share_a_long_start():
    a, b = "form_" + "x" * 58, "form_" + "x" * 57 + "y"
    assert lay.index_name(a) != lay.index_name(b)
    assert max(len(lay.index_name(a)), len(lay.index_name(b))) <= 63
    assert lay.index_name("form_a__r") == "ix_form_a__r_sub"  # short names as before


NOTES_ONLY = """
| survey |
|        | type | name    | label          |
|        | note | welcome | Nothing to ask |
"""
REPEAT_OF_NOTES = """
| survey |
|        | type         | name    | label   |
|        | integer      | count   | Count   |
|        | begin repeat | reminder| Reminder|
|        | note         | info    | Info    |
|        | end repeat   |         |         |
"""


def test_forms_and_repeats_without_data_columns_register(store):
    store.register_form(compile_md("only_notes", NOTES_ONLY))
    store.register_form(compile_md("repeat_of_notes", REPEAT_OF_NOTES))
    assert store.ingest(instance("only_notes", "<welcome/>", "notes-1")).normalised == "typed"
    assert [r["__id"] for r in store.rows("form_only_notes")] == ["uuid:notes-1"]
    body = "<count>2</count><reminder><info/></reminder><reminder><info/></reminder>"
    assert store.ingest(instance("repeat_of_notes", body, "notes-2")).normalised == "typed"
    reminders = store.rows(store.form_table("repeat_of_notes", "reminder").name)
    assert sorted(r["__position"] for r in reminders) == [1, 2]
    # a new version that adds a field to the note-only form still works
    again = store.register_form(
        compile_md("only_notes", NOTES_ONLY + "| | text | remark | Remark |\n").replace(
            VERSION.encode(), b"2026112802"
        )
    )
    assert again.status == "new_version" and again.new_columns == 1


def test_a_form_named_like_a_store_table_gets_a_table_of_its_own(store):
    md = "| survey |\n| | type | name | label |\n| | text | a | A |\n"
    store.register_form(compile_md("versions", md))
    assert store.form_table("versions").name != "form_versions"
    assert store.ingest(instance("versions", "<a>x</a>", "named-1")).normalised == "typed"


TRANSLATED = """
| survey |
|        | type             | name   | label::English (en) | label::Urdu (ur) | choice_filter  |
|        | select_one state | state  | State               | صوبہ             |                |
|        | select_one city  | city   | City                | شہر              | state=${state} |
"""
TRANSLATED_CHOICES = """
| choices |
|         | list_name | name    | label::English (en) | label::Urdu (ur) | state  |
|         | state     | punjab  | Punjab              | پنجاب            |        |
|         | state     | sindh   | Sindh               | سندھ             |        |
|         | city      | lahore  | Lahore              | لاہور            | punjab |
|         | city      | karachi | Karachi             | کراچی            | sindh  |
"""


def test_itemset_labels_by_itext_by_expression_and_from_a_file(store):
    xform = compile_md("cities", TRANSLATED, TRANSLATED_CHOICES)
    assert b"jr:itext(itextId)" in xform  # what pyxform writes for a filtered, translated list
    city = parse_xform(xform).field("city")
    assert [(c.name, c.labels.get("ur")) for c in city.choices] == [
        ("lahore", "لاہور"),
        ("karachi", "کراچی"),
    ]
    # Forms from elsewhere label choices by an expression nigraan does not evaluate.
    by_expression = xform.replace(b"jr:itext(itextId)", b"translate(label)").replace(
        b'id="cities"', b'id="cities_expr"'
    )
    city = parse_xform(by_expression).field("city")
    assert [(c.name, c.labels) for c in city.choices] == [("lahore", {}), ("karachi", {})]
    from_file = """
    | survey |
    |        | type                             | name  | label |
    |        | select_one_from_file places.csv  | place | Place |
    |        | select_one state                 | state | State |
    """
    plain = "| choices |\n| | list_name | name | label |\n| | state | punjab | Punjab |\n"
    for form in (xform, by_expression, compile_md("places", from_file, plain)):
        store.register_form(form)
    body = "<state>sindh</state><city>karachi</city>"
    assert store.ingest(instance("cities_expr", body, "expr-1")).normalised == "typed"
    assert store.rows("form_cities_expr")[0]["city"] == "karachi"
    assert store.ingest(instance("places", "<place>x</place><state>punjab</state>", "file-1"))
    assert _fields(store, "places")["place"].kind == "select_one"


ENTITY = """
| survey |
|        | type    | name      | label     | save_to |
|        | text    | tree_name | Tree name | species |
|        | integer | height    | Height    | height  |
"""
ENTITIES = """
| entities |
|          | list_name | label        |
|          | trees     | ${tree_name} |
"""


def test_an_entity_form_registers_and_types_its_rows(store):
    store.register_form(compile_md("tree_registration", ENTITY, extra=ENTITIES))
    body = "<tree_name>Neem</tree_name><height>7</height>"
    xml = instance("tree_registration", body, "entity-1").replace(
        b"</instanceID>",
        b'</instanceID><entity dataset="trees" create="1" id="uuid:e-1"><label>Neem</label>'
        b"</entity>",
    )
    assert store.ingest(xml).normalised == "typed"
    row = store.rows("form_tree_registration")[0]
    assert (row["tree_name"], row["height"]) == ("Neem", 7)


def _wide(form_id: str, n: int) -> bytes:
    rows = "".join(f"| | text | q{i} | Q{i} |\n" for i in range(n))
    return compile_md(form_id, "| survey |\n| | type | name | label |\n" + rows)


def test_a_form_wider_than_a_table_is_refused_by_name_and_nothing_is_kept(store):
    with pytest.raises(FormError) as refused:
        store.register_form(_wide("wide_survey", 1700))
    assert "'wide_survey'" in refused.value.message and "1703 columns" in refused.value.message
    assert "repeat" in refused.value.hint
    assert store.form_versions("wide_survey") is None
    store.register_form(_wide("wide_enough", 1590))  # the widest that fits, on both databases
    xml = instance("wide_enough", "<q0>a</q0><q1589>z</q1589>", "wide-1")
    assert store.ingest(xml).normalised == "typed"
    row = store.rows("form_wide_enough")[0]
    assert (row["q0"], row["q1589"], row["q5"]) == ("a", "z", None)


ORX = """
| survey |
|        | type    | name | label |
|        | integer | n    | N     |
"""


def test_a_version_declared_as_orx_version_is_the_form_version(store):
    xform = compile_md("orx_form", ORX).replace(
        f'id="orx_form" version="{VERSION}"'.encode(),
        f'id="orx_form" orx:version="{VERSION}"'.encode(),
    )
    assert b"orx:version" in xform
    result = store.register_form(xform)
    assert result.version == VERSION
    assert store.form_versions("orx_form").versions == {VERSION}
    for n, attr in enumerate(("orx:version", "version")):
        xml = instance("orx_form", f"<n>{n}</n>", f"orx-{n}", version_attr=attr)
        assert from_openrosa_xml(xml, with_data=False).form_version == VERSION
        result = store.ingest(xml)
        assert (result.normalised, result.problems) == ("typed", [])
    assert {r["__form_version"] for r in store.rows("form_orx_form")} == {VERSION}


LANGUAGE_NAMES = """
| survey |
|        | type | name | label::English | label::Urdu | label::Roman Urdu |
|        | text | name | Name           | نام         | Naam              |
"""


def test_languages_named_without_codes_fill_the_english_and_urdu_labels(store):
    xform = compile_md("named_languages", LANGUAGE_NAMES)
    schema = parse_xform(xform)
    assert schema.languages == ("en", "ur", "Roman Urdu")
    assert schema.language_names == {"en": "English", "ur": "Urdu", "Roman Urdu": "Roman Urdu"}
    store.register_form(xform)
    field = _fields(store, "named_languages")["name"]
    assert (field.label_en, field.label_ur) == ("Name", "نام")
    assert json.loads(field.labels)["Roman Urdu"] == "Naam"


def test_store_init_registers_every_form_it_can_and_names_the_refused_ones(
    runner, tmp_path, new_database
):
    build = tmp_path / "instance" / "forms"
    build.mkdir(parents=True)
    (build / "a_first.xml").write_bytes(compile_md("a_first", ORX))
    (build / "b_wide.xml").write_bytes(_wide("b_wide", 1700))
    (build / "c_last.xml").write_bytes(compile_md("c_last", NESTED))
    env = {
        "NIGRAAN_INSTANCE_DIR": str(tmp_path / "instance"),
        "NIGRAAN_CONFIG": None,
        "NIGRAAN_DATABASE_URL": new_database(),
    }
    result = runner.invoke(main, ["store", "init"], env=env)
    assert result.exit_code == 1, result.output
    assert "a_first" in result.output and "c_last" in result.output
    assert f"{build / 'b_wide.xml'}: not registered. Form 'b_wide'" in result.output
    assert "1 of 3 forms refused" in result.output
    from store.store import Store

    db = Store.open(env["NIGRAAN_DATABASE_URL"])
    try:
        assert db.form_versions("c_last") is not None and db.form_versions("b_wide") is None
    finally:
        db.close()


def test_serve_offers_the_forms_the_store_takes_and_logs_the_refused_one(tmp_path, central_dir):
    """`nigraan serve` starts with a form the store refuses: the others are served, including
    a form whose version is `orx:version`, to which a device can submit."""
    import hashlib

    from server.device_accounts import create_account
    from store.store import Store
    from tests.openrosa_client import CollectClient, ServerProcess, publish_recorded_forms

    instance_dir = tmp_path / "instance"
    build = publish_recorded_forms(instance_dir / "forms", central_dir)
    orx = compile_md("orx_form", ORX).replace(
        f'id="orx_form" version="{VERSION}"'.encode(),
        f'id="orx_form" orx:version="{VERSION}"'.encode(),
    )
    index = json.loads((build / "index.json").read_text())
    for form_id, xform in (("orx_form", orx), ("wide_form", _wide("wide_form", 1700))):
        (build / f"{form_id}.xml").write_bytes(xform)
        index[form_id] = {
            "form_id": form_id,
            "version": VERSION,
            "title": form_id,
            "file": f"{form_id}.xml",
            "md5": hashlib.md5(xform).hexdigest(),
            "encrypted": False,
            "media": [],
        }
    (build / "index.json").write_text(json.dumps(index))
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    server = ServerProcess(
        {
            "NIGRAAN_INSTANCE_DIR": str(instance_dir),
            "NIGRAAN_FORMS_BUILD_DIR": str(build),
            "NIGRAAN_DATABASE_URL": url,
        }
    ).start()
    try:
        store = Store.open(url)
        try:
            account = create_account(store.app_users, "tablet", ["rec_visit", "orx_form"])
            device = CollectClient(account.token_url(server.base))
            listed = device.get("/formList").text
            assert "<formID>rec_visit</formID>" in listed and "<formID>orx_form</formID>" in listed
            assert "wide_form" not in listed
            log = server.log_path.read_text()
            assert "form wide_form" in log and "needs 1703 columns" in log
            sent = device.send(instance("orx_form", "<n>5</n>", "served-1", "orx:version"))
            assert sent.status_code == 201, sent.text
            assert store.rows("form_orx_form")[0]["n"] == 5
        finally:
            store.close()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("lang", "key"),
    [
        ("English (en)", "en"),
        ("Urdu (ur)", "ur"),
        ("English", "en"),
        ("urdu", "ur"),
        ("Français", "fr"),  # a language's own name, as Collect also matches it
        ("Roman Urdu", "Roman Urdu"),  # near a name (Romany) is not a name
        ("default", "default"),
        ("Portuguese (Brazil)", "Portuguese (Brazil)"),
    ],
)
def test_a_language_gets_its_code_from_its_name_only_when_exact(lang, key):
    assert _lang_key(lang) == key


def test_the_first_version_attribute_is_the_version_whatever_its_namespace():
    from lxml import etree

    orx = 'xmlns:orx="http://openrosa.org/xforms"'
    assert version_of(etree.fromstring(f'<data {orx} id="f" orx:version="2"/>')) == "2"
    assert version_of(etree.fromstring(f'<data {orx} version="1" orx:version="2"/>')) == "1"
    assert version_of(etree.fromstring('<data id="f"/>')) is None


def _numbers(form_id: str, n: int) -> bytes:
    rows = "".join(f"| | integer | n{i} | N{i} |\n" for i in range(n))
    return compile_md(form_id, "| survey |\n| | type | name | label |\n" + rows)


def test_a_form_whose_filled_numbers_overflow_a_postgresql_row_is_refused(store):
    # PostgreSQL cannot move numbers out of a row: 1,590 filled integers were "row is too big"
    # at ingest, a submission refused for ever. Such a form is refused when registered.
    with pytest.raises(FormError) as refused:
        store.register_form(_numbers("many_numbers", 1001))
    assert "'many_numbers'" in refused.value.message and "8008 bytes" in refused.value.message
    assert store.form_versions("many_numbers") is None
    store.register_form(_numbers("enough_numbers", 990))  # fits, filled in, on both databases
    values = "".join(f"<n{i}>{i}</n{i}>" for i in range(990))
    assert store.ingest(instance("enough_numbers", values, "numbers-1")).normalised == "typed"
    row = store.rows("form_enough_numbers")[0]
    assert (row["n0"], row["n989"]) == (0, 989)
