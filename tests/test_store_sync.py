"""The store's side of Central sync: deletions, restores, sync state, the review outbox."""

from __future__ import annotations

import copy

import pytest

from store.store import CENTRAL, DELETED, Incoming
from tests.central_records import FINAL_PAGES, odata_rows

FORM = "rec_visit"
V03 = "uuid:d1245971-ccba-4fcd-b1ed-3dc727116c2b"  # 3 detainees, 3 injuries


@pytest.fixture
def rows(central_dir):
    return odata_rows(central_dir, *FINAL_PAGES)


@pytest.fixture
def loaded(store, central_dir, rows):
    store.register_form((central_dir / "forms" / "rec_visit.xml").read_bytes())
    store.ingest_many([Incoming(r, CENTRAL, FORM) for r in rows])
    return store


def _typed(store):
    return {t.name: store.rows(t.name) for t in store.form_tables(FORM).values()}


def _mentions(tables, root_id):
    return [
        name
        for name, rows in tables.items()
        if any(root_id in (r.get("__id"), r.get("__submission_id")) for r in rows)
    ]


def test_a_deleted_submission_stops_counting_and_a_restore_brings_it_back(loaded):
    before = _typed(loaded)
    assert len(_mentions(before, V03)) == 3  # the submission, its detainees, their injuries
    assert loaded.mark_deleted(FORM, {V03: "2026-11-28T19:18:09.372Z"}) == 1
    assert loaded.mark_deleted(FORM, {V03: "2026-11-28T19:18:09.372Z"}) == 0  # idempotent
    assert _mentions(_typed(loaded), V03) == []
    assert loaded.counts()[FORM] == {"submissions": 29, "deleted": 1, "versions": 30}
    assert loaded.submission(FORM, V03)["normalised"] == DELETED
    assert V03 in loaded.root_ids(FORM, deleted=True) and V03 not in loaded.root_ids(FORM)
    loaded.rebuild()
    assert _mentions(_typed(loaded), V03) == []  # a rebuild leaves it out too

    assert loaded.mark_restored(FORM, [V03]) == 1
    assert loaded.mark_restored(FORM, [V03]) == 0
    assert _typed(loaded) == before
    assert loaded.submission(FORM, V03)["deleted_at"] is None


def test_rows_central_reports_deleted_or_restored(loaded, rows):
    [row] = [copy.deepcopy(r) for r in rows if r["__id"] == V03]
    row["__system"]["deletedAt"] = "2026-11-28T19:18:09.372Z"
    [result] = loaded.ingest_many([Incoming(row, CENTRAL, FORM)])
    assert result.status == "duplicate"  # same data, newer metadata
    assert _mentions(_typed(loaded), V03) == []
    row["__system"]["deletedAt"] = None
    loaded.ingest_many([Incoming(row, CENTRAL, FORM)])
    assert len(_mentions(_typed(loaded), V03)) == 3

    new = copy.deepcopy(row)
    new["__id"] = new["meta"]["instanceID"] = "uuid:first-seen-deleted"
    new["__system"]["deletedAt"] = "2026-11-28T19:18:09.372Z"
    [result] = loaded.ingest_many([Incoming(new, CENTRAL, FORM)])
    assert result.status == "created" and result.normalised == DELETED
    assert _mentions(_typed(loaded), "uuid:first-seen-deleted") == []


def test_sync_state_and_review_outbox(loaded):
    assert loaded.sync_state("scope") is None
    loaded.save_sync_state("scope", FORM, resume_link="http://x/next", pass_high="t1")
    loaded.save_sync_state("scope", FORM, watermark="t2", resume_link=None)
    state = loaded.sync_state("scope")
    assert (state["watermark"], state["resume_link"], state["pass_high"]) == ("t2", None, "t1")

    entry = loaded.record_review(FORM, V03, "approved", "looks right")
    assert loaded.submission(FORM, V03)["review_state"] == "approved"
    [pending] = loaded.pending_reviews()
    assert (pending["id"], pending["attempts"], pending["done_at"]) == (entry, 0, None)
    loaded.review_progress(entry, attempt=True)
    loaded.review_progress(entry, state_pushed=True)
    loaded.review_progress(entry, error="Central down")
    [pending] = loaded.pending_reviews()
    assert pending["attempts"] == 1 and pending["state_pushed_at"] is not None
    assert pending["comment_pushed_at"] is None and pending["last_error"] == "Central down"
    loaded.review_progress(entry, comment_pushed=True)
    loaded.review_progress(entry, done=True)
    assert loaded.pending_reviews() == []


