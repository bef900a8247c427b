"""Retention and erasure of survivors' identities (store/erasure.py): what goes, what stays, and
that an erased identity cannot come back (rebuild, import, sync, a device resending it)."""

from __future__ import annotations

import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree
from sqlalchemy import func, select

from nigraan.cli.retention import retention, survivors
from nigraan.data_key import DataKey, create_data_key_file
from reports.indicators import compute, load_definitions, parse_period, support_unit_districts
from store import tables as t
from store.encrypted_submissions import file_identity, import_identities
from store.erasure import UnknownSurvivor, due, erase_identity, run_retention
from store.identity_register import IdentityErased, IdentityRegister
from store.indicator_queries import indicator_rows
from store.odk_decrypt import decrypt_submission
from store.store import Store
from tests.odk_encrypt import encrypt_submission
from tests.test_encrypted_submissions import identity_xml
from tests.test_identity_register import _database_bytes
from tests.test_report_indicators import instance_xml, registration, service

TODAY = date(2027, 9, 1)
DAYS = 365
PHOTO = b"\xff\xd8 a photo of the survivor's document " + bytes(range(256)) * 8
FORMS = ("survivor_registration", "service_contact", "case_closure", "identity_register")


class Programme:
    """A store with the survivor forms registered, a data key and the forms' private key."""

    def __init__(self, store: Store, build_dir: Path, public, private, config):
        self.store, self.build_dir = store, build_dir
        self.public, self.private, self.config = public, private, config
        self.key = DataKey.generate()
        self.register = IdentityRegister(store.engine, self.key)
        self.envelopes: dict[str, list[tuple[str, bytes, dict[str, bytes]]]] = {}
        for form_id in FORMS:
            store.register_form((build_dir / f"{form_id}.xml").read_bytes())
        self.version = (
            etree.parse(str(build_dir / "identity_register.xml"))
            .find(".//{http://www.w3.org/2002/xforms}instance/*")
            .get("version")
        )

    def send(self, form_id: str, answers: dict) -> str:
        result = self.store.ingest(instance_xml(self.build_dir / f"{form_id}.xml", answers))
        assert result.status == "created", result
        return result.root_id

    def survivor(self, code: str, closed_on: date | None, ssu: str = "ssu_lahore") -> str:
        """Registration, a service, her closure (if any), and her encrypted identity, filed."""
        start = (closed_on or TODAY) - timedelta(days=40)
        self.send(*registration(code, ssu, str(start), "jail"))
        self.send(*service(code, ssu, str(start + timedelta(days=1)), "legal_aid"))
        if closed_on is not None:
            self.send(
                "case_closure",
                {"survivor_code": code, "caseworker_code": "CW-01", "closure_date": str(closed_on)},
            )
        return self.identity(code)

    def identity(self, code: str) -> str:
        instance_id = f"uuid:{uuid.uuid4()}"
        xml = identity_xml(self.version, instance_id, code)
        envelope, files = encrypt_submission(self.public, xml, {"document.jpg": PHOTO})
        assert self.store.ingest(envelope).status == "created"
        for name, content in files.items():
            assert self.store.add_attachment("identity_register", instance_id, name, content)
        self.envelopes.setdefault(code, []).append((instance_id, envelope, files))
        return instance_id

    def file_all(self) -> dict[str, int]:
        return import_identities(self.store, self.register, self.private)

    def filed(self, code: str) -> bool:
        return self.register.find(self.key.code_hmac(code)) is not None

    def secrets_of(self, code: str) -> list[bytes]:
        """What must not be left anywhere: the wrapped key (base64, as sent), the envelope, the
        .enc bytes."""
        out = []
        for _, envelope, files in self.envelopes[code]:
            wrapped = etree.fromstring(envelope).findtext(
                "{http://opendatakit.org/submissions}base64EncryptedKey"
            )
            out += [wrapped.encode(), envelope, *files.values()]
        return out

    def indicators(self) -> dict:
        report = compute(
            indicator_rows(self.store),
            load_definitions(),
            period=parse_period(None),
            ssu_district=support_unit_districts(self.config["forms.reference_dir"]),
            attendance_threshold=0.8,
            pass_mark=7,
        )
        return {
            r.indicator.id: (
                r.value,
                r.numerator,
                r.denominator,
                {name: dict(series.items()) for name, series in r.breakdowns.items()},
            )
            for r in report.results
        }

    def pseudonymous_rows(self) -> dict:
        return {f: self.store.rows(f"form_{f}") for f in FORMS[:3]}


