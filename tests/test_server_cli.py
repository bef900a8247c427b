"""`nigraan app-users` and `nigraan serve` through click's CliRunner."""

from __future__ import annotations

import re
import socket
import stat

import pytest

from nigraan.cli import main
from nigraan.collect_qr import decode_settings
from store.store import Store
from tests.openrosa_client import publish_recorded_forms


@pytest.fixture
def env(tmp_path, central_dir):
    build = publish_recorded_forms(tmp_path / "instance" / "forms", central_dir)
    # The store as `nigraan store init` leaves it (only that and `nigraan serve` migrate).
    Store.open(f"sqlite:///{tmp_path / 'instance' / 'nigraan.sqlite3'}", upgrade=True).close()
    return {
        "NIGRAAN_INSTANCE_DIR": str(tmp_path / "instance"),
        "NIGRAAN_FORMS_BUILD_DIR": str(build),
        "NIGRAAN_SERVER_PUBLIC_URL": "http://192.168.1.10:8080",
        "NIGRAAN_SERVER_PROJECT_NAME": "Lahore SSU",
    }


def test_create_prints_the_url_and_writes_a_qr_collect_can_scan(runner, env, tmp_path):
    import zxingcpp
    from PIL import Image

    result = runner.invoke(
        main, ["app-users", "create", "monitor-lhr-01", "--form", "rec_visit"], env=env
    )
    assert result.exit_code == 0, result.output
    url = re.search(
        r"http://192\.168\.1\.10:8080/v1/key/([A-Za-z0-9]{64})/projects/1", result.output
    )
    assert url, result.output
    password = re.search(r"username monitor-lhr-01\s+password (\S+)", result.output).group(1)
    assert len(password) == 20
    png = tmp_path / "instance" / "app-users" / "monitor-lhr-01.png"
    assert stat.S_IMODE(png.stat().st_mode) == 0o600
    assert stat.S_IMODE(png.with_suffix(".txt").stat().st_mode) == 0o600
    assert stat.S_IMODE(png.parent.stat().st_mode) == 0o700
    [code] = zxingcpp.read_barcodes(Image.open(png))
    settings = decode_settings(code.text)
    assert settings["general"]["server_url"] == url.group(0)
    assert settings["project"]["name"] == "Lahore SSU"
    assert "password" not in settings["general"]  # the token URL is the credential

    listed = runner.invoke(main, ["app-users", "list"], env=env)
    assert re.search(r"monitor-lhr-01\s+active\s+.*rec_visit", listed.output)
    assert url.group(1) not in listed.output and password not in listed.output


def test_names_are_unique_and_if_missing_keeps_the_first(runner, env):
    first = runner.invoke(main, ["app-users", "create", "tab", "--all-forms"], env=env)
    assert first.exit_code == 0
    again = runner.invoke(main, ["app-users", "create", "tab", "--all-forms"], env=env)
    assert again.exit_code == 2
    assert "already exists" in again.output
    kept = runner.invoke(
        main, ["app-users", "create", "tab", "--all-forms", "--if-missing"], env=env
    )
    assert kept.exit_code == 0
    assert kept.output.strip() == first.output.strip()  # the same account, shown again
    listed = runner.invoke(main, ["app-users", "list"], env=env)
    assert len([ln for ln in listed.output.splitlines() if ln.startswith("tab ")]) == 1


def test_forms_must_be_named_and_built(runner, env):
    none = runner.invoke(main, ["app-users", "create", "tab"], env=env)
    assert none.exit_code == 2
    assert "--form FORM_ID" in none.output and "rec_visit" in none.output
    unknown = runner.invoke(main, ["app-users", "create", "tab", "--form", "nope"], env=env)
    assert unknown.exit_code == 2 and "No built form 'nope'" in unknown.output
    bad_name = runner.invoke(main, ["app-users", "create", "a b", "--all-forms"], env=env)
    assert bad_name.exit_code == 2 and "cannot name a device account" in bad_name.output


def test_revoke(runner, env, tmp_path):
    runner.invoke(main, ["app-users", "create", "lost-tablet", "--all-forms"], env=env)
    revoked = runner.invoke(main, ["app-users", "revoke", "lost-tablet"], env=env)
    assert revoked.exit_code == 0, revoked.output
    assert not (tmp_path / "instance" / "app-users" / "lost-tablet.png").exists()
    assert not (tmp_path / "instance" / "app-users" / "lost-tablet.txt").exists()
    listed = runner.invoke(main, ["app-users", "list"], env=env)
    assert re.search(r"lost-tablet\s+revoked", listed.output)
    twice = runner.invoke(main, ["app-users", "revoke", "lost-tablet"], env=env)
    assert twice.exit_code == 2 and "already revoked" in twice.output
    unknown = runner.invoke(main, ["app-users", "revoke", "nobody"], env=env)
    assert unknown.exit_code == 2 and "No device account" in unknown.output


def test_serve_says_when_the_port_is_taken(runner, env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(main, ["serve", "--port", str(port)], env=env)
    assert result.exit_code == 2
    assert f"Cannot listen on 127.0.0.1:{port}" in result.output
    assert "Choose another port" in result.output
