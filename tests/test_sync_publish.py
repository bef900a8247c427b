"""`nigraan central publish` / `app-users` and Central settings, against the stand-in."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from nigraan.cli import main
from nigraan.config import load_config
from nigraan.errors import ConfigError
from sync.central import Central, CentralSettings
from sync.publish import FAILED, NEW, UNCHANGED, UPDATED, publish
from tests.central_standin import CentralStandin, admin_settings


@pytest.fixture
def standin():
    server = CentralStandin().serve()
    yield server
    server.stop()


def _build_dir(tmp_path, central_dir, xml: bytes | None = None):
    """A build folder as `nigraan forms build` writes it, holding the recorded rec_visit."""
    build = tmp_path / "forms"
    (build / "rec_visit-media").mkdir(parents=True, exist_ok=True)
    xml = xml or (central_dir / "forms" / "rec_visit.xml").read_bytes()
    (build / "rec_visit.xml").write_bytes(xml)
    logo = central_dir / "forms" / "logo.png"
    shutil.copyfile(logo, build / "rec_visit-media" / "logo.png")
    index = {
        "rec_visit": {
            "form_id": "rec_visit",
            "version": "2026112801",
            "title": "Recording visit form",
            "file": "rec_visit.xml",
            "md5": hashlib.md5(xml).hexdigest(),
            "encrypted": False,
            "media": [{"file": "logo.png", "md5": hashlib.md5(logo.read_bytes()).hexdigest()}],
        }
    }
    (build / "index.json").write_text(json.dumps(index), encoding="utf-8")
    return build


def _central(standin) -> Central:
    return Central(admin_settings(standin.base_url, retry_wait=0.01))


def test_publish_creates_then_skips_then_asks_for_a_new_version(standin, tmp_path, central_dir):
    central = _central(standin)
    build = _build_dir(tmp_path, central_dir)
    [created] = publish(central, build)
    assert created.status == NEW
    form = standin.form("rec_visit")
    assert [v for v, _, _ in form.versions] == ["2026112801"]
    assert form.attachments["logo.png"] == (central_dir / "forms" / "logo.png").read_bytes()

    assert publish(central, build)[0].status == UNCHANGED
    assert not standin.requests("/draft")[len(standin.requests("/draft")) :]

    changed = (build / "rec_visit.xml").read_bytes().replace(b"Recording visit", b"Visit")
    build = _build_dir(tmp_path, central_dir, changed)  # same version, other content
    [clash] = publish(central, build)
    assert clash.status == FAILED and "bump the version" in clash.message
    assert standin.form("rec_visit").draft is None  # the refused draft was discarded

    bumped = changed.replace(b'version="2026112801"', b'version="2026112802"')
    build = _build_dir(tmp_path, central_dir, bumped)
    index = json.loads((build / "index.json").read_text())
    index["rec_visit"]["version"] = "2026112802"
    (build / "index.json").write_text(json.dumps(index))
    assert publish(central, build)[0].status == UPDATED
    assert [v for v, _, _ in standin.form("rec_visit").versions] == ["2026112801", "2026112802"]
    central.close()


def test_publish_and_app_users_commands(standin, tmp_path, central_dir, runner):
    build = _build_dir(tmp_path, central_dir)
    env = {
        "NIGRAAN_FORMS_BUILD_DIR": str(build),
        "NIGRAAN_CENTRAL_BASE_URL": standin.base_url,
        "NIGRAAN_CENTRAL_USERNAME": "admin@example.com",
        "NIGRAAN_CENTRAL_PASSWORD": "pw-not-real",
        "NIGRAAN_CENTRAL_PROJECT_ID": "1",
    }
    first = runner.invoke(main, ["central", "publish"], env=env)
    assert first.exit_code == 0, first.output
    assert "rec_visit" in first.output and "created" in first.output
    again = runner.invoke(main, ["central", "publish", "rec_visit"], env=env)
    assert "unchanged" in again.output
    users = runner.invoke(
        main, ["central", "app-users", "collector-1", "--qr-dir", str(tmp_path / "qr")], env=env
    )
    assert users.exit_code == 0, users.output
    [user] = standin.app_users
    assert user["displayName"] == "collector-1"
    assert {form for form, _ in standin.assignments[user["id"]]} == {"rec_visit"}
    png = tmp_path / "qr" / "collector-1.png"
    assert png.is_file() and png.stat().st_mode & 0o777 == 0o600
    import zxingcpp
    from PIL import Image

    from nigraan.collect_qr import decode_settings

    [code] = zxingcpp.read_barcodes(Image.open(png))
    settings = decode_settings(code.text)
    assert settings["general"]["server_url"] == (
        f"{standin.base_url}/v1/key/{user['token']}/projects/1"
    )
    assert settings["project"]["name"] == "nigraan test project"

    more = runner.invoke(
        main,
        ["central", "app-users", "collector-1", "collector-2", "--qr-dir", str(tmp_path / "qr")],
        env=env,
    )
    assert more.exit_code == 0, more.output
    assert [u["displayName"] for u in standin.app_users] == ["collector-1", "collector-2"]
    for u in standin.app_users:
        assert {form for form, _ in standin.assignments[u["id"]]} == {"rec_visit"}
    assert "pw-not-real" not in first.output + again.output + users.output


def test_app_user_qr_files_stay_in_the_current_folder(
    standin, tmp_path, central_dir, runner, monkeypatch
):
    build = _build_dir(tmp_path, central_dir)
    env = {
        "NIGRAAN_FORMS_BUILD_DIR": str(build),
        "NIGRAAN_CENTRAL_BASE_URL": standin.base_url,
        "NIGRAAN_CENTRAL_USERNAME": "admin@example.com",
        "NIGRAAN_CENTRAL_PASSWORD": "pw-not-real",
        "NIGRAAN_CENTRAL_PROJECT_ID": "1",
    }
    assert runner.invoke(main, ["central", "publish"], env=env).exit_code == 0
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    users = runner.invoke(main, ["central", "app-users", "../escaped", "plain"], env=env)
    assert users.exit_code == 0, users.output
    [odd, _plain] = standin.app_users
    assert odd["displayName"] == "../escaped"  # Central's display names can be anything
    assert not (tmp_path / "escaped.png").exists()
    assert sorted(p.name for p in here.iterdir()) == [f"_._escaped-{odd['id']}.png", "plain.png"]
    assert f"QR code written to _._escaped-{odd['id']}.png" in users.output


def test_settings_from_nigraan_or_from_pyodks_file(tmp_path, monkeypatch):
    config = load_config(
        overrides={
            "central.base_url": "https://central.example.org/",
            "central.username": "sync@example.org",
            "central.password": "hunter2-not-real",
            "central.project_id": 3,
        },
        environ={},
    )
    settings = CentralSettings.from_config(config)
    assert (settings.base_url, settings.project_id) == ("https://central.example.org", 3)
    assert "hunter2" not in repr(settings) and "hunter2" not in repr(config)
    assert "hunter2" not in repr(Central(settings))

    pyodk_file = tmp_path / "pyodk_config.toml"
    pyodk_file.write_text(
        '[central]\nbase_url = "https://odk.example.org"\n'
        'username = "me@example.org"\npassword = "from-file-not-real"\n'
        "default_project_id = 7\n"
    )
    monkeypatch.setenv("PYODK_CONFIG_FILE", str(pyodk_file))
    from_file = CentralSettings.from_config(load_config(environ={}))
    assert (from_file.base_url, from_file.username, from_file.project_id) == (
        "https://odk.example.org",
        "me@example.org",
        7,
    )
    assert "from-file" not in repr(from_file)

    monkeypatch.setenv("PYODK_CONFIG_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="No ODK Central is configured"):
        CentralSettings.from_config(load_config(environ={}))
    with pytest.raises(ConfigError, match=r"central\.password"):
        CentralSettings.from_config(
            load_config(
                overrides={"central.base_url": "https://x.example.org", "central.username": "u"},
                environ={},
            )
        )


def test_config_command_hides_the_central_password(runner):
    result = runner.invoke(main, ["config"], env={"NIGRAAN_CENTRAL_PASSWORD": "hunter2-not-real"})
    assert result.exit_code == 0
    assert "central.password = ***" in result.output and "hunter2" not in result.output
