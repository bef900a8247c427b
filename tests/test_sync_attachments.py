"""A sync's attachment downloads: several at once, no listing where OData says every file is in
Central, stored byte-exact in batches, a failed file asked for again next sync."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from sync.central import Central, CentralUnavailable
from sync.pull import sync
from tests.central_records import numbered_rows
from tests.central_standin import CentralStandin, admin_settings

FORM = "rec_visit"
N = 40


def _content(i: int) -> bytes:
    """A file of its own for submission i (sizes differ; every sha256 differs)."""
    seed = hashlib.sha256(f"photo {i}".encode()).digest()
    return seed * (50 + i * 7)


@pytest.fixture
def standin(central_dir):
    server = CentralStandin().serve()
    server.add_form((central_dir / "forms" / "rec_visit.xml").read_bytes())
    first = datetime.now(UTC) - timedelta(days=2)
    rows = numbered_rows(central_dir, N, first, photos=True, prefix="files")
    files = {r["__id"]: {r["photo"]: (_content(i), "image/jpeg")} for i, r in enumerate(rows)}
    server.add_rows(FORM, rows, keep_dates=True, attachments=files)
    server.file_seconds = 0.05  # a round trip: downloads one by one would take N times this
    yield server
    server.stop()


def _central(standin, **overrides) -> Central:
    values = {"page_size": 10, "timeout": 5.0, "retries": 3, "retry_wait": 0.01}
    values.update({"download_workers": 4, **overrides})
    return Central(admin_settings(standin.base_url, **values))


def _root(i: int) -> str:
    return f"uuid:files-{i:08d}"


def test_files_arrive_byte_exact_several_at_once_without_listings(standin, store):
    central = _central(standin)
    [result] = sync(central, store, [FORM])
    central.close()
    assert (result.new, result.attachments, result.problems) == (N, N, [])
    for i in range(N):
        assert store.attachment(FORM, _root(i), f"photo-{i}.jpg") == _content(i)
    assert store.missing_attachments(FORM) == {}
    assert 1 < standin.files_at_once <= 4  # in parallel, never more than download_workers
    # Every row said attachmentsPresent = attachmentsExpected: no listing was asked for.
    assert not [p for _, p, _ in standin.requests("/submissions/") if p.endswith("/attachments")]


def test_a_file_central_fails_for_is_asked_again_next_sync_and_the_rest_are_kept(standin, store):
    central = _central(standin)
    standin.fail(500, count=3, match="/attachments/photo-7.jpg")  # all 3 attempts fail
    [first] = sync(central, store, [FORM])
    assert first.attachments == N - 1
    [problem] = first.problems
    assert _root(7) in problem and "photo-7.jpg" in problem and "next sync" in problem
    assert store.attachment(FORM, _root(7), "photo-7.jpg") is None  # never marked present
    assert store.missing_attachments(FORM) == {_root(7): [(_root(7), "photo-7.jpg")]}
    assert store.attachment(FORM, _root(8), "photo-8.jpg") == _content(8)

    [second] = sync(central, store, [FORM])
    central.close()
    assert (second.attachments, second.problems) == (1, [])
    assert store.attachment(FORM, _root(7), "photo-7.jpg") == _content(7)


def test_files_central_does_not_have_yet_wait_and_come_through_the_listing_later(standin, store):
    sub = standin.form(FORM).subs[_root(3)]
    content = sub.attachments["photo-3.jpg"]
    sub.attachments["photo-3.jpg"] = None  # not uploaded yet: Central says 0 of 1
    sub.row["__system"]["attachmentsPresent"] = 0
    central = _central(standin)
    [first] = sync(central, store, [FORM])
    assert (first.attachments, first.attachments_waiting) == (N - 1, 1)
    assert not standin.requests(f"{_root(3).replace(':', '%3A')}/attachments")  # nothing asked

    sub.attachments["photo-3.jpg"] = content  # it arrives; the row is not read again
    sub.row["__system"]["attachmentsPresent"] = 1
    [second] = sync(central, store, [FORM])
    central.close()
    assert (second.new, second.attachments, second.attachments_waiting) == (0, 1, 0)
    assert store.attachment(FORM, _root(3), "photo-3.jpg") == content[0]
    listings = [p for _, p, _ in standin.requests("/submissions/") if p.endswith("/attachments")]
    assert len(listings) == 1  # unknown to this run: Central's listing said it is there


def test_central_failing_for_every_file_stops_the_sync_clearly(standin, store):
    central = _central(standin, retries=2)
    standin.fail(503, count=10_000, match="/attachments/photo-")
    with pytest.raises(CentralUnavailable, match="answered HTTP 503"):
        sync(central, store, [FORM])
    central.close()
    assert store.live_count(FORM) == N  # the rows are stored; only the files wait
    assert len(store.missing_attachments(FORM)) == N
    asked = len(standin.requests("/attachments/photo-"))
    assert asked < N * 2  # it stopped: it did not try every file with every retry


def test_an_expired_session_during_the_downloads_is_renewed_once_for_all_workers(standin, store):
    from sync.pull import FormPuller

    central = _central(standin)
    puller = FormPuller(central, store, FORM)
    puller.register_versions()
    puller.pull(full=False)
    logins = standin.logins
    standin.expire_tokens()  # every worker's next request gets 401
    puller.attachments()
    central.close()
    assert (puller.result.attachments, puller.result.problems) == (N, [])
    assert standin.logins == logins + 1