@pytest.fixture(scope="module")
def identity_keys(built_programme_forms):
    from cryptography.hazmat.primitives import serialization

    from nigraan.keys import load_private_key, private_key_path_for

    config, _ = built_programme_forms
    public_path = Path(config["forms.public_key_file"])
    public = serialization.load_pem_public_key(public_path.read_bytes())
    return public, load_private_key(private_key_path_for(public_path), None)


@pytest.fixture
def programme(store, built_programme_forms, identity_keys):
    config, _ = built_programme_forms
    return Programme(store, Path(config["forms.build_dir"]), *identity_keys, config)


def _found_anywhere(store, needles: list[bytes]) -> list[str]:
    hits = []
    for where, blob in _database_bytes(store).items():
        for n, needle in enumerate(needles):
            if needle in blob:
                hits.append(f"secret {n} in {where}")
    return hits


# ------------------------------------------------------------------ who is due, and when


def test_a_dry_run_lists_without_erasing(programme):
    programme.survivor("LHR-0101", TODAY - timedelta(days=DAYS + 30))
    programme.survivor("LHR-0102", TODAY - timedelta(days=10))
    assert programme.file_all() == {"created": 2}
    run = run_retention(programme.store, programme.key, DAYS, dry_run=True, today=TODAY)
    assert [(e.code, e.erased, len(e.instance_ids)) for e in run.erasures] == [
        ("LHR-0101", False, 1)
    ]
    assert programme.filed("LHR-0101") and programme.filed("LHR-0102")
    assert programme.store.attachments("identity_register", programme.envelopes["LHR-0101"][0][0])
    with programme.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.erasures)).scalar() == 0


def test_only_cases_closed_more_than_the_retention_ago_are_erased(programme):
    programme.survivor("LHR-0201", TODAY - timedelta(days=DAYS))  # exactly N days: kept
    programme.survivor("LHR-0202", TODAY - timedelta(days=DAYS + 1))  # one more: erased
    programme.survivor("LHR-0203", None)  # still open
    programme.file_all()
    run = run_retention(programme.store, programme.key, DAYS, today=TODAY)
    assert [(e.code, e.closed_on, e.erased) for e in run.erasures] == [
        ("LHR-0202", TODAY - timedelta(days=DAYS + 1), True)
    ]
    assert not programme.filed("LHR-0202")
    assert programme.filed("LHR-0201") and programme.filed("LHR-0203")
    # the next day the boundary case goes too; a re-run erases nothing twice
    later = run_retention(programme.store, programme.key, DAYS, today=TODAY + timedelta(days=1))
    assert [e.code for e in later.erasures] == ["LHR-0201"]
    again = run_retention(programme.store, programme.key, DAYS, today=TODAY + timedelta(days=1))
    assert again.erasures == []
    # 0 days: kept until erased by hand
    assert run_retention(programme.store, programme.key, 0, today=TODAY).erasures == []


# ------------------------------------------------------------------ what goes, what stays


