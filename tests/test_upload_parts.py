"""An upload's parts as werkzeug's form parser gave them, read by server/upload_parts.py."""

from __future__ import annotations

import pytest
from flask import Flask

from server import problems
from server.upload_parts import upload_parts


def _app(max_parts: int = 1000, max_field: int = 1_000_000) -> Flask:
    app = Flask(__name__)
    app.config.update(MAX_FORM_PARTS=max_parts, MAX_FORM_MEMORY_SIZE=max_field)
    return app


def _body(parts: list[tuple[str, str | None, bytes, str | None]], boundary: str = "b0UnD") -> bytes:
    out = b""
    for name, filename, data, content_type in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if content_type:
            out += f"Content-Type: {content_type}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _read(app: Flask, body: bytes, content_type: str = "multipart/form-data; boundary=b0UnD"):
    with app.test_request_context(
        "/submission", method="POST", data=body, content_type=content_type
    ):
        first = upload_parts()
        assert upload_parts() is first  # read once per request
        return first


def test_files_fields_and_the_first_part_of_a_name():
    photo = bytes(range(256)) * 200  # binary, with CR LF and dashes inside
    parts = _read(
        _app(),
        _body(
            [
                ("xml_submission_file", "submission.xml", b"<data id='x'/>", "text/xml"),
                ("photo.jpg", "photo.jpg", photo, "IMAGE/JPEG; charset=binary"),
                ("photo.jpg", "photo.jpg", b"second", "image/jpeg"),
                ("empty-name.jpg", "", b"", None),
                ("*isIncomplete*", None, "yes ٹ".encode(), None),
            ]
        ),
    )
    assert parts.files == {
        "xml_submission_file": (b"<data id='x'/>", "text/xml"),
        "photo.jpg": (photo, "image/jpeg"),
        "empty-name.jpg": (b"", None),
    }
    assert parts.fields == {"*isIncomplete*": "yes ٹ"}


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("multipart/form-data; boundary=zzz", b"--zzz\r\nnot a part at all"),
        ("multipart/form-data", b"no boundary"),
        ("multipart/form-data; boundary=b0UnD", b"--b0UnD\r\nContent-Disposition: form-data"),
        ("text/xml", b"<data/>"),
    ],
)
def test_a_body_that_is_not_multipart_as_sent_has_no_parts(content_type, body):
    parts = _read(_app(), body, content_type)
    assert parts.files == {} and parts.fields == {}


def test_the_part_and_field_limits_are_the_app_s():
    app = _app(max_parts=3, max_field=10)
    three = [(f"f{i}.jpg", f"f{i}.jpg", b"x", "image/jpeg") for i in range(3)]
    assert len(_read(app, _body(three)).files) == 3
    with pytest.raises(problems.OpenRosaProblem) as refused:
        _read(app, _body([*three, ("f3.jpg", "f3.jpg", b"x", "image/jpeg")]))
    assert refused.value.status == 413 and "at most 3 files and fields" in refused.value.message
    with pytest.raises(problems.OpenRosaProblem) as long_field:
        _read(app, _body([("note", None, b"x" * 11, None)]))
    assert long_field.value.status == 413
    # a file may be larger than a text field
    assert _read(app, _body([("big.jpg", "big.jpg", b"x" * 100, "image/jpeg")])).files
