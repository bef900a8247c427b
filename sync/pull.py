"""Pull a Central project's submissions into the store: new, edited, reviewed, deleted, restored.

Per form, in this order:

1. the form's published versions are registered in the store (typed tables need them);
2. one *pass* over the OData `Submissions` feed (`$expand=*`, `$top`, following nextLink):
   everything on `--full` or the first time, otherwise rows whose `__system/submissionDate` or
   `__system/updatedAt` is after the watermark minus the overlap window. Each page is stored
   in its own transaction and the next-page link saved after it, so a killed sync resumes the
   same pass; the watermark moves only when the whole pass is stored (pages come newest first,
   so an earlier move could skip the older rows of an unfinished pass);
3. deletions: rows whose `__system/deletedAt` is set (Central shows them only to a filter that
   mentions deletedAt) stop counting; local deletions Central no longer reports are restored
   (a restore does not touch updatedAt, so no incremental filter would see it);
4. a cheap reconciliation: when Central's live count differs from ours, the REST listing of
   every id settles what was missed (purged, deleted before we ever saw it, ...);
5. attachments the stored submissions name but do not hold yet, over REST, by name, several
   at once (`central.download_workers`), without a listing request where the row read says
   Central has them all;
6. encrypted submissions (OData shows them only as placeholders, `__system/status`
   `notDecrypted`): the envelope and `.enc` files come over REST and are kept in the raw layer
   (`Store.keep_envelope`), right after the page that brought the row; once all the parts are
   here and the keys are loaded (`identity_keys`), each is decrypted in memory and an
   identity_register submission filed in the identity register (a submission that does not
   decrypt is flagged, `decryption_flags`, and stays encrypted). Central-managed keys never
   leave Central: with `managed_passphrase`, Central's decrypting export is read instead.

Edits: a row is the newest version only. When its `__system/edits` says Central holds more
versions than the store (an edit before the first sync, two edits between syncs), the
versions Central lists (`…/submissions/<id>/versions`) that are missing are read
(`…/versions/<instanceID>.xml`) and stored as past versions, in Central's order, right after
the page that brought the row (before its next-page link is saved, so a stopped sync reads
them again).

Re-reading a row is harmless: the store recognises the same data (`duplicate`) and keeps
Central's newest review metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from nigraan.errors import FormError
from nigraan.identity_keys import IdentityKeys
from store.document import ENCRYPTED_STATUSES, SubmissionError
from store.store import CENTRAL, CREATED, DUPLICATE, EDITED, UNREADABLE, Incoming, Store
from sync.attachments import download_missing
from sync.central import Central, CentralError, CentralUnavailable
from sync.odata import read_pages, same_origin, submissions_path

SINGLE_ROWS_MAX = 200  # more submissions to re-read than this: one full pass instead


@dataclass
class FormSync:
    """What one form's sync did (the summary line)."""

    form_id: str
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    restored: int = 0
    attachments: int = 0
    attachments_waiting: int = 0
    encrypted: int = 0
    decrypted: int = 0  # decrypted in memory (identities filed in the register)
    not_decrypted: int = 0  # flagged: wrong key, tampered, ... (kept encrypted)
    versions: int = 0  # past versions read from Central's history
    problems: list[str] = field(default_factory=list)
    resumed: bool = False
    full: bool = False
    refused: bool = False  # Central refused this form (unknown, no rights): in `problems`


Progress = Callable[[str, int, int | None], None]  # (form id, rows done now, total or None)