def test_erasure_removes_the_envelope_and_enc_bytes_from_the_database(programme):
    programme.survivor("LHR-0301", TODAY - timedelta(days=DAYS + 5))
    programme.survivor("LHR-0302", TODAY - timedelta(days=5))
    programme.file_all()
    gone = programme.secrets_of("LHR-0301")
    kept = programme.secrets_of("LHR-0302")
    assert {h.split(" in ")[0] for h in _found_anywhere(programme.store, gone)} == {
        f"secret {n}" for n in range(len(gone))
    }  # the grep sees every one of them before
    if programme.store.engine.dialect.name == "sqlite":
        # as in a store that has run a while: the envelope is in the database file, not only
        # in the WAL, so deleting the rows alone would leave its bytes in free pages
        with programme.store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    run_retention(programme.store, programme.key, DAYS, today=TODAY)
    assert _found_anywhere(programme.store, gone) == []
    assert len({h.split(" in ")[0] for h in _found_anywhere(programme.store, kept)}) == len(kept)
    instance_id = programme.envelopes["LHR-0301"][0][0]
    store = programme.store
    assert store.attachments("identity_register", instance_id) == []
    assert store.versions("identity_register", instance_id) == []
    assert store.submission("identity_register", instance_id)["normalised"] == "erased"
    assert store.missing_attachments("identity_register") == {}  # a sync fetches nothing


def test_pseudonymous_records_and_indicators_stay_the_same(programme):
    programme.survivor("LHR-0401", TODAY - timedelta(days=DAYS + 5))
    programme.survivor("RWP-0402", TODAY - timedelta(days=DAYS + 9), ssu="ssu_rawalpindi")
    programme.survivor("LHR-0403", TODAY - timedelta(days=3))
    programme.file_all()
    rows, indicators = programme.pseudonymous_rows(), programme.indicators()
    assert indicators["women_reached"][0] == 3
    run = run_retention(programme.store, programme.key, DAYS, today=TODAY)
    assert sorted(e.code for e in run.erasures) == ["LHR-0401", "RWP-0402"]
    assert programme.pseudonymous_rows() == rows
    assert programme.indicators() == indicators
    programme.store.rebuild()
    assert programme.pseudonymous_rows() == rows and programme.indicators() == indicators


# ------------------------------------------------------------------ it stays erased


def test_rebuild_and_import_again_do_not_bring_it_back(programme):
    programme.survivor("LHR-0501", TODAY - timedelta(days=DAYS + 5))
    programme.file_all()
    run_retention(programme.store, programme.key, DAYS, today=TODAY)
    programme.store.rebuild()
    assert not programme.filed("LHR-0501")
    assert programme.file_all() == {}  # nothing left to decrypt, and no flag for it
    assert not programme.filed("LHR-0501")
    # her envelope decrypted from elsewhere (Central) is not filed again
    _, envelope, files = programme.envelopes["LHR-0501"][0]
    decrypted = decrypt_submission(envelope, files, programme.private)
    assert file_identity(programme.register, decrypted) == "erased"
    with pytest.raises(IdentityErased):
        programme.register.put("LHR-0501", {"person/full_name": "x"})
    assert not programme.filed("LHR-0501")


def test_a_resend_or_a_resync_of_the_erased_envelope_stores_nothing(programme):
    instance_id = programme.survivor("LHR-0601", TODAY - timedelta(days=DAYS + 5))
    programme.file_all()
    run_retention(programme.store, programme.key, DAYS, today=TODAY)
    _, envelope, files = programme.envelopes["LHR-0601"][0]
    store = programme.store
    attachments = {name: (content, "application/octet-stream") for name, content in files.items()}
    again = store.ingest(envelope, attachments=attachments)
    assert again.status == "duplicate" and "erased" in again.message
    assert not store.add_attachment("identity_register", instance_id, "document.jpg.enc", PHOTO)
    assert store.versions("identity_register", instance_id) == []
    assert _found_anywhere(store, programme.secrets_of("LHR-0601")) == []
    assert programme.file_all() == {} and not programme.filed("LHR-0601")


