"""Who may open what: every web route says its roles with `@allow(...)`, and `check_access`
(run before every request of every web blueprint) is the one place that enforces them.

A route without `@allow` is refused to everyone (403), so a forgotten mark fails closed.
Anonymous visitors of a non-public route are sent to the sign-in page; a signed-in person whose
role is not allowed gets 403.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, current_app, g, redirect, request, url_for
from flask_login import current_user

from store.people import ROLES

PUBLIC = "public"  # anyone, signed in or not (the sign-in page, the language switch)
EVERYONE = ROLES  # every signed-in person


def allow(*roles: str) -> Callable:
    """Mark a view with the roles that may open it (or PUBLIC)."""
    unknown = set(roles) - set(ROLES) - {PUBLIC}
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    def mark(view: Callable) -> Callable:
        view.allowed_roles = frozenset(roles)
        return view

    return mark


def allowed_roles(endpoint: str | None) -> frozenset[str]:
    if endpoint is None:
        return frozenset()
    if endpoint == "web.static" or endpoint.endswith(".static"):
        return frozenset({PUBLIC})
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "allowed_roles", frozenset())


def check_access():
    """before_request of every web blueprint: sign-in, role, then CSRF on every unsafe method."""
    roles = allowed_roles(request.endpoint)
    if PUBLIC not in roles:
        if not current_user.is_authenticated:
            idle = 1 if g.get("signed_out_idle") else None
            return redirect(url_for("auth.sign_in", next=_next_path(), idle=idle))
        if current_user.role not in roles:
            abort(403)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        current_app.extensions["csrf"].protect()  # a CSRFError (400) without a valid token
    return None


def _next_path() -> str:
    path = request.full_path if request.query_string else request.path
    return path if path.startswith("/") and not path.startswith("//") else "/"
