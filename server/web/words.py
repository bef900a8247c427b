"""Words shown from data (roles, audit actions), listed so `pybabel extract -k N_` finds them;
templates translate them with `_(value)`."""

from __future__ import annotations


def N_(text: str) -> str:
    return text


ROLES = [N_("admin"), N_("supervisor"), N_("caseworker"), N_("monitor"), N_("viewer")]
ACTIONS = [
    N_("sign-in"),
    N_("failed sign-in"),
    N_("sign-out"),
    N_("user change"),
    N_("view"),
    N_("attachment download"),
    N_("export"),
    N_("review decision"),
    N_("survivor view"),
    N_("reveal"),
    N_("refused reveal"),
    N_("reveal not possible"),
]
