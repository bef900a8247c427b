"""The shared XForm vocabulary (nigraan.xform) and the one hardened parser (nigraan.safe_xml)."""

from __future__ import annotations

import pytest
from lxml import etree
from pyxform.xls2xform import convert

from forms.build import data_field_count
from forms.compile import CompiledForm
from nigraan import safe_xml
from nigraan.xform import NS, XFORMS, is_note, version_of
from store.schema import NOTE, parse_xform

READ_ONLY = """
| survey |
|        | type    | name    | label   | read_only | default | calculation |
|        | note    | welcome | Hello   |           |         |             |
|        | integer | visits  | Visits  | yes       | 3       |             |
|        | text    | remark  | Remark  |           |         |             |
|        | calculate | total |         |           |         | 1 + 1       |
| settings |
|          | form_id | version    |
|          | ro_form | 2026120101 |
"""


@pytest.fixture(scope="module")
def read_only_xform() -> bytes:
    return convert(xlsform=READ_ONLY, file_type=".md", warnings=[]).xform.encode()


def _bind_and_control(xform: bytes, name: str):
    tree = safe_xml.parse_xform(xform)
    ref = f"/data/{name}"
    bind = next(b for b in tree.iter(f"{{{XFORMS}}}bind") if b.get("nodeset") == ref)
    control = next(iter(tree.iterfind(f"h:body//*[@ref='{ref}']", NS)), None)
    return bind, control


@pytest.mark.parametrize(
    "name, note", [("welcome", True), ("visits", False), ("remark", False), ("total", False)]
)
def test_a_note_is_a_read_only_uncalculated_text_input(read_only_xform, name, note):
    assert is_note(*_bind_and_control(read_only_xform, name)) is note


def test_the_build_counts_the_fields_the_store_keeps(read_only_xform):
    """A read-only integer with a default holds data: the store gives it a column, and the
    build's field count (`forms check`) counts it too (it was taken for a note)."""
    schema = parse_xform(read_only_xform)
    kept = [f.path for f in schema.fields if f.kind != NOTE and not f.path.startswith("meta/")]
    assert kept == ["visits", "remark", "total"]
    compiled = CompiledForm("ro_form", "2026120101", "", read_only_xform, False)
    assert data_field_count(compiled) == len(kept)


def test_the_version_is_the_first_version_attribute_in_any_namespace():
    root = etree.fromstring(b'<data xmlns:orx="http://openrosa.org/xforms" orx:version="7"/>')
    assert version_of(root) == "7"
    assert version_of(etree.fromstring(b"<data/>")) is None


ENTITY_XFORM = b"""<?xml version="1.0"?>
<!DOCTYPE h:html [<!ENTITY boom "expanded">]>
<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml">
<h:head><h:title>&boom;</h:title></h:head></h:html>"""


def test_a_compiled_form_is_read_without_expanding_entities():
    tree = CompiledForm("x", "1", "", ENTITY_XFORM, False).tree()
    assert "expanded" not in etree.tostring(tree).decode()


def test_external_entities_are_never_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do-not-read")
    xml = (
        f'<?xml version="1.0"?><!DOCTYPE data [<!ENTITY s SYSTEM "{secret.as_uri()}">]>'
        '<data id="x">&s;</data>'
    ).encode()
    for parse in (safe_xml.parse_xform, safe_xml.parse_submission):
        root = parse(xml)
        assert "do-not-read" not in etree.tostring(root).decode()
        assert safe_xml.declares_dtd(root)


def test_a_submission_reads_undeclared_odk_prefixes_and_drops_comments():
    root = safe_xml.parse_submission(b'<data id="x" orx:version="3"><!-- c --><a>1</a></data>')
    assert version_of(root) == "3" and [child.tag for child in root] == ["a"]


def test_xml_that_is_not_well_formed_raises_the_first_error():
    with pytest.raises(safe_xml.XMLSyntaxError, match="orx"):
        safe_xml.parse_submission(b'<data orx:version="3"><a></data>')


def test_odk_prefixes_are_declared_on_the_root_start_tag_only_where_missing():
    xml = b'<?xml version="1.0"?><data xmlns:jr="http://openrosa.org/javarosa" id="x"/>'
    fixed = safe_xml.with_odk_prefixes(xml)
    assert fixed == (
        b'<?xml version="1.0"?><data xmlns:orx="http://openrosa.org/xforms" '
        b'xmlns:odk="http://www.opendatakit.org/xforms" xmlns:jr="http://openrosa.org/javarosa"'
        b' id="x"/>'
    )
    assert safe_xml.with_odk_prefixes(fixed) is None


def test_a_form_with_a_submission_url_and_no_key_is_not_encrypted(tmp_path):
    """Encryption is the public key on <submission>, in forms and in the store alike."""
    from forms.compile import compile_form
    from tests.formtables import write_xlsx

    md = """
    | survey |
    |        | type | name   | label  |
    |        | text | remark | Remark |
    | settings |
    |          | form_id | version    | submission_url                  |
    |          | custom  | 2026120101 | https://example.org/submission |
    """
    result = compile_form(write_xlsx(md, tmp_path / "custom.xlsx"), {}, None)
    assert b"<submission" in result.compiled.xform
    assert result.compiled.encrypted is False
    assert parse_xform(result.compiled.xform).encrypted is False
