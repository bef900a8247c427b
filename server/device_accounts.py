"""Device accounts: the secrets a tablet uses, and how requests prove them.

Two ways in, as ODK Collect supports them:
- a token URL, `/v1/key/<token>/projects/1/...`, exactly like an ODK Central app user
  (the QR code carries it; nothing to type on the tablet);
- HTTP Digest (RFC 2617, MD5, qop=auth) on `/` or `/v1/projects/1/`, answered after a 401
  challenge, which is the only time Collect sends credentials.

Only hashes are stored: sha256 of the token, and the Digest HA1 of the password.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import time
from dataclasses import dataclass

from flask import g
from flask_httpauth import HTTPDigestAuth

from store.app_users import AppUser, AppUserError, AppUsers

REALM = "nigraan"
PROJECT_ID = 1  # nigraan serves one project; the id keeps Central's URL shape for Collect
# Central's app-user token shape; anything else is "malformed" (401), a well-formed unknown
# or revoked token is "not allowed" (403), as Central answers.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9!$]{64}")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NONCE_LIFETIME = 3600  # seconds; an expired nonce costs the tablet one more challenge
_ALPHABET = string.ascii_letters + string.digits
_READABLE = "".join(c for c in _ALPHABET if c not in "0O1lI")  # typed by hand on a tablet


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def digest_ha1(username: str, password: str, realm: str = REALM) -> str:
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()


@dataclass(frozen=True)
class NewAccount:
    user: AppUser
    token: str
    password: str

    def token_url(self, public_url: str) -> str:
        return f"{public_url.rstrip('/')}/v1/key/{self.token}/projects/{PROJECT_ID}"


def create_account(accounts: AppUsers, name: str, forms) -> NewAccount:
    """A new account with fresh secrets; the secrets are returned once and never stored."""
    if not NAME_PATTERN.fullmatch(name):
        raise AppUserError(
            f"{name!r} cannot name a device account.",
            hint="Use letters, digits, '.', '_' or '-' (up to 100), e.g. monitor-lhr-01.",
        )
    token = "".join(secrets.choice(_ALPHABET) for _ in range(64))
    password = "".join(secrets.choice(_READABLE) for _ in range(20))
    user = accounts.create(name, token_sha256(token), digest_ha1(name, password), forms)
    return NewAccount(user, token, password)


class TokenAccounts:
    """Token URL -> active account, remembered for a moment: every HEAD and POST carries the
    token, and looking it up costs two queries. A revoked account is refused within
    CACHE_SECONDS."""

    CACHE_SECONDS = 2.0

    def __init__(self, accounts_of):
        self._accounts_of = accounts_of
        self._seen: dict[str, tuple[float, AppUser | None]] = {}

    def find(self, token: str) -> AppUser | None | bool:
        """The active account; False if the token is malformed, None if unknown or revoked."""
        if not TOKEN_PATTERN.fullmatch(token):
            return False
        key = token_sha256(token)
        now = time.monotonic()
        seen = self._seen.get(key)
        if seen is not None and seen[0] > now:
            return seen[1]
        user = self._accounts_of().by_token(key)
        user = user if user is not None and user.active else None
        if len(self._seen) > 10_000:  # bounded: unknown tokens must not grow it forever
            self._seen.clear()
        self._seen[key] = (now + self.CACHE_SECONDS, user)
        return user


class DeviceDigestAuth(HTTPDigestAuth):
    """Flask-HTTPAuth's Digest with stateless nonces (Collect keeps no cookies between calls)
    and the `domain` OpenRosa asks servers to send."""

    def __init__(self, accounts_of):
        super().__init__(realm=REALM, use_ha1_pw=True, qop="auth")
        self._secret = secrets.token_bytes(32)  # per process: a restart only costs a re-challenge
        self._accounts_of = accounts_of
        self.generate_nonce(self._new_nonce)
        self.verify_nonce(self._nonce_ok)
        self.generate_opaque(lambda: self._sign("opaque"))
        self.verify_opaque(lambda opaque: hmac.compare_digest(opaque or "", self._sign("opaque")))
        self.get_password(self._ha1)

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()[:32]

    def _new_nonce(self) -> str:
        stamp = f"{int(time.time()):x}"
        return f"{stamp}{self._sign(stamp)}"

    def _nonce_ok(self, nonce: str | None) -> bool:
        if not nonce or len(nonce) <= 32:
            return False
        stamp, signature = nonce[:-32], nonce[-32:]
        if not hmac.compare_digest(signature, self._sign(stamp)):
            return False
        try:
            return 0 <= time.time() - int(stamp, 16) <= NONCE_LIFETIME
        except ValueError:
            return False

    def _ha1(self, username: str) -> str | None:
        user = self._accounts_of().by_name(username)
        if user is None or not user.active:
            return None
        g.app_user = user
        return user.digest_ha1

    def authenticate_header(self) -> str:
        return super().authenticate_header() + ',domain="/"'
