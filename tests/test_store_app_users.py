"""Device accounts in the store, on SQLite and PostgreSQL: only hashes, names unique."""

from __future__ import annotations

import pytest

from server.device_accounts import TokenAccounts, create_account, digest_ha1, token_sha256
from store.app_users import AppUserError


def test_create_find_and_revoke(store):
    account = create_account(store.app_users, "tab-1", ["custody_visit", "training_event"])
    found = store.app_users.by_token(token_sha256(account.token))
    assert found.name == "tab-1" and found.active
    assert found.forms == {"custody_visit", "training_event"}
    assert found.digest_ha1 == digest_ha1("tab-1", account.password)
    assert store.app_users.by_name("tab-1") == found
    assert [u.name for u in store.app_users.all()] == ["tab-1"]

    with store.engine.connect() as conn:
        stored = " ".join(
            str(v) for row in conn.exec_driver_sql("SELECT * FROM app_users") for v in row
        )
    assert account.token not in stored and account.password not in stored

    store.app_users.revoke("tab-1")
    assert not store.app_users.by_name("tab-1").active
    assert TokenAccounts(lambda: store.app_users).find(account.token) is None
    with pytest.raises(AppUserError, match="already revoked"):
        store.app_users.revoke("tab-1")


def test_names_are_unique(store):
    create_account(store.app_users, "tab", [])
    with pytest.raises(AppUserError, match="already exists"):
        create_account(store.app_users, "tab", [])


def test_token_lookup(store):
    account = create_account(store.app_users, "tab", ["custody_visit"])
    tokens = TokenAccounts(lambda: store.app_users)
    assert tokens.find(account.token).name == "tab"
    assert tokens.find("A" * 64) is None
    assert tokens.find("too-short") is False