def test_an_envelope_of_an_erased_survivor_found_later_is_erased_too(programme):
    programme.survivor("LHR-0701", TODAY - timedelta(days=DAYS + 5))
    programme.file_all()
    late = programme.identity("LHR-0701")  # arrived but not yet imported, say
    first = programme.envelopes["LHR-0701"][0][0]
    # erased on request before the late one was imported
    erasure = erase_identity(
        programme.store, programme.key, "LHR-0701", reason="her request", actor="supervisor-1"
    )
    assert erasure.instance_ids == (first,)
    assert programme.file_all() == {"erased": 1}
    assert not programme.filed("LHR-0701")
    assert programme.store.versions("identity_register", late) == []
    assert _found_anywhere(programme.store, programme.secrets_of("LHR-0701")) == []


# ------------------------------------------------------------------ on request, audited


def test_erase_by_code_with_a_reason_is_audited(programme):
    first = programme.survivor("ISB-0801", None, ssu="ssu_islamabad")
    programme.file_all()
    second = programme.identity("ISB-0801")  # her phone changed: filed again
    programme.file_all()
    erasure = erase_identity(
        programme.store, programme.key, " ISB-0801 ", reason="survivor's request", actor="ayesha"
    )
    assert set(erasure.instance_ids) == {first, second}
    assert not programme.filed("ISB-0801")
    [row] = [r for r in programme.store.audit.entries() if r["action"] == "identity_erased"]
    assert row["actor"] == "ayesha" and "survivor's request" in row["detail"]
    assert first in row["detail"] and second in row["detail"]
    assert "ISB-0801" not in str(row)  # the lookup key, not the code
    assert row["record"] == programme.key.code_hmac("ISB-0801")
    # again: already erased, nothing to do; an unknown code is an error
    assert erase_identity(programme.store, programme.key, "ISB-0801", reason="x", actor="a").already
    with pytest.raises(UnknownSurvivor):
        erase_identity(programme.store, programme.key, "ISB-9999", reason="x", actor="a")
    # the pseudonymous records are still there
    assert any(
        r["survivor_code"] == "ISB-0801" for r in programme.store.rows("form_service_contact")
    )


def test_retention_audit_rows_name_retention(programme):
    programme.survivor("LHR-0901", TODAY - timedelta(days=DAYS + 5))
    programme.file_all()
    run_retention(programme.store, programme.key, DAYS, today=TODAY)
    [row] = [r for r in programme.store.audit.entries() if r["action"] == "identity_erased"]
    assert row["actor"] == "retention" and "retention" in row["detail"]
    assert programme.envelopes["LHR-0901"][0][0] in row["detail"]


def test_a_key_rotation_keeps_erased_identities_erased(programme):
    programme.survivor("LHR-1001", TODAY - timedelta(days=DAYS + 5))
    programme.survivor("LHR-1002", None)
    programme.file_all()
    run_retention(programme.store, programme.key, DAYS, today=TODAY)
    new = DataKey.generate()
    programme.register.rotate(new)
    with pytest.raises(IdentityErased):
        programme.register.put("LHR-1001", {"person/full_name": "x"})
    # the other survivor's envelope is still found under the new key
    erased = erase_identity(programme.store, new, "LHR-1002", reason="request", actor="a")
    assert erased.instance_ids == (programme.envelopes["LHR-1002"][0][0],)


def test_a_later_closure_or_no_register_entry(programme):
    code = "LHR-1101"
    programme.survivor(code, TODAY - timedelta(days=DAYS + 50))
    programme.send(
        "case_closure", {"survivor_code": code, "closure_date": str(TODAY - timedelta(days=2))}
    )
    programme.send(
        "case_closure", {"survivor_code": "LHR-1102", "closure_date": "2020-01-01"}
    )  # closed long ago, but no identity was ever filed
    programme.file_all()
    assert due(programme.store, programme.key, DAYS, TODAY) == []