def _no_progress(_form: str, _done: int, _total: int | None) -> None:
    return None


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def format_ts(moment: datetime) -> str:
    """As Central writes timestamps: UTC, milliseconds, Z (its filters take them unquoted)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def newest(rows: Iterable[dict[str, Any]], current: str | None) -> str | None:
    """The newest submissionDate/updatedAt among rows and `current` (ISO strings, UTC, Z)."""
    best = parse_ts(current) if current else None
    for row in rows:
        system = row.get("__system") or {}
        for key in ("submissionDate", "updatedAt"):
            value = system.get(key)
            if value:
                moment = parse_ts(value)
                if best is None or moment > best:
                    best = moment
    return format_ts(best) if best else None


def incremental_filter(watermark: str, overlap_seconds: int) -> str:
    since = format_ts(parse_ts(watermark) - timedelta(seconds=overlap_seconds))
    return f"__system/submissionDate gt {since} or __system/updatedAt gt {since}"


class FormPuller:
    """Mirrors one Central form into the store."""

    def __init__(
        self,
        central: Central,
        store: Store,
        form_id: str,
        progress: Progress = _no_progress,
        prefetch: bool = True,
        identity_keys: IdentityKeys | None = None,
        managed_passphrase: str | None = None,
    ):
        self.central = central
        self.store = store
        self.form_id = form_id
        self.progress = progress
        self.prefetch = prefetch
        self.identity_keys = identity_keys
        self.managed_passphrase = managed_passphrase or None
        self.to_decrypt: dict[str, None] = {}  # instanceIDs whose envelope changed this run
        self._managed: bool | None = None
        settings = central.settings
        self.scope = f"{settings.shown_url}|project {central.project_id}|{form_id}"
        self.result = FormSync(form_id)
        self.url = submissions_path(central, form_id)
        # {root id: (attachmentsPresent, attachmentsExpected)} of the rows read in this run
        self.file_counts: dict[str, tuple[int, int]] = {}

    # -- steps

    def run(self, full: bool = False) -> FormSync:
        self.register_versions()
        self.pull(full)
        self.deletions()
        self.reconcile()
        self.attachments()
        self.decrypt()
        return self.result

    def register_versions(self) -> None:
        """Register every published version of the form the store does not have yet."""
        path = self.central.path(
            "projects/{project_id}/forms/{form_id}/versions", form_id=self.form_id
        )
        versions = self.central.get_json(path)
        known = self.store.form_versions(self.form_id)
        have = known.versions if known is not None else frozenset()
        for entry in reversed(versions):  # Central lists newest first; register oldest first
            version = entry.get("version")
            if version is None or version in have:
                continue
            xml = self.central.get(
                self.central.path(
                    "projects/{project_id}/forms/{form_id}/versions/{version}.xml",
                    form_id=self.form_id,
                    version=version,
                )
            ).content
            try:
                self.store.register_form(xml)
            except FormError as exc:
                self.result.problems.append(f"form version {version}: {exc.message}")

    def pull(self, full: bool) -> None:
        state = self.store.sync_state(self.scope) or {}
        watermark = None if full else state.get("watermark")
        self.result.full = watermark is None
        high = state.get("pass_high") if not full else None
        link = state.get("resume_link") if not full else None
        if link:
            self.result.resumed = True
            pages = read_pages(
                self.central, same_origin(self.central, link), prefetch=self.prefetch
            )
        else:
            params: dict[str, Any] = {
                "$top": self.central.settings.page_size,
                "$count": "true",
                "$expand": "*",
            }
            pass_filter = None
            if watermark:
                pass_filter = incremental_filter(watermark, self.central.settings.overlap_seconds)
                params["$filter"] = pass_filter
            self.store.save_sync_state(
                self.scope,
                self.form_id,
                pass_filter=pass_filter,
                pass_high=None,
                resume_link=None,
            )
            pages = read_pages(self.central, self.url, params, prefetch=self.prefetch)
        total = None
        with closing(pages):  # a failure here ends the reader thread at once
            for page in pages:
                if page.count is not None:
                    total = page.count
                self.store_rows(page.rows, watermark)
                high = newest(page.rows, high)
                # Committed: a restart continues with the next page of this same pass.
                self.store.save_sync_state(
                    self.scope, self.form_id, pass_high=high, resume_link=page.next_link
                )
                self.progress(self.form_id, len(page.rows), total)
        done = newest([], high)
        if state.get("watermark") and done and not full:
            done = max(done, state["watermark"], key=parse_ts)
        self.store.save_sync_state(
            self.scope,
            self.form_id,
            watermark=done or state.get("watermark"),
            pass_filter=None,
            pass_high=None,
            resume_link=None,
        )

    def store_rows(self, rows: list[dict[str, Any]], watermark: str | None) -> None:
        received = datetime.now(UTC)
        items = [Incoming(row, CENTRAL, self.form_id, received_at=received) for row in rows]
        results = self.store.ingest_many(items)
        since = parse_ts(watermark) if watermark else None
        for row, outcome in zip(rows, results, strict=True):
            system = row.get("__system") or {}
            expected = system.get("attachmentsExpected")
            if isinstance(expected, int) and expected > 0 and row.get("__id"):
                present = system.get("attachmentsPresent")
                if isinstance(present, int):
                    self.file_counts[row["__id"]] = (present, expected)
            if system.get("status"):
                self.result.encrypted += 1
            if outcome.status == CREATED:
                self.result.new += 1
            elif outcome.status == EDITED:
                self.result.changed += 1
            elif outcome.status == DUPLICATE:
                updated = system.get("updatedAt")
                if since is not None and updated and parse_ts(updated) > since:
                    self.result.changed += 1  # a review (or other metadata) change
                else:
                    self.result.unchanged += 1
            else:
                reason = outcome.message or outcome.status
                if outcome.status == UNREADABLE:
                    reason = "unreadable row"
                self.result.problems.append(f"{row.get('__id')}: {reason}")
            self.result.problems += [
                f"{row.get('__id')}: {p.code} {p.path or ''}".rstrip() for p in outcome.problems
            ]
        self.history(rows)
        self.envelopes(rows, results)

    def envelopes(self, rows: list[dict[str, Any]], results) -> None:
        """Keep the envelope and `.enc` files of the encrypted rows whose store holds only
        OData's placeholder (fetched through the REST attachment listing)."""
        from store.encrypted_submissions import PLACEHOLDER, envelope_state
        from store.odk_decrypt import DecryptionError
        from sync.encrypted import fetch_encrypted_files

        for row, outcome in zip(rows, results, strict=True):
            system = row.get("__system") or {}
            if system.get("status") not in ENCRYPTED_STATUSES or system.get("deletedAt"):
                continue
            if outcome.status not in (CREATED, EDITED, DUPLICATE) or not outcome.instance_id:
                continue
            instance_id = outcome.instance_id
            if envelope_state(self.store, self.form_id, instance_id) != PLACEHOLDER:
                continue
            try:
                parts = fetch_encrypted_files(self.central, self.form_id, instance_id)
                self.store.keep_envelope(self.form_id, instance_id, parts.envelope, parts.files)
            except (CentralError, DecryptionError, SubmissionError) as exc:
                self.result.problems.append(f"{instance_id}: envelope not kept ({exc.message})")
                continue
            self.to_decrypt[instance_id] = None

    def decrypt(self) -> None:
        """Decrypt the envelopes completed in this run and file the identities."""
        from store.encrypted_submissions import (
            COMPLETE,
            DECRYPTED,
            WAITING,
            decrypt_and_file,
            envelope_state,
        )

        if not self.to_decrypt:
            return
        if self.managed():
            self.decrypt_managed()
            return
        if self.identity_keys is None or not self.identity_keys.decrypts_here:
            return  # kept encrypted: `nigraan identity import` with the key, later
        for instance_id in self.to_decrypt:
            if envelope_state(self.store, self.form_id, instance_id) != COMPLETE:
                continue
            outcome = decrypt_and_file(self.store, self.identity_keys, self.form_id, instance_id)
            if outcome in ("created", "updated", DECRYPTED):
                self.result.decrypted += 1
            elif outcome != WAITING:
                self.result.not_decrypted += 1
                self.result.problems.append(f"{instance_id}: not decrypted ({outcome})")

    def managed(self) -> bool:
        """Does the form use a Central-managed key (whose private half never leaves Central)?"""
        if self._managed is None:
            from sync.encrypted import encryption_keys

            self._managed = any(
                k.get("managed") for k in encryption_keys(self.central, self.form_id)
            )
        return self._managed

    def decrypt_managed(self) -> None:
        """Central-managed key: Central's decrypting export, with identity.passphrase."""
        from store.encrypted_submissions import IDENTITY_FORM, file_exported_identities
        from sync.encrypted import encryption_keys, managed_export

        if self.form_id != IDENTITY_FORM:
            return
        if self.identity_keys is None:  # the register's data key comes with them
            self.result.problems.append(
                "managed-key submissions not decrypted: the identity keys are not loaded"
            )
            return
        if not self.managed_passphrase:
            self.result.problems.append(
                "managed-key submissions not decrypted: identity.passphrase is not set"
            )
            return
        keys = [k["id"] for k in encryption_keys(self.central, self.form_id) if k.get("managed")]
        export = managed_export(
            self.central, self.form_id, dict.fromkeys(keys, self.managed_passphrase)
        )
        counts = file_exported_identities(
            self.store, self.identity_keys.data_key, export.rows, set(self.to_decrypt)
        )
        self.result.decrypted += counts.get("created", 0) + counts.get("updated", 0)

    def history(self, rows: list[dict[str, Any]]) -> None:
        """Store the versions Central holds of these rows' submissions that the store lacks."""
        edits = {}
        for row in rows:
            system = row.get("__system") or {}
            if system.get("edits") and not system.get("deletedAt") and row.get("__id"):
                edits[row["__id"]] = int(system["edits"])
        if not edits:
            return
        stored = self.store.version_ids(self.form_id, edits)
        base = "projects/{project_id}/forms/{form_id}/submissions/{root_id}/versions"
        for root_id, count in edits.items():
            have = stored.get(root_id)
            if have is None or len(have) > count:  # not stored (refused), or nothing missing
                continue
            listing = self.central.get(
                self.central.path(base, form_id=self.form_id, root_id=root_id), ok=(200, 404)
            )
            if listing.status_code == 404:  # deleted in Central since this page was read
                continue
            order = [v["instanceId"] for v in reversed(orjson.loads(listing.content))]
            xml = {}
            for instance_id in order:
                if instance_id not in have:
                    xml[instance_id] = self.central.get(
                        self.central.path(
                            base + "/{instance_id}.xml",
                            form_id=self.form_id,
                            root_id=root_id,
                            instance_id=instance_id,
                        )
                    ).content
            self.result.versions += self.store.add_history(self.form_id, root_id, order, xml)

    def deletions(self) -> None:
        """Apply Central's deletions, and restores of submissions deleted here."""
        params = {
            "$filter": "__system/deletedAt ne null",
            "$select": "__id,__system/deletedAt",
            "$top": self.central.settings.page_size,
        }
        deleted: dict[str, str] = {}
        for page in read_pages(self.central, self.url, params, prefetch=False):
            for row in page.rows:
                deleted[row["__id"]] = (row.get("__system") or {}).get("deletedAt")
        self.result.deleted += self.store.mark_deleted(self.form_id, deleted)
        gone_here = self.store.root_ids(self.form_id, deleted=True) - deleted.keys()
        if gone_here:  # restored in Central (or purged: then Central has no row for it)
            self.fetch_by_id(sorted(gone_here), restore=True)

    def reconcile(self) -> None:
        """When Central's count of live submissions differs from ours, compare every id."""
        body = self.central.get_json(self.url, params={"$top": 0, "$count": "true"})
        if body.get("@odata.count") == self.store.live_count(self.form_id):
            return
        listing = self.central.get_json(
            self.central.path(
                "projects/{project_id}/forms/{form_id}/submissions", form_id=self.form_id
            )
        )
        live = {entry["instanceId"] for entry in listing}
        here = self.store.root_ids(self.form_id)
        gone = here - live
        if gone:
            now = format_ts(datetime.now(UTC))
            self.result.deleted += self.store.mark_deleted(self.form_id, dict.fromkeys(gone, now))
        missing = live - here
        if missing:
            self.fetch_by_id(sorted(missing), restore=True)

    def fetch_by_id(self, root_ids: list[str], restore: bool) -> None:
        """Read the given submissions (root ids) with `$expand=*` and store them.

        Central cannot filter on `__id` (501.5), so each is read as a single row,
        `Submissions('<id>')?$expand=*`; many of them are cheaper as one full pass.
        """
        rows: list[dict[str, Any]] = []
        if len(root_ids) > SINGLE_ROWS_MAX:
            wanted = set(root_ids)
            params = {"$top": self.central.settings.page_size, "$expand": "*"}
            with closing(
                read_pages(self.central, self.url, params, prefetch=self.prefetch)
            ) as pages:
                for page in pages:
                    rows += [r for r in page.rows if r.get("__id") in wanted]
        else:
            for root_id in root_ids:
                path = self.central.path(
                    "projects/{project_id}/forms/{form_id}.svc/Submissions('{root_id}')",
                    form_id=self.form_id,
                    root_id=root_id,
                )
                response = self.central.get(path, ok=(200, 404), params={"$expand": "*"})
                if response.status_code == 200:  # 404: purged, deleted again, or an id
                    rows += orjson.loads(response.content).get("value", [])  # it cannot read
        if restore and rows:
            self.result.restored += self.store.mark_restored(
                self.form_id, [r["__id"] for r in rows]
            )
        if rows:
            self.store_rows(rows, None)

    def attachments(self) -> None:
        """Download the files stored submissions name but do not hold (sync/attachments.py)."""
        done = download_missing(self.central, self.store, self.form_id, self.file_counts)
        self.result.attachments += done.stored
        self.result.attachments_waiting += done.waiting
        self.result.problems += done.problems
        for instance_id in done.encrypted:  # an encrypted part came: the envelope may be whole
            self.to_decrypt[instance_id] = None
        if done.outage is not None:
            raise done.outage