def test_missing_attachments_and_lookups(loaded, rows):
    missing = loaded.missing_attachments(FORM)
    with_photo = {r["__id"] for r in rows if r.get("photo")}
    assert set(missing) == with_photo
    root = sorted(with_photo)[0]
    [(instance_id, name)] = missing[root]
    assert loaded.add_attachment(FORM, instance_id, name, b"jpeg bytes", "image/jpeg")
    assert root not in loaded.missing_attachments(FORM)
    loaded.mark_deleted(FORM, {sorted(with_photo)[1]: None})
    assert sorted(with_photo)[1] not in loaded.missing_attachments(FORM)
    assert loaded.live_count(FORM) == 29
    [found] = loaded.find_submissions(V03)
    assert found["form_id"] == FORM
    assert loaded.find_submissions("uuid:nope") == []


def test_many_attachments_are_filled_in_one_call_and_unnamed_ones_ignored(loaded):
    missing = loaded.missing_attachments(FORM)
    named = sorted((i, n) for files in missing.values() for i, n in files)[:3]
    same = b"the same photo twice"  # two files, one blob
    batch = [
        (named[0][0], named[0][1], b"first", "image/jpeg"),
        (named[1][0], named[1][1], same, None),
        (named[2][0], named[2][1], same, "image/png"),
        (named[0][0], "not-named.jpg", b"ignored", "image/jpeg"),
        ("uuid:no-such-submission", "photo.jpg", b"ignored", "image/jpeg"),
    ]
    assert loaded.add_attachments(FORM, batch) == 3
    assert loaded.attachment(FORM, named[0][0], named[0][1]) == b"first"
    assert loaded.attachment(FORM, named[2][0], named[2][1]) == same
    assert loaded.attachment(FORM, named[0][0], "not-named.jpg") is None
    [first] = [a for a in loaded.attachments(FORM, named[0][0]) if a["name"] == named[0][1]]
    assert (first["exists"], first["size"], first["content_type"]) == (True, 5, "image/jpeg")
    left = sum(len(files) for files in loaded.missing_attachments(FORM).values())
    assert left == sum(len(files) for files in missing.values()) - 3
    assert loaded.add_attachments(FORM, []) == 0


def test_reviews_of_submissions_not_from_central_are_kept_not_queued(loaded):
    loaded.record_review(FORM, V03, "hasIssues", "check the dates", for_central=False)
    assert loaded.submission(FORM, V03)["review_state"] == "hasIssues"
    assert loaded.pending_reviews() == []
    [kept] = loaded.reviews()
    assert kept["comment"] == "check the dates" and kept["done_at"] is not None


V05 = "uuid:d4211011-26dc-4d6b-8a33-323d31658545"  # edited once over OpenRosa
V05_EDIT = "uuid:5b3c44ca-17fb-44d3-9676-a676816210d1"


def test_history_from_central_goes_before_the_current_version(loaded, central_dir):
    """The recorded V05 row is its edit; its original (v05.xml) arrives as a past version."""
    original = (central_dir / "submissions" / "v05.xml").read_bytes()
    typed = _typed(loaded)
    [current] = loaded.versions(FORM, V05)
    assert loaded.add_history("rec_visit", "uuid:not-stored", [V05], {V05: original}) == 0
    assert loaded.add_history(FORM, V05, [V05, V05_EDIT], {V05: original}) == 1
    first, second = loaded.versions(FORM, V05)
    assert (first["instance_id"], first["current"], first["deprecated_id"]) == (V05, False, None)
    assert (first["payload_kind"], bytes(first["payload"])) == ("xml", original)
    assert (second["instance_id"], second["current"], second["deprecated_id"]) == (
        V05_EDIT,
        True,
        V05,
    )
    assert bytes(second["payload"]) == bytes(current["payload"])
    assert _typed(loaded) == typed  # the current version stays the one typed
    assert loaded.add_history(FORM, V05, [V05, V05_EDIT], {V05: original}) == 0  # idempotent
    # An instanceID another submission holds is never taken over.
    assert loaded.add_history(FORM, V03, [V05, V03], {V05: original}) == 0
    assert len(loaded.versions(FORM, V03)) == 1
    loaded.rebuild()
    assert _typed(loaded) == typed
