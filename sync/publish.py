"""Publish the built forms to Central: new forms created, new versions published, others skipped.

The build folder (`forms.build_dir`) holds `index.json` (version, md5, media of every built
form), `<form_id>.xml` and `<form_id>-media/`. A form Central already has at the same version and
md5 is skipped. Otherwise pyodk creates the form (or a draft from the new XForm), uploads the
media and reference CSVs to the draft and publishes it. Central refuses to publish a version it
has seen before (409.6); the draft is then discarded and the message says to bump the version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pyodk.errors import PyODKError

from nigraan.errors import FormError
from sync.central import Central, CentralError, is_central_error, pyodk_failure

NEW, UPDATED, UNCHANGED, FAILED = "created", "published", "unchanged", "failed"


@dataclass
class PublishResult:
    form_id: str
    version: str
    status: str
    message: str = ""


def built_forms(build_dir: Path) -> dict[str, dict]:
    index_path = build_dir / "index.json"
    if not index_path.is_file():
        raise FormError(
            f"No built forms in {build_dir} (index.json is missing).",
            hint="Run `nigraan forms build` first.",
        )
    return json.loads(index_path.read_text(encoding="utf-8"))


def publish_form(central: Central, build_dir: Path, entry: dict) -> PublishResult:
    form_id, version = entry["form_id"], entry["version"]
    xml_path = build_dir / entry.get("file", f"{form_id}.xml")
    media_dir = build_dir / f"{form_id}-media"
    media = [str(media_dir / m["file"]) for m in entry.get("media", [])]
    response = central.session.get(
        central.path("projects/{project_id}/forms/{form_id}", form_id=form_id)
    )
    forms = central.client.forms
    try:
        if response.status_code == 404:
            forms.create(str(xml_path), attachments=media or None, form_id=form_id)
            return PublishResult(form_id, version, NEW)
        current = central.check(response).json()
        same = current.get("version") == version and current.get("hash") == entry.get("md5")
        if same and current.get("publishedAt"):
            return PublishResult(form_id, version, UNCHANGED)
        forms.update(form_id, definition=str(xml_path), attachments=media or None)
        return PublishResult(form_id, version, UPDATED)
    except PyODKError as exc:
        if is_central_error(exc, 409.6):
            central.session.delete(
                central.path("projects/{project_id}/forms/{form_id}/draft", form_id=form_id)
            )
            return PublishResult(
                form_id,
                version,
                FAILED,
                f"Central already has a published version '{version}' of {form_id} with other "
                "content: bump the version (settings sheet, YYYYMMDDNN), build and publish again.",
            )
        return PublishResult(form_id, version, FAILED, pyodk_failure(exc).message)
    except CentralError as exc:
        if isinstance(exc, CentralError) and exc.code == "central.unavailable":
            raise
        return PublishResult(form_id, version, FAILED, exc.message)


def publish(central: Central, build_dir: Path, form_ids: list[str] | None = None):
    """Publish the given built forms (default: all of them); one result per form."""
    index = built_forms(build_dir)
    unknown = [f for f in form_ids or [] if f not in index]
    if unknown:
        raise FormError(
            f"Not built: {', '.join(unknown)}.",
            hint=f"Built forms: {', '.join(sorted(index)) or 'none'}. Run `nigraan forms build`.",
        )
    return [publish_form(central, build_dir, index[f]) for f in (form_ids or sorted(index))]


def create_app_users(central: Central, names: list[str], form_ids: list[str]) -> list[dict]:
    """App users by display name (existing active ones kept), each given access to the forms.

    pyodk creates the missing users and assigns forms to those it created; users that already
    existed get the forms assigned here (an assignment that exists already is fine).
    """
    try:
        central.client.projects.create_app_users(display_names=names, forms=form_ids)
    except PyODKError as exc:
        raise pyodk_failure(exc) from exc
    users = central.get_json(central.path("projects/{project_id}/app-users"))
    chosen = [u for u in users if u["displayName"] in names and u.get("token")]
    for user in chosen:
        for form_id in form_ids:
            path = central.path(
                "projects/{project_id}/forms/{form_id}/assignments/app-user/{actor}",
                form_id=form_id,
                actor=user["id"],
            )
            central.check(central.session.post(path), ok=(200, 409))
    return chosen
