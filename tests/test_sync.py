"""Sync with ODK Central, against the stand-in served on 127.0.0.1 and driven by pyodk."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import time

import orjson
import pytest
import requests

from store.store import CENTRAL, Incoming
from sync.central import Central, CentralSettings, CentralUnavailable
from sync.pull import FormPuller, sync
from sync.review_outbox import push_reviews
from tests.central_records import FINAL_PAGES, odata_rows
from tests.central_standin import CentralStandin, admin_settings

FORM = "rec_visit"
RECORDED_ORIGIN = "http://127.0.0.1:8383"
V06 = "uuid:596bbf49-1179-4fc9-b414-d10c60c9f938"
V07 = "uuid:a2f92b94-b7bc-48ce-9930-7a4713456136"
V15 = "uuid:eea773b1-0d9a-490a-b55c-5f117e806ca8"
V16 = "uuid:93cc0f52-f927-4035-89f0-e8238b72dffe"
V18 = "uuid:4640c026-7cde-47cb-a5bd-00cac4071d15"


def _photos(central_dir, rows) -> dict:
    """Attachment bytes for every row that names a photo (recorded JPEGs, cycled)."""
    media = sorted((central_dir / "submissions" / "media").glob("*.jpg"))
    out = {}
    for i, row in enumerate(rows):
        if row.get("photo"):
            out[row["__id"]] = {row["photo"]: (media[i % len(media)].read_bytes(), "image/jpeg")}
    return out


def _recorded_versions(central_dir) -> dict[str, list[bytes]]:
    """The XML of every version of the recorded edited submissions, oldest first, by root id."""
    index = json.loads((central_dir / "submissions" / "INDEX.json").read_text())[FORM]
    return {
        entry["instanceID"]: [
            (central_dir / name).read_bytes()
            for name in [entry["instance_file"], *entry["edit_files"]]
        ]
        for entry in index.values()
        if entry.get("edit_files")
    }


@pytest.fixture
def recorded_rows(central_dir):
    return odata_rows(central_dir, *FINAL_PAGES)


@pytest.fixture
def standin(central_dir, recorded_rows):
    server = CentralStandin().serve()
    server.add_form((central_dir / "forms" / "rec_visit.xml").read_bytes())
    server.add_rows(
        FORM,
        recorded_rows,
        keep_dates=True,
        attachments=_photos(central_dir, recorded_rows),
        versions=_recorded_versions(central_dir),
    )
    yield server
    server.stop()


def _settings(standin, **overrides) -> CentralSettings:
    values = {"page_size": 7, "timeout": 2.0, "retries": 3, "retry_wait": 0.01}
    values.update(overrides)
    return admin_settings(standin.base_url, **values)


@pytest.fixture
def central(standin):
    client = Central(_settings(standin))
    yield client
    client.close()


def tables(store) -> dict[str, list[dict]]:
    """Every typed table of rec_visit, rows ordered by __id."""
    return {t.name: store.rows(t.name) for t in store.form_tables(FORM).values()}


def snapshot(store) -> dict:
    """What a sync must reproduce: typed rows, and per live submission its Central metadata."""
    subs = {}
    for root in sorted(store.root_ids(FORM)):
        s = store.submission(FORM, root)
        subs[root] = {
            k: s[k]
            for k in (
                "current_instance_id",
                "review_state",
                "submitter_id",
                "central_updated_at",
                "edits",
                "deleted_at",
            )
        }
    return {"tables": tables(store), "submissions": subs}


def fresh_full_sync(standin, open_store):
    """A new database, filled by one full sync: what an incremental history must equal."""
    fresh = open_store()
    client = Central(_settings(standin, page_size=50))
    try:
        sync(client, fresh, [FORM], full=True)
    finally:
        client.close()
    return fresh


# ---------------------------------------------------------------- the stand-in


def _recorded_exchange(central_dir, number: str) -> dict:
    """The recorded exchange whose file name starts with `number`."""
    [path] = (central_dir / "exchanges").glob(f"{number}-*.json")
    return json.loads(path.read_text(encoding="utf-8"))


def _standin_token(standin) -> str:
    """A session token from the stand-in, signed in as the tests' Central web user."""
    login = {"email": "admin@example.com", "password": "pw-not-real"}
    return requests.post(f"{standin.base_url}/v1/sessions", json=login).json()["token"]


