"""OpenRosa 1.0 for ODK Collect: form list, form and media download, manifest, submission.

One blueprint, mounted under several prefixes (see create_app): Central's app-user token URLs
`/v1/key/<token>/projects/<project_id>` (and the short `/key/<token>`), and Digest-protected
`/` and `/v1/projects/<project_id>`. Endpoints hold no SQL: they call the store and the writer.
"""

from __future__ import annotations

import logging
import re
from email.utils import formatdate
from urllib.parse import quote, urlsplit

from flask import Blueprint, Response, current_app, g, request, url_for

from server import problems, server_url
from server.channel import LOCAL_ADDRESS
from server.device_accounts import PROJECT_ID
from server.openrosa_xml import FormListEntry, MediaFile, form_list, manifest, openrosa_response
from server.upload_parts import upload_parts
from store.document import SubmissionError, from_openrosa_xml
from store.store import (
    CONFLICT,
    DELETED_RESEND,
    REFUSED,
    STALE_EDIT,
    UNKNOWN_DEPRECATED,
    Incoming,
)

log = logging.getLogger(__name__)
bp = Blueprint("openrosa", __name__)
XML_PART = "xml_submission_file"
INCOMPLETE_PART = "*isIncomplete*"


def services():
    return current_app.extensions["nigraan"]


# ----------------------------------------------------------------- plumbing


@bp.url_value_preprocessor
def _pull_prefix_values(endpoint, values) -> None:
    values = values if values is not None else {}
    g.token = values.pop("token", None)
    g.project_id = values.pop("project_id", PROJECT_ID)


@bp.url_defaults
def _push_prefix_values(endpoint, values) -> None:
    if g.get("token") is not None and current_app.url_map.is_endpoint_expecting(endpoint, "token"):
        values.setdefault("token", g.token)
    if current_app.url_map.is_endpoint_expecting(endpoint, "project_id"):
        values.setdefault("project_id", g.project_id)


def openrosa_headers() -> dict[str, str]:
    return {
        "X-OpenRosa-Version": "1.0",
        "X-OpenRosa-Accept-Content-Length": str(services().config["server.max_submission_bytes"]),
        "Content-Language": "en",
        "Date": formatdate(usegmt=True),
    }


def xml_response(body: str, status: int = 200, *, bare: bool = False) -> Response:
    response = Response(body, status=status, content_type="text/xml; charset=utf-8")
    if not bare:
        response.headers.update(openrosa_headers())
    return response


@bp.errorhandler(problems.OpenRosaProblem)
def problem_response(problem: problems.OpenRosaProblem) -> Response:
    body = "" if request.method == "HEAD" else openrosa_response(problem.message, error=True)
    response = xml_response(body, problem.status, bare=problem.bare)
    response.headers.update(problem.headers)
    return response


def require_openrosa_header() -> None:
    if request.headers.get("X-OpenRosa-Version", "").strip() != "1.0":
        raise problems.missing_openrosa_header()


def authenticate():
    """The device account of this request, or a problem (401/403) to answer with."""
    if g.token is not None:
        user = services().token_accounts.find(g.token)
        if user is False:
            raise problems.malformed_token()
        if user is None:
            raise problems.not_allowed()
        return user
    digest = services().digest
    auth = digest.get_auth()
    # The response is only bound to the URI the client names: it must be this request's.
    same_uri = auth is not None and urlsplit(auth.uri or "").path == request.path
    if same_uri and digest.authenticate(auth, digest.get_auth_password(auth)):
        return g.app_user  # set when the account's HA1 was looked up
    raise problems.OpenRosaProblem(
        401,
        "401.2",
        "Could not authenticate with the provided credentials.",
        bare=True,
        headers={"WWW-Authenticate": digest.authenticate_header()},
    )


def project_exists() -> bool:
    return g.project_id == PROJECT_ID


