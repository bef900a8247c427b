"""Files only their owner can read, whatever the umask: instance/ 0700, everything in it 0600."""

from __future__ import annotations

import logging
import os
import stat

import pytest

from nigraan.data_key import create_data_key_file
from nigraan.keys import create_key_pair
from nigraan.private_files import tighten_instance_modes, warn_and_tighten
from store.store import Store


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def permissive_umask():
    old = os.umask(0o002)
    yield
    os.umask(old)


@pytest.fixture
def loose_instance(tmp_path, permissive_umask):
    """An instance folder as a umask of 0002 leaves it: store open (WAL, SHM), keys, a card,
    an export, a built form."""
    instance = tmp_path / "instance"
    instance.mkdir()
    url = f"sqlite:///{instance / 'nigraan.sqlite3'}"
    store = Store.open(url, upgrade=True)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("create table if not exists t_probe (x integer)")
        conn.exec_driver_sql("insert into t_probe values (1)")
    create_key_pair(instance / "keys" / "form-public.pem", passphrase=None)
    create_data_key_file(instance / "keys" / "identity.key")
    (instance / "app-users").mkdir()
    (instance / "app-users" / "tablet.txt").write_text("token url")
    (instance / "exports").mkdir()
    (instance / "exports" / "visits.csv").write_text("a,b\n")
    (instance / "forms").mkdir()
    (instance / "forms" / "rec_visit.xml").write_text("<h:html/>")
    yield instance, url
    store.close()


def test_everything_in_the_instance_becomes_owner_only(loose_instance):
    instance, url = loose_instance
    assert mode(instance) == 0o775 and mode(instance / "exports" / "visits.csv") == 0o664
    assert (instance / "nigraan.sqlite3-wal").exists()
    changes = tighten_instance_modes(instance, url)
    assert {c.path for c in changes} >= {
        instance,
        instance / "nigraan.sqlite3",
        instance / "nigraan.sqlite3-wal",
        instance / "nigraan.sqlite3-shm",
        instance / "keys",
        instance / "keys" / "form-public.pem",
        instance / "app-users" / "tablet.txt",
        instance / "exports" / "visits.csv",
    }
    for folder, _dirs, files in os.walk(instance):
        assert mode(folder) == 0o700, folder
        for name in files:
            assert mode(os.path.join(folder, name)) == 0o600, name
    assert all(c.error is None for c in changes)
    assert tighten_instance_modes(instance, url) == []  # nothing left to fix


def test_the_private_keys_were_0600_from_the_start(loose_instance):
    instance, _ = loose_instance
    assert mode(instance / "keys" / "form-private.pem") == 0o600
    assert mode(instance / "keys" / "identity.key") == 0o600


def test_a_store_outside_the_instance_is_tightened_too(tmp_path, permissive_umask):
    instance = tmp_path / "instance"
    instance.mkdir()
    elsewhere = tmp_path / "data" / "store.sqlite3"
    store = Store.open(f"sqlite:///{elsewhere}", upgrade=True)
    try:
        assert mode(elsewhere) & 0o044  # SQLite makes its files 0644
        tighten_instance_modes(instance, f"sqlite:///{elsewhere}")
        assert mode(elsewhere) == 0o600 and mode(f"{elsewhere}-wal") == 0o600
    finally:
        store.close()


def test_a_postgresql_url_touches_only_the_instance(tmp_path, permissive_umask):
    instance = tmp_path / "instance"
    instance.mkdir()
    assert [c.path for c in tighten_instance_modes(instance, "postgresql://u@h/db")] == [instance]


def test_links_are_not_followed(tmp_path, permissive_umask):
    instance = tmp_path / "instance"
    instance.mkdir()
    outside = tmp_path / "shared.txt"
    outside.write_text("not ours")
    (instance / "link").symlink_to(outside)
    tighten_instance_modes(instance)
    assert mode(outside) == 0o664


def test_each_looser_mode_is_a_warning(loose_instance, caplog):
    instance, url = loose_instance
    log = logging.getLogger("nigraan")
    with caplog.at_level(logging.WARNING, logger="nigraan"):
        changes = warn_and_tighten(instance, url, log)
    assert len(caplog.records) == len(changes) > 0
    assert "nigraan.sqlite3 had mode 0644 (others could read it); made 0600" in caplog.text