def test_standin_answers_like_the_recorded_central(standin, central_dir):
    """Paging, key order, nextLink, errors and 401.2 as recorded from Central v2026.2.2."""

    def recorded(name):
        return json.loads((central_dir / "exchanges" / name).read_text(encoding="utf-8"))

    login = {"email": "admin@example.com", "password": "pw-not-real"}
    session = requests.post(f"{standin.base_url}/v1/sessions", json=login)
    assert list(session.json()) == list(recorded("001-session-create.json")["response_body"])
    auth = {"Authorization": f"Bearer {session.json()['token']}"}

    def get(path):
        return requests.get(standin.base_url + path, headers=auth)

    previous_link = None
    for name in FINAL_PAGES:
        exchange = recorded(name)
        path = exchange["path"].replace(RECORDED_ORIGIN, "")
        if "skiptoken" in path:  # recorded paths are shortened with …: follow our own link
            path = previous_link.replace(standin.base_url, "")
        answer = get(path)
        body = answer.json()
        want = exchange["response_body"]
        assert answer.status_code == 200
        assert answer.headers["OData-Version"] == "4.0"
        assert answer.headers["Content-Type"].startswith("application/json; charset=utf-8")
        assert list(body) == list(want)  # value, @odata.context, [@odata.nextLink], @odata.count
        assert body["value"] == want["value"]  # every row, key order included (newest first)
        assert [list(r) for r in body["value"]] == [list(r) for r in want["value"]]
        assert body["@odata.count"] == want["@odata.count"]
        if "@odata.nextLink" in want:
            ours = body["@odata.nextLink"].replace(standin.base_url, RECORDED_ORIGIN)
            assert ours == want["@odata.nextLink"]
        previous_link = body.get("@odata.nextLink")

    service = get("/v1/projects/1/forms/rec_visit.svc").json()
    want = recorded("127-odata-service-document.json")["response_body"]
    assert service["value"] == want["value"]
    assert (
        service["@odata.context"].replace(standin.base_url, RECORDED_ORIGIN)
        == want["@odata.context"]
    )

    for name in (
        "301-err-odata-filter-data-field.json",
        "299-err-odata-filter-syntax.json",
        "308-err-odata-skiptoken-bad.json",
    ):
        exchange = recorded(name)
        answer = get(exchange["path"])
        assert answer.status_code == exchange["status"]
        assert answer.json()["code"] == exchange["response_body"]["code"]
    assert (
        get(recorded("301-err-odata-filter-data-field.json")["path"]).json()
        == recorded("301-err-odata-filter-data-field.json")["response_body"]
    )
    assert (
        get(recorded("308-err-odata-skiptoken-bad.json")["path"]).json()
        == recorded("308-err-odata-skiptoken-bad.json")["response_body"]
    )

    # Deleted rows only for a filter that mentions deletedAt (fact 22, [248]).
    standin.delete(FORM, V06)
    assert (
        get("/v1/projects/1/forms/rec_visit.svc/Submissions?%24top=0&%24count=true").json()[
            "@odata.count"
        ]
        == 29
    )
    deleted = get(recorded("248-odata-deleted-filter.json")["path"]).json()["value"]
    assert [r["__id"] for r in deleted] == [V06]
    assert list(deleted[0]) == list(
        recorded("248-odata-deleted-filter.json")["response_body"]["value"][0]
    )

    requests.delete(f"{standin.base_url}/v1/sessions/current", headers=auth)
    revoked = get("/v1/projects/1/forms/rec_visit/submissions")
    assert revoked.status_code == 401
    assert revoked.json() == recorded("274-err-revoked-token.json")["response_body"]


# --------------------------------------------------------------------- syncing


def test_full_sync_equals_the_recorded_final_data(
    standin, central, store, open_store, central_dir, recorded_rows
):
    [result] = sync(central, store)  # every published form: rec_visit
    assert (result.form_id, result.new, result.problems) == (FORM, 30, [])
    assert result.attachments == sum(1 for r in recorded_rows if r.get("photo"))

    reference = open_store()
    reference.register_form((central_dir / "forms" / "rec_visit.xml").read_bytes())
    reference.ingest_many([Incoming(r, CENTRAL, FORM) for r in recorded_rows])
    assert tables(store) == tables(reference)
    photos = _photos(central_dir, recorded_rows)
    root, files = next(iter(photos.items()))
    [(name, (content, _))] = files.items()
    assert store.attachment(FORM, root, name) == content

    again = sync(central, store)[0]  # nothing changed: nothing new, nothing downloaded again
    assert (again.new, again.changed, again.deleted, again.attachments) == (0, 0, 0, 0)


def test_edits_reviews_deletions_and_restores_are_mirrored(standin, central, open_store):
    store = open_store()
    sync(central, store, [FORM])

    def rename(row):
        row["visitor_name"] = "Edited visitor"
        row["detainee"] = row["detainee"][:1]

    new_instance = standin.edit(FORM, V18, rename)
    standin.review(FORM, V07, "rejected")
    standin.delete(FORM, V15)
    standin.delete(FORM, V16)
    result = sync(central, store, [FORM])[0]
    assert (result.changed, result.deleted) == (2, 2)
    edited = store.submission(FORM, V18)
    assert (edited["current_instance_id"], edited["edits"]) == (new_instance, 1)
    assert len(store.versions(FORM, V18)) == 2  # history kept
    [row] = [r for r in store.rows("form_rec_visit") if r["__id"] == V18]
    assert row["visitor_name"] == "Edited visitor"
    assert store.submission(FORM, V07)["review_state"] == "rejected"
    ids = {r["__id"] for r in store.rows("form_rec_visit")}
    assert V15 not in ids and V16 not in ids
    assert store.counts()[FORM]["submissions"] == 28

    standin.restore(FORM, V16)  # a restore does not touch updatedAt
    result = sync(central, store, [FORM])[0]
    assert result.restored == 1
    assert V16 in {r["__id"] for r in store.rows("form_rec_visit")}
    assert any(r["__submission_id"] == V16 for r in store.rows("form_rec_visit__detainee")) or (
        not standin.form(FORM).subs[V16].row.get("detainee")
    )

    assert snapshot(store) == snapshot(fresh_full_sync(standin, open_store))
    store.rebuild()  # deleted submissions stay out of a rebuild too
    assert V15 not in {r["__id"] for r in store.rows("form_rec_visit")}


def test_submissions_arriving_during_a_sync_are_neither_lost_nor_doubled(
    standin, central, store, open_store, recorded_rows
):
    late = [
        dict(
            recorded_rows[5],
            __id=f"uuid:late-{i}",
            meta={"instanceID": f"uuid:late-{i}", "instanceName": "late"},
        )
        for i in range(3)
    ]
    arrived = []

    def progress(form_id, done, total):
        if not arrived:  # after the first page is stored, three new submissions come in
            standin.add_rows(FORM, late)
            arrived.append(True)

    first = FormPuller(central, store, FORM, progress).run()
    # Newest-first pages already past them; the count reconciliation of the same run finds them.
    assert first.new == 33
    assert len(standin.requests(".svc/Submissions('uuid%3Alate-")) == 3  # read one by one
    second = sync(central, store, [FORM])[0]  # and the overlap re-reads them without doubling
    assert (second.new, second.changed) == (0, 0)
    assert store.counts()[FORM]["submissions"] == 33
    assert snapshot(store) == snapshot(fresh_full_sync(standin, open_store))