def published_forms(central: Central) -> list[str]:
    """Form ids of the project's published forms, as Central lists them."""
    forms = central.get_json(central.path("projects/{project_id}/forms"))
    return [f["xmlFormId"] for f in forms if f.get("publishedAt")]


def pull_forms(
    central: Central,
    store: Store,
    form_ids: list[str] | None = None,
    full: bool = False,
    progress: Progress = _no_progress,
    prefetch: bool = True,
    identity_keys: IdentityKeys | None = None,
    managed_passphrase: str | None = None,
) -> Iterator[FormSync]:
    """Mirror the given forms (default: every published form of the project) into the store,
    yielding what each form's sync did as it ends.

    A form Central refuses (unknown, no rights) is `refused`, its reason in `problems`, and the
    others go on; Central unreachable after retries (`CentralUnavailable`) stops the sync.
    With `identity_keys`, encrypted submissions are decrypted and identities filed (module doc).
    """
    for form_id in form_ids or published_forms(central):
        puller = FormPuller(
            central, store, form_id, progress, prefetch, identity_keys, managed_passphrase
        )
        try:
            yield puller.run(full)
        except CentralUnavailable:
            raise
        except CentralError as exc:  # this form only: go on
            puller.result.problems.append(exc.message)
            puller.result.refused = True
            yield puller.result


def sync(
    central: Central,
    store: Store,
    form_ids: list[str] | None = None,
    full: bool = False,
    progress: Progress = _no_progress,
    prefetch: bool = True,
    identity_keys: IdentityKeys | None = None,
    managed_passphrase: str | None = None,
) -> list[FormSync]:
    """Every form's `FormSync` of `pull_forms`, once all are done."""
    return list(
        pull_forms(
            central, store, form_ids, full, progress, prefetch, identity_keys, managed_passphrase
        )
    )
