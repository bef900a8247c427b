"""The record of built form versions: a form whose content changed needs a new version."""

from __future__ import annotations

import json
import os
from pathlib import Path

from forms.problems import Location, Problem, error


def read_lock(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8")).get("forms", {})


def write_lock(path: Path, forms: dict[str, dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    body = {
        "about": "Written by `nigraan forms build`: the last built version and content "
        "fingerprint of each form. Commit it with the forms.",
        "forms": dict(sorted(forms.items())),
    }
    tmp.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def check_version(
    form_id: str, version: str, fingerprint: str, lock: dict[str, dict[str, str]], file: str
) -> list[Problem]:
    """Changed content with an unchanged version is an error; so is going back a version."""
    last = lock.get(form_id)
    if not last or last.get("fingerprint") == fingerprint:
        return []
    where = Location(file, "settings", 2, "version")
    if version == last.get("version"):
        return [
            error(
                f"the form changed since version {version} was built, but its version did not",
                where,
                "Raise the version in the settings sheet (YYYYMMDDNN, e.g. today's date and 01); "
                "devices and Central only fetch a form again when its version changes.",
            )
        ]
    if version < last.get("version", ""):
        return [
            error(
                f"version {version} is older than the last built version {last['version']}",
                where,
                "Use a version that sorts after the last one.",
            )
        ]
    return []