def test_a_sync_killed_mid_pass_resumes_and_converges(standin, store, open_store):
    dying = Central(_settings(standin, retries=2))
    standin.fail(503, count=50, match="skiptoken")  # page 2 onwards never comes
    with pytest.raises(CentralUnavailable, match="answered HTTP 503"):
        sync(dying, store, [FORM])
    dying.close()
    assert store.counts()[FORM]["submissions"] == 7  # page 1 was committed
    state = store.sync_state(next(iter(_scopes(store))))
    assert state["resume_link"] and state["watermark"] is None  # watermark did not move

    standin.faults.clear()
    standin.review(FORM, V07, "approved")  # a change while the sync was down
    client = Central(_settings(standin))
    result = sync(client, store, [FORM])[0]
    client.close()
    assert result.resumed
    assert store.counts()[FORM]["submissions"] == 30
    follow_up = Central(_settings(standin))
    sync(follow_up, store, [FORM])
    follow_up.close()
    assert snapshot(store) == snapshot(fresh_full_sync(standin, open_store))


def _resume_link(store) -> str | None:
    scopes = _scopes(store)
    return store.sync_state(scopes[0])["resume_link"] if len(scopes) == 1 else None


def _scopes(store):
    from sqlalchemy import select

    from store import tables as t

    with store.engine.connect() as conn:
        return list(conn.execute(select(t.sync_state.c.scope)).scalars())


def test_expired_token_logs_in_again(standin, central, store):
    sync(central, store, [FORM])
    logins = standin.logins
    standin.expire_tokens()  # as after Central's 24 h session lifetime
    standin.review(FORM, V07, "hasIssues")
    result = sync(central, store, [FORM])[0]
    assert result.changed == 1
    assert standin.logins == logins + 1
    assert any(status == 401 for _, _, status in standin.log)


def test_5xx_and_timeouts_are_retried_then_fail_clearly(standin, store, runner, tmp_path):
    client = Central(_settings(standin, retries=3, timeout=0.5))
    standin.fail(500, count=2, match="Submissions")
    standin.slow(1.5, count=1, match="/versions")  # longer than the client's timeout
    assert sync(client, store, [FORM])[0].new == 30
    standin.fail(502, count=100)
    with pytest.raises(CentralUnavailable) as failure:
        sync(client, store, [FORM])
    client.close()
    message = str(failure.value)
    assert "answered HTTP 502" in message and "3 attempts" in message
    assert "pw-not-real" not in message

    standin.faults.clear()
    standin.fail(503, count=100)
    env = {
        "NIGRAAN_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "NIGRAAN_CENTRAL_BASE_URL": standin.base_url,
        "NIGRAAN_CENTRAL_USERNAME": "admin@example.com",
        "NIGRAAN_CENTRAL_PASSWORD": "pw-not-real",
        "NIGRAAN_CENTRAL_PROJECT_ID": "1",
        "NIGRAAN_CENTRAL_RETRIES": "2",
        "NIGRAAN_CENTRAL_RETRY_WAIT": "0.01",
    }
    from store.store import Store

    Store.open(env["NIGRAAN_DATABASE_URL"], upgrade=True).close()  # as `nigraan store init`
    from nigraan.cli import main

    outcome = runner.invoke(main, ["sync"], env=env)
    assert outcome.exit_code == 1
    assert "answered HTTP 503" in outcome.output and "pw-not-real" not in outcome.output


def test_encrypted_submissions_are_recorded_raw(standin, central_dir, store):
    exchange = json.loads(
        (central_dir / "exchanges" / "209-enc-odata-submissions.json").read_text("utf-8")
    )
    xml = (central_dir / "forms" / "rec_encrypted.xml").read_bytes()
    standin.add_form(xml)
    standin.add_rows("rec_encrypted", exchange["response_body"]["value"], keep_dates=True)
    client = Central(_settings(standin))
    result = sync(client, store, ["rec_encrypted"])[0]
    client.close()
    encrypted = [r for r in exchange["response_body"]["value"] if r["__system"]["status"]]
    assert result.new == len(exchange["response_body"]["value"])
    assert result.encrypted == len(encrypted) > 0
    stored = store.submission("rec_encrypted", encrypted[0]["__id"])
    assert stored["status"] == "notDecrypted" and stored["normalised"] == "raw_only"


# ------------------------------------------------------------ review outbox


def test_review_outbox_reaches_central_exactly_once(standin, central, store):
    sync(central, store, [FORM])
    store.record_review(FORM, V06, "hasIssues", "Please re-check the injury details.")
    assert store.submission(FORM, V06)["review_state"] == "hasIssues"  # shown locally at once

    down = Central(admin_settings("http://127.0.0.1:9", retries=2, retry_wait=0.01, timeout=1))
    result = push_reviews(down, store)
    down.close()
    assert result.unavailable is not None and result.pending == 1

    # Central applies the comment but the answer is lost (slower than the client's timeout).
    standin.slow(1.2, count=1, match="/comments", method="POST")
    hasty = Central(_settings(standin, timeout=0.5, retries=1))
    lost = push_reviews(hasty, store)
    hasty.close()
    assert lost.pending == 1
    result = push_reviews(central, store)
    assert (result.applied, result.pending) == (1, 0)
    sub = standin.form(FORM).subs[V06]
    assert sub.row["__system"]["reviewState"] == "hasIssues"
    assert [c["body"] for c in sub.comments] == ["Please re-check the injury details."]
    assert push_reviews(central, store).applied == 0  # nothing twice
    [entry] = store.reviews()
    assert entry["done_at"] is not None and entry["attempts"] == 3