def base_url() -> str:
    """Where absolute URLs in form lists and manifests point: server.public_url, else the
    address the server listens on; never the request's Host header, which anyone can forge to
    send a device's token URL elsewhere. Listening on every interface, it is the local
    address this connection reached."""
    config = services().config
    if config["server.public_url"] or config["server.host"] not in ("0.0.0.0", "::", ""):  # noqa: S104 - a check of the configured address, not a bind
        return server_url(config)
    local = request.environ.get(LOCAL_ADDRESS)
    if not local:
        return server_url(config)
    host, port = local[0], local[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def url_for_device(endpoint: str, **values) -> str:
    return base_url() + url_for(endpoint, **values)


def published_form(user, form_id: str):
    form = services().forms.refresh().get(form_id)
    if form is None or not project_exists():
        raise problems.not_found()
    if form_id not in user.forms:
        raise problems.form_not_allowed(form_id)
    return form


# ----------------------------------------------------------------- form list, forms, media


@bp.get("/formList")
def form_list_view() -> Response:
    user = authenticate()
    require_openrosa_header()
    wanted = request.args.get("formID")
    entries = []
    if project_exists():
        for form in services().forms.refresh().values():
            if form.form_id not in user.forms or (wanted and form.form_id != wanted):
                continue
            entries.append(
                FormListEntry(
                    form_id=form.form_id,
                    name=form.title,
                    version=form.version,
                    md5=form.md5,
                    download_url=url_for_device(".form_download", form_file=f"{form.form_id}.xml"),
                    manifest_url=(
                        url_for_device(".form_manifest", form_id=form.form_id)
                        if form.has_media
                        else None
                    ),
                )
            )
    entries.sort(key=lambda e: (e.name.casefold(), e.form_id))
    return xml_response(form_list(entries))


@bp.get("/forms/<form_file>")
def form_download(form_file: str) -> Response:
    # Like Central, the plain XForm download does not insist on X-OpenRosa-Version.
    user = authenticate()
    if not form_file.endswith(".xml"):
        raise problems.not_found()
    form = published_form(user, form_file[: -len(".xml")])
    return Response(form.xform, content_type="application/xml; charset=utf-8")


@bp.get("/forms/<form_id>/manifest")
def form_manifest(form_id: str) -> Response:
    user = authenticate()
    require_openrosa_header()
    form = published_form(user, form_id)
    files = [
        MediaFile(
            media.name,
            media.md5,
            url_for_device(".form_media", form_id=form_id, name=media.name),
        )
        for media in sorted(form.media.values(), key=lambda m: m.name)
    ]
    return xml_response(manifest(files))


@bp.get("/forms/<form_id>/attachments/<name>")
def form_media(form_id: str, name: str) -> Response:
    user = authenticate()
    form = published_form(user, form_id)
    media = form.media.get(name)
    if media is None:
        raise problems.not_found()
    response = Response(media.content, content_type=media.content_type)
    response.headers["ETag"] = f'"{media.md5}"'
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{quote(name)}\"; filename*=UTF-8''{quote(name)}"
    )
    return response


# ----------------------------------------------------------------- submission


@bp.route("/submission", methods=["HEAD", "GET"])
def submission_preflight() -> Response:
    """Collect's HEAD before each upload: 204 and how large an upload may be."""
    authenticate()
    require_openrosa_header()
    if not project_exists():
        return xml_response("", 404)
    response = Response(status=204)
    response.headers.update(openrosa_headers())
    del response.headers["Content-Type"]
    return response


@bp.post("/submission")
def submission() -> Response:
    user = authenticate()
    require_openrosa_header()
    if not project_exists():
        raise problems.not_found()
    xml = _xml_part()
    svc = services()
    limit = svc.config["server.max_submission_elements"]
    try:
        # The store process reads the data. Counting the elements here keeps a hostile upload
        # from ever reaching its one writer thread.
        doc = from_openrosa_xml(xml, with_data=False, max_elements=limit)
    except SubmissionError as exc:
        raise _unreadable(exc, xml, limit) from exc

    form_id = doc.form_id
    known = svc.store.form_versions(form_id, doc.form_version)
    if known is None or form_id not in svc.forms.refresh():
        raise problems.unknown_form(form_id)
    if form_id not in user.forms:
        raise problems.form_not_allowed(form_id)
    if (doc.form_version or "") not in known.versions:
        raise problems.unknown_version(doc.form_version or "")
    if known.encrypted and not doc.encrypted:
        raise problems.must_be_encrypted(form_id)
    attachments = _attachment_parts()
    if doc.encrypted:
        _check_envelope(doc, known.key_bytes.get(doc.form_version or ""), attachments)

    try:
        result = svc.writer.write(
            # Only the bytes go: `doc` was read without its data.
            Incoming(
                xml,
                attachments=attachments,
                submitter=user.name,
                device_id=request.args.get("deviceID"),
                all_or_nothing=True,
            )
        )
    except Exception as exc:
        svc.health.not_saved(form_id, exc)  # the cause and what to do, once a minute
        raise problems.not_saved() from exc
    svc.health.stored()
    if result.status == CONFLICT:
        raise problems.conflict()
    if result.status == DELETED_RESEND:
        raise problems.deleted_resend()
    if result.status == STALE_EDIT:
        raise problems.stale_edit(doc.deprecated_id or "")
    if result.status == UNKNOWN_DEPRECATED:
        raise problems.unknown_deprecated(doc.deprecated_id or "")
    if result.status == REFUSED:
        raise problems.not_stored_whole(result.message)
    # created, edited, duplicate (a resend; missing attachments were filled in): all stored.
    return xml_response(
        openrosa_response("full submission upload was successful!", error=False), 201
    )


