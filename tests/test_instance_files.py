"""store/instance_files.py: submissions read from files for `nigraan store load`."""

from __future__ import annotations

import json

import pytest

from store.instance_files import InstanceFileError, leaf_values, read_instance_files


@pytest.fixture
def subs(central_dir):
    return central_dir / "submissions"


def test_an_edit_is_read_after_the_version_it_edits(subs):
    loaded = read_instance_files([subs / "v05-edit1.xml", subs / "v01.xml", subs / "v05.xml"])
    assert [item.name for item in loaded] == [
        str(subs / "v05.xml"),
        str(subs / "v05-edit1.xml"),
        str(subs / "v01.xml"),
    ]
    assert all(item.incoming.source == "file" for item in loaded)


def test_only_the_media_an_instance_names_is_offered(subs, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    (media / "1764300000001.jpg").write_bytes(b"\xff\xd8 photo")
    (media / "1764300000002.jpg").write_bytes(b"\xff\xd8 another submission's photo")
    [item] = read_instance_files([subs / "v01.xml"], media=media)
    assert item.incoming.attachments == {"1764300000001.jpg": (b"\xff\xd8 photo", "image/jpeg")}
    [bare] = read_instance_files([subs / "v01.xml"])
    assert bare.incoming.attachments == {}


def test_xml_the_store_cannot_read_is_passed_on_whole(subs):
    [item] = read_instance_files([subs / "malformed.xml"])
    assert item.incoming.payload == (subs / "malformed.xml").read_bytes()


def test_odata_rows_need_the_form_and_are_named_by_row(central_dir, tmp_path):
    exchange = central_dir / "exchanges" / "257-odata-final-expand-page1.json"
    response = json.loads(exchange.read_bytes())["response_body"]  # Central's answer
    odata = tmp_path / "page1.json"
    odata.write_text(json.dumps(response), encoding="utf-8")
    with pytest.raises(InstanceFileError, match="does not name its form") as refused:
        read_instance_files([odata])
    assert "--form" in refused.value.hint
    rows = response["value"]
    assert rows
    loaded = read_instance_files([odata], form_id="rec_visit")
    assert [item.name for item in loaded] == [f"{odata} (row {i + 1})" for i in range(len(rows))]
    assert [item.incoming.form_id for item in loaded] == ["rec_visit"] * len(rows)
    as_list = tmp_path / "rows.json"
    as_list.write_text(json.dumps(rows), encoding="utf-8")
    assert len(read_instance_files([as_list], form_id="rec_visit")) == len(rows)


@pytest.mark.parametrize("content", ["{not json", '"a string"', "[1, 2]"])
def test_a_json_file_without_rows_is_a_clear_error(tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(InstanceFileError, match="nothing was loaded") as refused:
        read_instance_files([bad], form_id="rec_visit")
    assert str(bad) in refused.value.message


def test_leaf_values_walk_groups_and_repeats():
    data = {"a": "1", "g": {"b": "x.jpg", "r": [{"c": "y.png"}, {"c": None}]}, "d": []}
    assert leaf_values(data) == ["1", "x.jpg", "y.png", None]