def test_a_decision_from_the_page_reaches_central_once_and_a_local_one_stays(
    standin, central, store, central_dir
):
    """store.record_decision (what the submission page calls) decides by where it came from."""
    sync(central, store, [FORM])
    index = json.loads((central_dir / "submissions" / "INDEX.json").read_text())[FORM]
    [entry] = [e for e in index.values() if e["instanceID"] == V06]
    xml = (central_dir / entry["instance_file"]).read_bytes()
    local = "uuid:0b6f3d2e-5a41-4c0e-9d7e-3f1c2b4a5d60"  # received by nigraan's own server
    assert store.ingest(xml.replace(V06.encode(), local.encode())).status == "created"

    store.record_decision(FORM, local, "rejected", "Duplicate of another visit.")
    store.record_decision(FORM, V06, "approved", "Checked with the monitor.")
    assert store.submission(FORM, local)["review_state"] == "rejected"
    assert [p["root_id"] for p in store.pending_reviews()] == [V06]

    assert (push_reviews(central, store).applied, push_reviews(central, store).applied) == (1, 0)
    sub = standin.form(FORM).subs[V06]
    assert sub.row["__system"]["reviewState"] == "approved"
    assert [c["body"] for c in sub.comments] == ["Checked with the monitor."]
    assert local not in standin.form(FORM).subs
    assert [(r["root_id"], r["attempts"]) for r in store.reviews(FORM)] == [(local, 0), (V06, 1)]


def test_review_command_records_and_pushes(standin, runner, tmp_path, central_dir):
    env = {
        "NIGRAAN_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "NIGRAAN_CENTRAL_BASE_URL": standin.base_url,
        "NIGRAAN_CENTRAL_USERNAME": "admin@example.com",
        "NIGRAAN_CENTRAL_PASSWORD": "pw-not-real",
        "NIGRAAN_CENTRAL_PROJECT_ID": "1",
        "NIGRAAN_CENTRAL_RETRY_WAIT": "0.01",
    }
    from store.store import Store

    Store.open(env["NIGRAAN_DATABASE_URL"], upgrade=True).close()  # as `nigraan store init`
    from nigraan.cli import main

    synced = runner.invoke(main, ["sync"], env=env)
    assert synced.exit_code == 0, synced.output
    assert "rec_visit" in synced.output and "30" in synced.output
    reviewed = runner.invoke(
        main, ["review", V07, "--state", "approved", "--comment", "ok"], env=env
    )
    assert reviewed.exit_code == 0, reviewed.output
    assert "Pushed to Central: 1" in reviewed.output
    assert standin.form(FORM).subs[V07].row["__system"]["reviewState"] == "approved"
    unknown = runner.invoke(main, ["review", "uuid:nope", "--state", "approved"], env=env)
    assert unknown.exit_code == 1 and "No submission" in unknown.output

    # A submission nigraan's own server received has no Central to tell.
    from store.store import Store

    local = Store.open(env["NIGRAAN_DATABASE_URL"])
    local.ingest((central_dir / "submissions" / "v-probe.xml").read_bytes())
    local.close()
    probe = "uuid:d8f9eec0-e731-4254-8c33-d85bb5ceb26b"
    kept = runner.invoke(main, ["review", probe, "--state", "approved"], env=env)
    assert kept.exit_code == 0 and "nothing to push" in kept.output
    assert probe not in standin.form(FORM).subs

    # A form Central does not know is reported; the other forms are still synced.
    partly = runner.invoke(main, ["sync", "--form", "no_such_form", "--form", FORM], env=env)
    assert partly.exit_code == 1
    assert "no_such_form: Central refused GET" in partly.output and "404.1" in partly.output
    assert any(line.startswith(FORM + " ") for line in partly.output.splitlines())


