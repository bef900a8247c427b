"""The OpenRosa server's catalogue of problems: HTTP status, code, and the message Collect shows.

Where ODK Central answers the same situation, the message is Central's word for word (devices
and the people who support them already know it); where nigraan is stricter or Central says
nothing useful, the message says what to do.
"""

from __future__ import annotations

from nigraan.errors import NigraanError


class OpenRosaProblem(NigraanError):
    """An answer to a device other than success. `bare` ones go out without the OpenRosa
    headers, as Central sends authentication failures and the missing-header 400."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        bare: bool = False,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.bare = bare
        self.headers = headers or {}


def missing_openrosa_header() -> OpenRosaProblem:
    return OpenRosaProblem(
        400,
        "400.6",
        "An expected header field (X-OpenRosa-Version) did not match the expected format.",
        bare=True,
    )


def malformed_token() -> OpenRosaProblem:
    return OpenRosaProblem(
        401, "401.2", "Could not authenticate with the provided credentials.", bare=True
    )


def not_allowed() -> OpenRosaProblem:
    return OpenRosaProblem(
        403,
        "403.1",
        "The authentication you provided does not have rights to perform that action.",
        bare=True,
    )


def form_not_allowed(form_id: str) -> OpenRosaProblem:
    return OpenRosaProblem(
        403,
        "403.1",
        f"This device account may not send or download the form '{form_id}'. Ask your "
        "supervisor to give the account this form.",
    )


def not_found() -> OpenRosaProblem:
    return OpenRosaProblem(404, "404.1", "Could not find the resource you were looking for.")


def unknown_form(form_id: str) -> OpenRosaProblem:
    return OpenRosaProblem(
        404,
        "404.1",
        f"Could not find the resource you were looking for. This server has no form "
        f"'{form_id}': get blank forms again, or ask your supervisor which server to send to.",
    )


def unknown_version(version: str) -> OpenRosaProblem:
    return OpenRosaProblem(
        404, "404.6", f"The form version specified in this submission '{version}' does not exist."
    )


def missing_xml_part() -> OpenRosaProblem:
    return OpenRosaProblem(
        400, "400.7", "Required multipart POST field xml_submission_file missing."
    )


def missing_form_id() -> OpenRosaProblem:
    return OpenRosaProblem(400, "400.2", "Required parameter form ID xml attribute missing.")


def not_well_formed(detail: str) -> OpenRosaProblem:
    return OpenRosaProblem(
        400,
        "400.40",
        f"The submission XML is not well formed ({detail}); it was probably cut off on the "
        "way. Nothing was saved: send it again. If it fails again, tell your supervisor.",
    )


def forbidden_xml() -> OpenRosaProblem:
    return OpenRosaProblem(
        400,
        "400.41",
        "The submission XML declares a DTD or entities, which this server refuses. ODK Collect "
        "never sends them: send it from ODK Collect.",
    )


def too_many_elements(limit: int) -> OpenRosaProblem:
    return OpenRosaProblem(
        400,
        "400.43",
        f"The submission XML has more than {limit:,} elements, far more than any form on this "
        "server produces, so it was refused. Nothing was saved. Tell your supervisor; the "
        "submission stays on the tablet.",
    )


def bad_envelope(detail: str) -> OpenRosaProblem:
    return OpenRosaProblem(
        400,
        "400.44",
        f"This submission claims to be encrypted but is not a proper encrypted submission "
        f"({detail}). Nothing was saved. Get the blank form again so the tablet encrypts it, "
        "fill it in again, and send it.",
    )


def bad_instance_id(detail: str) -> OpenRosaProblem:
    return OpenRosaProblem(
        400,
        "400.45",
        f"{detail} Nothing was saved. Send it from ODK Collect; if it fails again, tell your "
        "supervisor.",
    )


def not_stored_whole(detail: str) -> OpenRosaProblem:
    return OpenRosaProblem(
        400,
        "400.46",
        f"This server cannot store the submission whole: {detail} Nothing was saved; it is "
        "still on your tablet. Tell your supervisor.",
    )


def must_be_encrypted(form_id: str) -> OpenRosaProblem:
    return OpenRosaProblem(
        400,
        "400.42",
        f"The form '{form_id}' only accepts encrypted submissions and this one is not "
        "encrypted. Get the blank form again so the tablet encrypts it, fill it in again, "
        "and send it.",
    )


def too_large(limit: int) -> OpenRosaProblem:
    return OpenRosaProblem(
        413,
        "413.1",
        f"This upload is larger than the server accepts ({limit // 1_000_000} MB at once). "
        "Nothing was saved. Send it again over a steady connection; if a single file is "
        "larger than that, tell your supervisor.",
    )


def too_many_parts(max_parts: int, max_field_bytes: int) -> OpenRosaProblem:
    return OpenRosaProblem(
        413,
        "413.2",
        f"This upload has more parts than the server accepts: at most {max_parts:,} files and "
        f"fields in one upload, and no text field over {max_field_bytes // 1_000_000} MB. "
        "Nothing was saved. ODK Collect never sends that many: send it from ODK Collect, or "
        "tell your supervisor.",
    )


def refused_by_server(status: int, detail: str, max_submission_bytes: int) -> OpenRosaProblem:
    """What the HTTP server itself (waitress) refuses before the app sees the request."""
    if status == 413:
        return too_large(max_submission_bytes)
    if status == 431:
        return OpenRosaProblem(
            431,
            "431.1",
            "The request headers are larger than the server accepts. Nothing was saved. ODK "
            "Collect never sends headers that large: send from ODK Collect, or tell your "
            "supervisor.",
        )
    if status == 501:
        return OpenRosaProblem(
            501,
            "501.1",
            f"The server cannot read this request ({detail}). Nothing was saved. Send it from "
            "ODK Collect; if it fails again, tell your supervisor.",
        )
    if status == 400:
        return OpenRosaProblem(
            400,
            "400.43",
            f"The server could not read this request ({detail}); it was probably damaged on "
            "the way. Nothing was saved: send it again. If it fails again, tell your "
            "supervisor.",
        )
    return OpenRosaProblem(
        status,
        f"{status}.1",
        "The server could not handle this request. Nothing was saved: send it again later. "
        "If it keeps failing, tell your supervisor.",
    )


def conflict() -> OpenRosaProblem:
    return OpenRosaProblem(
        409,
        "409.1",
        "A submission already exists with this ID, but with different XML. Resubmissions to "
        "attach additional multimedia must resubmit an identical xml_submission_file.",
    )


def deleted_resend() -> OpenRosaProblem:
    return OpenRosaProblem(
        409, "409.18", "This submission has been deleted. You may not resubmit it."
    )


def stale_edit(deprecated_id: str) -> OpenRosaProblem:
    return OpenRosaProblem(
        409,
        "409.9",
        f"You tried to update a submission, but the copy you were editing ({deprecated_id}) is "
        "now out of date. Please get the new version that has been submitted, and make your "
        "edits again.",
    )


def unknown_deprecated(deprecated_id: str) -> OpenRosaProblem:
    return OpenRosaProblem(
        404,
        "404.5",
        "You tried to update an existing submission, but we can't find that submission to "
        f"update ({deprecated_id})",
    )


def not_saved() -> OpenRosaProblem:
    return OpenRosaProblem(
        500,
        "500.1",
        "The server could not save this submission. It is still on your tablet: send it again "
        "later. If it keeps failing, tell your supervisor.",
    )
