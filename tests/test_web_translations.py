"""The interface's words: every marked one has its Urdu, and the committed .mo (what the app
reads; pip does not compile catalogues) is the .po compiled.

After changing words: `cd server/web && pybabel extract -F babel.cfg -k _ -k gettext -k N_
-o messages.pot . && pybabel update -i messages.pot -d translations`, translate, then
`pybabel compile -d translations` and commit the .po and the .mo."""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

WEB = Path(__file__).resolve().parent.parent / "server" / "web"
CATALOGUE = WEB / "translations" / "ur" / "LC_MESSAGES"


def marked_words() -> set[str]:
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "N_": None, "ngettext": (1, 2)}
    return {
        message for _, _, message, _, _ in extract_from_dir(str(WEB), method_map, keywords=keywords)
    }


def test_every_word_of_the_interface_has_its_urdu():
    with open(CATALOGUE / "messages.po", "rb") as f:
        po = {m.id: m.string for m in read_po(f) if m.id}
    words = marked_words()
    assert {"Sign in", "Sign out", "supervisor", "failed sign-in"} <= words
    missing = sorted(str(w) for w in words if not po.get(w) or not all(po[w]))
    assert not missing, f"no Urdu for: {missing}"


def test_the_committed_mo_is_the_po_compiled():
    with open(CATALOGUE / "messages.po", "rb") as f:
        po = {_key(m.id): _key(m.string) for m in read_po(f) if m.id and not m.fuzzy}
    with open(CATALOGUE / "messages.mo", "rb") as f:
        mo = {_key(m.id): _key(m.string) for m in read_mo(io.BytesIO(f.read())) if m.id}
    assert mo == po, "run `pybabel compile -d server/web/translations` and commit the .mo"


def _key(text):
    """A plural message (ngettext) is a tuple in the .po and a list in the .mo."""
    return text if isinstance(text, str) else tuple(text)
