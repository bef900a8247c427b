"""server/web/templates/submission.html rendered with Flask's render_template from the view model:
labels in English and Urdu, groups, repeats, photos, files, edits, reviews, the decision form."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Blueprint, Flask, render_template
from lxml import html

import server
from store.schema import parse_xform
from store.submission_view import build_submission_view
from tests.test_submission_view import (
    BODY_1,
    BODY_2,
    FILES,
    VERSION,
    instance,
    submission_row,
    version_row,
    xform,
)

TEMPLATES = Path(server.__file__).parent / "web" / "templates"


@pytest.fixture
def app(make_config):
    """An app with the web area as the real one has it (init_web: base.html's routes, `_` and
    `csrf_token`), and the attachment route's endpoint if the web area has none yet."""
    from server.web import init_web

    config = make_config()
    config["instance_dir"].mkdir(parents=True, exist_ok=True)
    app = Flask(__name__, template_folder=str(TEMPLATES), instance_path=str(config["instance_dir"]))
    init_web(app, config)
    if "submissions" not in app.blueprints:
        files = Blueprint("submissions", __name__)
        files.add_url_rule(
            "/files/<form_id>/<path:instance_id>/<name>", "attachment", lambda **_: ""
        )
        app.register_blueprint(files)
    return app


def page(app, lang="en", may_see_restricted=True, decision_url="/decide", **sub) -> str:
    schema = parse_xform(xform())
    view = build_submission_view(
        submission=submission_row(**sub),
        schemas={VERSION: schema},
        versions=[
            version_row("1", instance("1", BODY_1), current=False),
            version_row("2", instance("2", BODY_2, deprecated="1"), current=True),
        ],
        attachments=FILES,
        reviews=[
            {
                "review_state": "hasIssues",
                "comment": "Check the age",
                "created_at": "t1",
                "done_at": None,
                "last_error": None,
            }
        ],
        lang=lang,
        may_see_restricted=may_see_restricted,
    )
    with app.test_request_context("/"):
        return render_template("submission.html", view=view, decision_url=decision_url)


def text(tree, xpath) -> list[str]:
    return [" ".join(e.text_content().split()) for e in tree.xpath(xpath)]


def test_english_page_shows_fields_groups_repeats_photo_files_history_and_reviews(app):
    tree = html.fromstring(page(app))
    fields = dict(
        zip(
            text(tree, "//dl[@class='field' or @class='field restricted']/dt"),
            text(tree, "//dl[@class='field' or @class='field restricted']/dd"),
            strict=True,
        )
    )
    assert fields["District"] == "Lahore"
    assert fields["Account restricted"] == "Held two nights"
    assert text(tree, "//section[@data-path='details']/h3") == ["Details"]
    assert text(tree, "//section[@data-path='details']//section[@data-path='details/inner']/h3")
    assert text(tree, "//section[@data-path='visit']//thead/tr/th") == ["#", "Date", "Where"]
    assert text(tree, "//section[@data-path='visit']//tbody/tr[2]/td") == ["2026-11-08", "Lahore"]
    assert tree.xpath("//section[@data-path='visit']/div[@class='repeat-scroll']/table")
    [img] = tree.xpath("//img[@class='photo']")
    assert img.get("src") == "/submissions/survivor_intake/uuid:2/files/face.jpg"
    assert text(tree, "//ul[@class='downloads']/li") == ["letter.pdf (file not received yet)"]
    assert text(tree, "//li[@data-version='2']//tbody/tr[1]/td") == [
        "Services",
        "Legal aid, Health",
        "Health",
    ]
    assert "Check the age" in text(tree, "//ol[@class='reviews']/li")[0]
    states = tree.xpath("//form[@class='decision']//input[@name='state']/@value")
    assert states == ["approved", "hasIssues", "rejected"]
    (token,) = tree.xpath("//form[@action='/decide']//input[@name='csrf_token']/@value")
    assert len(token) > 20  # Flask-WTF's signed token, as the real app renders it


def test_urdu_page_shows_urdu_labels_and_choices(app):
    body = page(app, "ur")
    for urdu in ("ضلع", "لاہور", "تفصیلات", "ملاقاتیں", "تاریخ", "تصویر", "مسائل ہیں", "منظور"):
        assert urdu in body
    assert "District" not in body


def test_restricted_fields_are_not_rendered_for_other_roles(app):
    body = page(app, may_see_restricted=False)
    assert "Held two nights" not in body and "Account" not in body
    assert "1 restricted fields are not shown to your role." in body


def test_encrypted_submission_page_has_a_note_and_no_data(app):
    tree = html.fromstring(page(app, encrypted=True))
    assert "encrypted" in text(tree, "//p[@class='note']")[0]
    assert not tree.xpath("//dl[contains(@class, 'field')]") and not tree.xpath("//img")


def test_read_only_roles_get_no_decision_form(app):
    # The real base.html has its language form; the page itself has none.
    body = page(app, decision_url=None)
    assert 'class="decision"' not in body and 'name="state"' not in body


def test_no_external_assets_and_no_fixed_widths(app):
    body = page(app)
    assert not re.search(r"""(src|href)=["'](https?:)?//""", body)
    fixed = r"(?<![-\w])width\s*:\s*[\d.]+\s*(px|em|rem|ch|pt|cm|mm|in)\b"
    assert not re.search(fixed, body)  # percentages and caps (max-width) only
    assert "overflow-x: auto" in body
    assert 'name="viewport"' in body