def test_a_killed_sync_process_resumes(standin, new_database, open_store, tmp_path):
    """`nigraan sync` killed (SIGKILL) while it waits for page 2; the next run picks it up."""
    import os
    import signal
    import subprocess
    import sys
    import time

    url = new_database()
    env = {
        **os.environ,
        "NIGRAAN_DATABASE_URL": url,
        "NIGRAAN_INSTANCE_DIR": str(tmp_path),
        "NIGRAAN_CENTRAL_BASE_URL": standin.base_url,
        "NIGRAAN_CENTRAL_USERNAME": "admin@example.com",
        "NIGRAAN_CENTRAL_PASSWORD": "pw-not-real",
        "NIGRAAN_CENTRAL_PROJECT_ID": "1",
        "NIGRAAN_CENTRAL_PAGE_SIZE": "5",
        "NIGRAAN_CENTRAL_TIMEOUT": "30",
    }
    standin.slow(8, count=1, match="skiptoken")  # page 2 hangs
    process = subprocess.Popen(
        [sys.executable, "-c", "from nigraan.cli import main; main()", "sync", "--form", FORM],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watcher = open_store(url)
    try:
        for _ in range(200):  # page 1 committed with its next link, page 2 asked for
            # (page 2 is fetched while page 1 is stored, so wait for the link to be saved too)
            if (
                watcher.live_count(FORM) == 5
                and standin.in_flight("skiptoken")
                and _resume_link(watcher)
            ):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the sync never got to page 2")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    assert watcher.live_count(FORM) == 5
    [scope] = _scopes(watcher)
    assert watcher.sync_state(scope)["resume_link"]

    client = Central(_settings(standin))
    result = sync(client, watcher, [FORM])[0]
    client.close()
    assert result.resumed and result.new == 25
    assert snapshot(watcher) == snapshot(fresh_full_sync(standin, open_store))


def test_wrong_credentials_are_a_clear_error(standin, runner, tmp_path):
    from nigraan.cli import main

    env = {
        "NIGRAAN_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "NIGRAAN_CENTRAL_BASE_URL": standin.base_url,
        "NIGRAAN_CENTRAL_USERNAME": "admin@example.com",
        "NIGRAAN_CENTRAL_PASSWORD": "not-the-password",
        "NIGRAAN_CENTRAL_PROJECT_ID": "1",
    }
    from store.store import Store

    Store.open(env["NIGRAAN_DATABASE_URL"], upgrade=True).close()  # as `nigraan store init`
    outcome = runner.invoke(main, ["sync"], env=env)
    assert outcome.exit_code == 1
    assert "refused the login" in outcome.output and "401.2" in outcome.output
    assert "not-the-password" not in outcome.output


def test_standin_rest_answers_have_the_recorded_shapes(standin, central_dir):
    """Forms, drafts, publish, submissions, attachments, reviews, comments, restores."""

    recorded = functools.partial(_recorded_exchange, central_dir)
    token = _standin_token(standin)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"

    def call(number, body=None, **kwargs):
        exchange = recorded(number)
        answer = http.request(
            exchange["method"], standin.base_url + exchange["path"], data=body, **kwargs
        )
        assert answer.status_code == exchange["status"], (number, answer.text)
        if exchange["response_body_kind"] == "json":
            assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
        return exchange, answer

    # A second project's form, created as a draft from the recorded XForm and published.
    saved = standin.forms.pop((1, "rec_visit"))
    xml = (central_dir / "forms" / "rec_visit.xml").read_bytes()
    exchange, answer = call("010", xml, headers={"Content-Type": "application/xml"})
    want = exchange["response_body"]
    assert list(answer.json()) == list(want)
    assert {
        k: answer.json()[k]
        for k in ("xmlFormId", "version", "hash", "sha", "sha256", "publishedAt")
    } == {k: want[k] for k in ("xmlFormId", "version", "hash", "sha", "sha256", "publishedAt")}
    exchange, answer = call("024", xml, headers={"Content-Type": "application/xml"})
    assert answer.json() == exchange["response_body"]
    http.post(
        f"{standin.base_url}/v1/projects/1/forms/rec_visit/draft/attachments/logo.png",
        data=(central_dir / "forms" / "logo.png").read_bytes(),
    )
    exchange, answer = call("015")
    assert answer.json() == exchange["response_body"]
    http.post(
        f"{standin.base_url}/v1/projects/1/forms/rec_visit/draft",
        data=xml,
        headers={"Content-Type": "application/xml"},
    )
    exchange, answer = call("026")
    assert answer.json() == exchange["response_body"]
    standin.forms[(1, "rec_visit")] = saved  # the fixture's data set again

    exchange, answer = call("163")
    listing, want = answer.json(), exchange["response_body"]
    assert [list(item) for item in listing[:1]] == [list(want[0])]
    assert list(listing[0]["currentVersion"]) == list(want[0]["currentVersion"])
    ours = [i["instanceId"] for i in listing]
    theirs = [i["instanceId"] for i in want if i["instanceId"] in ours]
    assert [i for i in ours if i in theirs] == theirs  # newest first, as Central
    exchange, answer = call("168")
    assert list(answer.json()) == list(exchange["response_body"])
    exchange, answer = call("181")
    assert answer.json() == exchange["response_body"]
    exchange, answer = call("182")
    assert answer.headers["ETag"] == f'"{hashlib.md5(answer.content).hexdigest()}"'
    for header in ("Content-Disposition", "Content-Type"):
        assert answer.headers[header] == exchange["response_headers"][header]
    exchange, answer = call(
        "186",
        orjson.dumps(exchange_json := recorded("186")["request_json"]),
        headers={"Content-Type": "application/json"},
    )
    assert list(answer.json()) == list(exchange["response_body"])
    assert answer.json()["reviewState"] == exchange_json["reviewState"]
    exchange, answer = call(
        "192",
        orjson.dumps(recorded("192")["request_json"]),
        headers={"Content-Type": "application/json"},
    )
    assert answer.json() == exchange["response_body"]
    exchange, answer = call(
        "193",
        orjson.dumps(recorded("193")["request_json"]),
        headers={"Content-Type": "application/json"},
    )
    assert list(answer.json()) == list(exchange["response_body"])
    http.post(standin.base_url + recorded("193")["path"], json={"body": "second"})
    exchange, answer = call("195")
    assert [c["body"] for c in answer.json()] == ["second", "Please re-check the injury details."]
    assert [list(c) for c in answer.json()] == [list(c) for c in exchange["response_body"]]
    exchange, answer = call("256")
    assert answer.json() == exchange["response_body"]
    exchange, answer = call("246")  # v12, deleted before the final pages: unknown here
    assert answer.json() == exchange["response_body"]
    standin.delete(FORM, V06)
    gone = http.get(f"{standin.base_url}/v1/projects/1/forms/rec_visit.svc/Submissions('{V06}')")
    assert (gone.status_code, gone.json()) == (404, exchange["response_body"])
    restored = http.post(
        f"{standin.base_url}/v1/projects/1/forms/rec_visit/submissions/{V06}/restore"
    )
    assert restored.json() == recorded("253")["response_body"]


def test_standin_odata_edges_match_the_recordings(standin, central_dir):
    """Repeat tables, $skip, $select, errors for $expand, $top, $format; $search ignored."""

    recorded = functools.partial(_recorded_exchange, central_dir)
    token = _standin_token(standin)

    def get(path):
        return requests.get(standin.base_url + path, headers={"Authorization": f"Bearer {token}"})

    for number in ("260", "261"):  # the final repeat tables, recorded right after 257-259
        exchange = recorded(number)
        body = get(exchange["path"]).json()
        assert body["value"] == exchange["response_body"]["value"]
        assert [list(r) for r in body["value"]] == [
            list(r) for r in exchange["response_body"]["value"]
        ]
    for number in ("305", "307", "310"):
        exchange = recorded(number)
        answer = get(exchange["path"])
        assert (answer.status_code, answer.json()) == (
            exchange["status"],
            exchange["response_body"],
        )
    assert len(get(recorded("311")["path"]).json()["value"]) == 30
    by_id = get("/v1/projects/1/forms/rec_visit.svc/Submissions?%24filter=__id%20eq%20%27x%27")
    assert (by_id.status_code, by_id.json()["code"]) == (501, 501.5)  # not filterable

    exchange = recorded("319")  # $skip dropped from the nextLink, $skiptoken added last
    body = get(exchange["path"]).json()
    assert list(body) == list(exchange["response_body"])
    ours, theirs = body["@odata.nextLink"], exchange["response_body"]["@odata.nextLink"]
    assert (
        ours.split("skiptoken=")[0].replace(standin.base_url, RECORDED_ORIGIN)
        == (theirs.split("skiptoken=")[0])
    )
    exchange = recorded("320")  # $skip without $top: a nextLink all the same ...
    body = get(exchange["path"]).json()
    assert list(body) == list(exchange["response_body"]) and len(body["value"]) == 5
    following = get(body["@odata.nextLink"].replace(standin.base_url, "")).json()
    assert following == {"value": [], "@odata.context": body["@odata.context"]}  # ... to nothing


@pytest.mark.parametrize("single_rows_max", [200, 1])
def test_rows_committed_later_than_the_overlap_are_found(
    standin, central, store, recorded_rows, monkeypatch, single_rows_max
):
    """A row whose submissionDate is older than watermark - overlap (getodk/central#1074)."""
    monkeypatch.setattr("sync.pull.SINGLE_ROWS_MAX", single_rows_max)
    sync(central, store, [FORM])
    late = []
    for i in range(2):
        row = copy.deepcopy(recorded_rows[3])
        row["__id"] = row["meta"]["instanceID"] = f"uuid:committed-late-{i}"
        row["__system"]["submissionDate"] = "2026-01-01T00:00:00.000Z"  # long before
        late.append(row)
    standin.add_rows(FORM, late, keep_dates=True)
    result = sync(central, store, [FORM])[0]
    assert result.new == 2
    assert {"uuid:committed-late-0", "uuid:committed-late-1"} <= store.root_ids(FORM)
    singles = standin.requests(".svc/Submissions('uuid%3Acommitted-late")
    assert len(singles) == (2 if single_rows_max > 2 else 0)


def test_next_links_are_followed_on_the_configured_origin(standin, central, store):
    """Central writes nextLinks with its DOMAIN; nigraan keeps to central.base_url."""
    standin.domain = "http://127.0.0.2:9"  # not where nigraan reaches Central (refused)
    assert sync(central, store, [FORM])[0].new == 30
    assert len(standin.requests("skiptoken")) == 4  # pages of 7: 30 rows in 5 pages


GROUPREPEAT = "rec_grouprepeat"


@pytest.fixture
def grouprepeat_standin(central_dir):
    """A stand-in holding the recorded rec_grouprepeat submission (repeats inside groups)."""
    server = CentralStandin().serve()
    server.add_form((central_dir / "forms" / "rec_grouprepeat.xml").read_bytes())
    rows = odata_rows(central_dir, "345-odata-grouprepeat-expand-all.json")
    server.add_rows(GROUPREPEAT, rows, keep_dates=True)
    yield server
    server.stop()


def test_standin_repeats_inside_groups_match_the_recordings(grouprepeat_standin, central_dir):
    """Table names, parent keys and navigation links through groups [345-347, fact 42]."""
    standin = grouprepeat_standin

    recorded = functools.partial(_recorded_exchange, central_dir)
    token = _standin_token(standin)

    def get(path):
        answer = requests.get(standin.base_url + path, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        return answer.json()

    for number in ("345", "346", "347"):
        exchange = recorded(number)
        body = get(exchange["path"])
        want = exchange["response_body"]["value"]
        assert body["value"] == want
        assert [list(r) for r in body["value"]] == [list(r) for r in want]
        assert body["@odata.context"].endswith(
            exchange["response_body"]["@odata.context"].split("/$metadata")[1]
        )
    service = get("/v1/projects/1/forms/rec_grouprepeat.svc")["value"]
    assert [s["name"] for s in service] == [
        "Submissions",
        "Submissions.people.person",
        "Submissions.people.person.details.visits",
    ]

    [row] = get("/v1/projects/1/forms/rec_grouprepeat.svc/Submissions")["value"]
    [expanded] = recorded("345")["response_body"]["value"]
    assert row["people"] == {
        "person@odata.navigationLink": expanded["people"]["person@odata.navigationLink"]
    }
    link = expanded["people"]["person"][0]["details"]["visits@odata.navigationLink"]
    visits = get(f"/v1/projects/1/forms/rec_grouprepeat.svc/{link}")["value"]
    assert visits == recorded("347")["response_body"]["value"][:2]  # the first person's visits


def test_repeat_rows_inside_groups_sync_with_centrals_ids(grouprepeat_standin, store, central_dir):
    """The typed repeat rows carry the __id Central gives them, so they join with its exports."""
    client = Central(_settings(grouprepeat_standin))
    try:
        [result] = sync(client, store, [GROUPREPEAT])
    finally:
        client.close()
    assert (result.new, result.problems) == (1, [])
    person = store.form_table(GROUPREPEAT, "people/person")
    visits = store.form_table(GROUPREPEAT, "people/person/details/visits")
    recorded_person = odata_rows(central_dir, "346-odata-grouprepeat-person.json")
    recorded_visits = odata_rows(central_dir, "347-odata-grouprepeat-visits.json")
    assert {(r["__id"], r["__parent_id"], r["pname"]) for r in store.rows(person.name)} == {
        (r["__id"], r["__Submissions-id"], r["pname"]) for r in recorded_person
    }
    assert {(r["__id"], r["__parent_id"]) for r in store.rows(visits.name)} == {
        (r["__id"], r["__Submissions-people-person-id"]) for r in recorded_visits
    }


# ------------------------------------------------------------------ edit history

V05 = "uuid:d4211011-26dc-4d6b-8a33-323d31658545"
V11 = "uuid:07d5c861-efd7-42e5-8e45-b69fb5c4406a"


def test_standin_versions_answer_like_the_recorded_central(standin, central_dir):
    """`…/submissions/<root>/versions` and `…/versions/<instanceID>.xml` [174, 176, 177, 201]."""

    recorded = functools.partial(_recorded_exchange, central_dir)
    token = _standin_token(standin)

    def get(path):
        return requests.get(standin.base_url + path, headers={"Authorization": f"Bearer {token}"})

    for number in ("174", "201"):
        exchange = recorded(number)
        body = get(exchange["path"]).json()
        want = exchange["response_body"]
        assert [list(v) for v in body] == [list(v) for v in want]  # newest first, same keys
        assert [(v["instanceId"], v["current"], v["instanceName"]) for v in body] == [
            (v["instanceId"], v["current"], v["instanceName"]) for v in want
        ]
    assert [v["createdAt"] for v in get(recorded("174")["path"]).json()] == [
        v["createdAt"] for v in recorded("174")["response_body"]
    ]
    for number in ("176", "177"):
        exchange = recorded(number)
        answer = get(exchange["path"])
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == exchange["response_headers"]["Content-Type"]
        assert answer.content == exchange["response_body"].encode("utf-8")  # byte for byte
    unknown = get(recorded("176")["path"].replace("d4211011-26dc", "00000000-0000"))
    assert (unknown.status_code, unknown.json()["code"]) == (404, 404.1)


def _history(store, root_id) -> list[tuple[str, str | None, bool]]:
    return [
        (v["instance_id"], v["deprecated_id"], v["current"]) for v in store.versions(FORM, root_id)
    ]


def _central_history(standin, root_id) -> list[tuple[str, str | None, bool]]:
    ids = standin.form(FORM).subs[root_id].xml_versions
    return [(i, ids[n - 1] if n else None, n == len(ids) - 1) for n, i in enumerate(ids)]


def _renamer(name):
    def rename(row):
        row["visitor_name"] = name

    return rename


def test_edits_before_the_first_sync_and_between_syncs_are_all_stored(
    standin, central, store, central_dir
):
    """Every version Central holds, in Central's order, with the current version typed."""
    standin.edit(FORM, V18, _renamer("first edit"))
    standin.edit(FORM, V18, _renamer("second edit"))  # three versions before nigraan looks
    result = sync(central, store, [FORM])[0]
    assert (result.new, result.problems) == (30, [])
    assert result.versions == 4  # V18's first two; V05's and V11's originals (recorded)
    for root in (V18, V05, V11):
        assert _history(store, root) == _central_history(standin, root)
    held = {v.instance_id: v.xml for v in standin.form(FORM).subs[V18].versions}
    for version in store.versions(FORM, V18)[:-1]:  # past versions: Central's XML, verbatim
        assert (version["payload_kind"], bytes(version["payload"])) == (
            "xml",
            held[version["instance_id"]],
        )
    [original, _] = store.versions(FORM, V05)  # the recorded XML Collect sent, as Central kept it
    assert bytes(original["payload"]) == _recorded_versions(central_dir)[V05][0]
    [row] = [r for r in store.rows("form_rec_visit") if r["__id"] == V18]
    assert row["visitor_name"] == "second edit"
    assert store.submission(FORM, V18)["edits"] == 2

    standin.edit(FORM, V16, _renamer("edit one"))  # two edits between syncs
    standin.edit(FORM, V16, _renamer("edit two"))
    again = sync(central, store, [FORM])[0]
    assert (again.changed, again.versions) == (1, 1)
    assert _history(store, V16) == _central_history(standin, V16)
    assert len(store.versions(FORM, V16)) == 3
    [row] = [r for r in store.rows("form_rec_visit") if r["__id"] == V16]
    assert row["visitor_name"] == "edit two"
    before = tables(store)
    store.rebuild(FORM)  # the current versions stay the ones typed
    assert tables(store) == before
    assert sync(central, store, [FORM])[0].versions == 0  # nothing missing: nothing read


def test_a_full_sync_fills_the_holes_earlier_syncs_left(standin, central, store, monkeypatch):
    """A store synced before history was read (edits missing) gets every version, in order,
    from `sync --full`; the current version and its typed rows stay as they were."""
    with monkeypatch.context() as m:
        m.setattr(FormPuller, "history", lambda self, rows: None)  # what nigraan used to do
        standin.edit(FORM, V18, _renamer("first edit"))
        sync(central, store, [FORM])
        standin.edit(FORM, V18, _renamer("second edit"))
        sync(central, store, [FORM])
    assert len(store.versions(FORM, V18)) == 2  # the original is missing
    current = store.versions(FORM, V18)[-1]
    before = tables(store)
    result = sync(central, store, [FORM], full=True)[0]
    assert result.versions == 3  # V18's original; V05's and V11's
    assert _history(store, V18) == _central_history(standin, V18)
    after = store.versions(FORM, V18)[-1]
    assert {k: v for k, v in after.items() if k != "id"} == {
        k: v for k, v in current.items() if k != "id"
    }  # the same current version, written again after the one that came before it
    assert tables(store) == before


def test_standin_writes_a_rows_xml_as_collect_sent_it(standin, central_dir, recorded_rows):
    """The XML the stand-in writes for versions it holds only as rows types like the XML
    Collect posted (recorded): what nigraan stores from it is the version's data."""
    from store.document import from_openrosa_xml
    from store.layout import plan_layout
    from store.rows import RowPlan, document_rows
    from store.schema import parse_xform
    from tests.central_standin import _row_xml

    schema = parse_xform((central_dir / "forms" / "rec_visit.xml").read_bytes())
    plan = RowPlan(schema, plan_layout(schema, None, set()).layout)
    index = json.loads((central_dir / "submissions" / "INDEX.json").read_text())[FORM]
    compared = 0
    for entry in index.values():
        row = next((r for r in recorded_rows if r["__id"] == entry["instanceID"]), None)
        if row is None or row["__system"]["edits"]:
            continue
        posted = (central_dir / entry["instance_file"]).read_bytes()
        written = _row_xml(standin.form(FORM), row, None)
        a = document_rows(from_openrosa_xml(posted, schema.repeat_paths), plan, row["__id"])
        b = document_rows(from_openrosa_xml(written, schema.repeat_paths), plan, row["__id"])
        assert (b.tables, b.problems) == (a.tables, a.problems), entry["instance_file"]
        compared += 1
    assert compared >= 25


# ---------------------------------------------------------------- retries (urllib3's Retry)

SUBMISSIONS = "projects/{project_id}/forms/rec_visit.svc/Submissions"


@pytest.mark.parametrize("status", [503, 429])
def test_a_retry_after_is_waited_before_the_retry(standin, status):
    """Central (or its proxy) says when to come back: the retry waits that long, not the
    configured 0.01 s."""
    client = Central(_settings(standin, retries=3))
    standin.fail(status, count=1, match="Submissions", retry_after="1")
    started = time.monotonic()
    client.get_json(client.path(SUBMISSIONS))
    waited = time.monotonic() - started
    client.close()
    assert [s for _, _, s in standin.requests("Submissions")] == [status, 200]
    assert 1.0 <= waited < 10


def test_a_long_retry_after_is_waited_only_up_to_the_cap(standin, monkeypatch):
    import sync.central

    monkeypatch.setattr(sync.central, "MAX_RETRY_AFTER", 0.5)
    client = Central(_settings(standin, retries=2))
    standin.fail(503, count=1, match="Submissions", retry_after="3600")
    started = time.monotonic()
    client.get_json(client.path(SUBMISSIONS))
    waited = time.monotonic() - started
    client.close()
    assert 0.5 <= waited < 5 and [s for _, _, s in standin.requests("Submissions")] == [503, 200]


def test_an_unreadable_retry_after_falls_back_to_the_backoff(standin):
    client = Central(_settings(standin, retries=2))
    standin.fail(503, count=1, match="Submissions", retry_after="after lunch")
    client.get_json(client.path(SUBMISSIONS))
    client.close()
    assert [s for _, _, s in standin.requests("Submissions")] == [503, 200]


def test_the_backoff_doubles_from_the_configured_wait(standin):
    client = Central(_settings(standin, retries=3, retry_wait=0.4))
    standin.fail(502, count=2, match="Submissions")
    started = time.monotonic()
    client.get_json(client.path(SUBMISSIONS))
    waited = time.monotonic() - started
    client.close()
    assert [s for _, _, s in standin.requests("Submissions")] == [502, 502, 200]
    assert 1.2 <= waited < 10  # 0.4 s, then 0.8 s


def test_a_central_that_stays_down_gives_the_same_clear_error(standin):
    client = Central(_settings(standin, retries=2))
    standin.fail(503, count=10, match="Submissions", retry_after="0")
    with pytest.raises(CentralUnavailable) as down:
        client.get(client.path(SUBMISSIONS))
    assert str(down.value).startswith(
        f"ODK Central at {standin.base_url} answered HTTP 503 for GET "
        "/v1/projects/1/forms/rec_visit.svc/Submissions (2 attempts)."
    )
    assert len(standin.requests("Submissions")) == 2

    standin.faults.clear()
    standin.slow(1.0, count=2, match="Submissions")
    slow = Central(_settings(standin, retries=2, timeout=0.3))
    with pytest.raises(CentralUnavailable, match=r"timed out for GET .*Submissions \(2 attempts\)"):
        slow.get(slow.path(SUBMISSIONS))
    slow.close()

    nobody = Central(admin_settings("http://127.0.0.1:9", retries=2, retry_wait=0.01, timeout=1))
    with pytest.raises(CentralUnavailable, match=r"not reachable for POST /v1/sessions \(2 att"):
        nobody.get(nobody.path(SUBMISSIONS))
    nobody.close()
    client.close()


def test_a_401_logs_in_again_once_and_retries_the_request(standin, central):
    central.get_json(central.path(SUBMISSIONS))
    logins = standin.logins
    standin.expire_tokens()
    central.get_json(central.path(SUBMISSIONS))
    assert standin.logins == logins + 1
    assert [s for _, _, s in standin.requests("Submissions")] == [200, 401, 200]


def test_a_refusal_that_is_not_centrals_json_is_not_a_central_error():
    from pyodk.errors import PyODKError

    from sync.central import is_central_error

    html = requests.Response()
    html.status_code, html._content = 413, b"<html>Request Entity Too Large</html>"
    problem = requests.Response()
    problem.status_code, problem._content = 409, b'{"code": 409.6, "message": "exists"}'
    assert not is_central_error(PyODKError("refused", html), 409.6)
    assert is_central_error(PyODKError("refused", problem), 409.6)
    assert not is_central_error(PyODKError("refused", problem), 409.3)
