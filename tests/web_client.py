"""Helpers of the web app's tests: people made in the store, signing in with the CSRF token the
page hands out, as a browser would."""

from __future__ import annotations

import re

from server.web.accounts import hash_password

CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def add_person(app, name: str, role: str, unit: str | None = None, password: str = "") -> str:
    """A person in the app's store; returns their password."""
    password = password or f"pw-{name}-0123456789"
    app.extensions["nigraan"].store.people.create(name, hash_password(password), role, unit)
    return password


def csrf_token(client, path: str = "/sign-in") -> str:
    page = client.get(path).get_data(as_text=True)
    found = CSRF.search(page)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def sign_in(client, name: str, password: str):
    token = csrf_token(client)
    return client.post("/sign-in", data={"name": name, "password": password, "csrf_token": token})


def audit_rows(app, **where) -> list[dict]:
    return app.extensions["nigraan"].store.audit.entries(**where)