def _xml_part() -> bytes:
    if not (request.mimetype or "").startswith("multipart/"):
        raise problems.missing_xml_part()
    parts = upload_parts()
    if XML_PART in parts.files:
        return parts.files[XML_PART][0]
    text = parts.fields.get(XML_PART)  # sent as a plain field instead of a file
    if text is None:
        raise problems.missing_xml_part()
    return text.encode("utf-8")


def _attachment_parts() -> dict[str, tuple[bytes, str | None]]:
    """Files by multipart part name (Collect names each part after its file, and Central
    matches on the part name). The store keeps only the names the instance refers to."""
    return {
        name: part
        for name, part in upload_parts().files.items()
        if name != XML_PART and safe_file_name(name)
    }


def safe_file_name(name: str) -> bool:
    """A bare file name: no folders, no '..', no control characters, at most 255 characters
    (what the store's column holds, so a file the instance names is never dropped for less)."""
    return (
        0 < len(name) <= 255
        and name not in (".", "..")
        and not any(c in name for c in "/\\")
        and all(ord(c) >= 32 and ord(c) != 127 for c in name)
    )


def _check_envelope(doc, key_bytes: int | None, attachments) -> None:
    """What only the server can check of an envelope (the document checked its shape): the
    key is of the size the form's public key wraps to, and its encrypted XML file is here."""
    if key_bytes is not None and doc.key_size != key_bytes:
        raise problems.bad_envelope(
            f"its base64EncryptedKey holds {doc.key_size} bytes, but this form's key wraps "
            f"keys into {key_bytes}"
        )
    xml_file = doc.files[-1]
    parts = upload_parts()
    incomplete = INCOMPLETE_PART in parts.fields or INCOMPLETE_PART in parts.files
    if xml_file in attachments or incomplete:
        return  # here, or a split upload whose later part brings it
    stored = services().store.attachments(doc.form_id, doc.instance_id or "")
    if not any(a["name"] == xml_file and a["exists"] for a in stored):
        raise problems.bad_envelope(f"the encrypted data, {xml_file}, is not in the upload")


def _unreadable(exc: SubmissionError, xml: bytes, limit: int) -> problems.OpenRosaProblem:
    if exc.reason == SubmissionError.FORBIDDEN:
        return problems.forbidden_xml()
    if exc.reason == SubmissionError.TOO_MANY_ELEMENTS:
        return problems.too_many_elements(limit)
    if exc.reason == SubmissionError.BAD_ENVELOPE:
        return problems.bad_envelope(exc.detail or "")
    if exc.reason == SubmissionError.BAD_INSTANCE_ID:
        return problems.bad_instance_id(exc.message)
    if exc.reason == SubmissionError.NOT_WELL_FORMED and _has_root_with_id(xml):
        return problems.not_well_formed(str(exc.__cause__))
    return problems.missing_form_id()


def _has_root_with_id(xml: bytes) -> bool:
    """Did the XML get as far as a root element with an id (so it was cut off, not garbage)?"""
    return re.search(rb"<[A-Za-z_][\w.:-]*\s[^>]*\bid=", xml[:4096]) is not None