def test_a_survivor_who_came_back_after_closure_is_kept(programme):
    code = "LHR-1601"
    programme.survivor(code, TODAY - timedelta(days=DAYS + 50))
    programme.file_all()
    assert [e.code for e in due(programme.store, programme.key, DAYS, TODAY)] == [code]
    programme.send(
        *service(code, "ssu_lahore", str(TODAY - timedelta(days=DAYS + 20)), "legal_aid")
    )
    assert due(programme.store, programme.key, DAYS, TODAY) == []
    assert run_retention(programme.store, programme.key, DAYS, today=TODAY).erasures == []
    assert programme.filed(code)


# ------------------------------------------------------------------ the commands


@pytest.fixture
def cli_programme(programme, make_config, new_database, tmp_path):
    key_file = tmp_path / "keys" / "identity.key"
    key = create_data_key_file(key_file)
    programme.key = key
    programme.register = IdentityRegister(programme.store.engine, key)
    url = programme.store.engine.url.render_as_string(hide_password=False)
    config = make_config(database__url=url, identity__key_file=str(key_file))

    def run(group, *args):
        command = {"retention": retention, "survivors": survivors}[group]
        return CliRunner().invoke(command, list(args), obj=config, catch_exceptions=False)

    return programme, run


def test_the_commands(cli_programme):
    programme, run = cli_programme
    closed = date.today() - timedelta(days=DAYS + 3)
    programme.survivor("LHR-1201", closed)
    programme.survivor("LHR-1202", None)
    programme.file_all()
    dry = run("retention", "run", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would erase: LHR-1201" in dry.output and "LHR-1202" not in dry.output
    assert programme.filed("LHR-1201")
    done = run("retention", "run")
    assert done.exit_code == 0 and "erased: LHR-1201" in done.output
    assert not programme.filed("LHR-1201")
    unknown = run("survivors", "erase", "LHR-9999", "--reason", "her request")
    assert unknown.exit_code == 2
    erased = run("survivors", "erase", "LHR-1202", "--reason", "her request")
    assert erased.exit_code == 0 and "erased: LHR-1202" in erased.output
    assert not programme.filed("LHR-1202")
    assert "[]" not in erased.output


# ------------------------------------------------------------------ on a schedule in serve


def test_the_scheduler_erases_on_its_clock(programme):
    from server.retention_schedule import RetentionScheduler

    programme.survivor("LHR-1301", TODAY - timedelta(days=DAYS))
    programme.file_all()
    days = iter([TODAY, TODAY, TODAY + timedelta(days=1)] + [TODAY + timedelta(days=2)] * 1000)
    scheduler = RetentionScheduler(
        programme.store, programme.key, DAYS, 0.01, today=lambda: next(days)
    ).start()
    try:
        for _ in range(500):
            if not programme.filed("LHR-1301"):
                break
            time.sleep(0.02)
    finally:
        scheduler.stop()
    assert not programme.filed("LHR-1301")
    assert scheduler.runs >= 3  # kept on the first two days, erased on the third


def test_serve_runs_the_retention_and_a_resend_stays_erased(
    built_programme_forms, identity_keys, new_database, tmp_path
):
    """A real `nigraan serve`: the retention runs on its schedule; Collect's resend of the
    erased envelope gets 201 and nothing is stored."""
    from server.device_accounts import create_account
    from tests.openrosa_client import CollectClient, ServerProcess

    config, _ = built_programme_forms
    build_dir = Path(config["forms.build_dir"])
    url = new_database()
    store = Store.open(url, upgrade=True)
    try:
        programme = Programme(store, build_dir, *identity_keys, config)
        key_file = tmp_path / "instance" / "keys" / "identity.key"
        programme.key = create_data_key_file(key_file)
        programme.register = IdentityRegister(store.engine, programme.key)
        programme.survivor("LHR-1401", date.today() - timedelta(days=DAYS + 1))
        programme.file_all()
        account = create_account(store.app_users, "tablet", ["identity_register"])
    finally:
        store.close()
    server = ServerProcess(
        {
            "NIGRAAN_INSTANCE_DIR": str(tmp_path / "instance"),
            "NIGRAAN_FORMS_BUILD_DIR": str(build_dir),
            "NIGRAAN_DATABASE_URL": url,
            "NIGRAAN_IDENTITY_KEY_FILE": str(key_file),
            "NIGRAAN_IDENTITY_RETENTION_CHECK_HOURS": "0.0003",  # about a second
        }
    ).start()
    store = Store.open(url)
    programme.store, programme.register = store, IdentityRegister(store.engine, programme.key)
    try:
        for _ in range(300):
            if not programme.filed("LHR-1401"):
                break
            time.sleep(0.1)
        assert not programme.filed("LHR-1401")
        instance_id, envelope, files = programme.envelopes["LHR-1401"][0]
        client = CollectClient(server.base, username=account.user.name, password=account.password)
        parts = [(name, content, "application/octet-stream") for name, content in files.items()]
        assert client.send(envelope, parts).status_code == 201
        assert store.versions("identity_register", instance_id) == []
        assert _found_anywhere(store, programme.secrets_of("LHR-1401")) == []
    finally:
        store.close()
        server.stop()


# ------------------------------------------------------------------ a sync meets it again


def test_a_sync_from_central_does_not_bring_an_erased_identity_back(programme):
    """The Central stand-in holds her identity_register submission (OData row `notDecrypted`,
    envelope and `.enc` files through REST): synced, filed, erased; a full sync and filing
    from Central again store and file nothing of it."""
    from sync.central import Central
    from sync.encrypted import file_identities_from_central
    from sync.pull import sync
    from tests.central_standin import CentralStandin, admin_settings

    code = "LHR-1501"
    programme.send(
        "case_closure",
        {"survivor_code": code, "closure_date": str(TODAY - timedelta(days=DAYS + 1))},
    )
    instance_id = f"uuid:{uuid.uuid4()}"
    xml = identity_xml(programme.version, instance_id, code)
    envelope, files = encrypt_submission(programme.public, xml, {"document.jpg": PHOTO})
    programme.envelopes[code] = [(instance_id, envelope, files)]
    system = {
        "submissionDate": "2026-11-30T10:00:00.000Z",
        "updatedAt": None,
        "submitterId": "7",
        "submitterName": "collector-1",
        "attachmentsPresent": 2,
        "attachmentsExpected": 2,
        "status": "notDecrypted",
        "reviewState": None,
        "deviceId": None,
        "edits": 0,
        "formVersion": programme.version,
        "deletedAt": None,
    }
    standin = CentralStandin().serve()
    central = None
    try:
        standin.add_form((programme.build_dir / "identity_register.xml").read_bytes())
        standin.add_rows(
            "identity_register",
            [{"__id": instance_id, "__system": system}],
            versions={instance_id: [envelope]},
            attachments={
                instance_id: {n: (c, "application/octet-stream") for n, c in files.items()}
            },
        )
        settings = admin_settings(standin.base_url, timeout=5.0, retries=2)
        central = Central(settings)
        store = programme.store
        sync(central, store, ["identity_register"])
        assert store.submission("identity_register", instance_id) is not None
        filed = file_identities_from_central(
            central, store, programme.register, programme.private, [instance_id]
        )
        assert filed == {"created": 1} and programme.filed(code)
        [erasure] = run_retention(store, programme.key, DAYS, today=TODAY).erasures
        assert erasure.code == code and not programme.filed(code)
        before = store.counts()
        [again] = sync(central, store, ["identity_register"], full=True)
        assert again.new == 0 and store.counts() == before
        assert store.missing_attachments("identity_register") == {}
        filed = file_identities_from_central(
            central, store, programme.register, programme.private, [instance_id]
        )
        assert filed == {"erased": 1} and not programme.filed(code)
        assert _found_anywhere(store, programme.secrets_of(code)) == []
    finally:
        if central is not None:
            central.close()
        standin.stop()
