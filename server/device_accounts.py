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
import threading
import time
from dataclasses import dataclass

from flask import g, request
from flask_httpauth import HTTPDigestAuth

from server.channel import HEADERS_AT
from store.app_users import AppUser, AppUserError, AppUsers

REALM = "nigraan"
PROJECT_ID = 1  # nigraan serves one project; the id keeps Central's URL shape for Collect
# Central's app-user token shape; anything else is "malformed" (401), a well-formed unknown
# or revoked token is "not allowed" (403), as Central answers.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9!$]{64}")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# Seconds a nonce may start requests; an expired one costs the tablet one more challenge
# (answered at once: the 401 says stale=TRUE). Judged when the request's headers arrived, so a
# long upload begun in time is not refused at its end.
NONCE_LIFETIME = 300
_ALPHABET = string.ascii_letters + string.digits
_READABLE = "".join(c for c in _ALPHABET if c not in "0O1lI")  # typed by hand on a tablet


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def digest_ha1(username: str, password: str, realm: str = REALM) -> str:
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()  # noqa: S324 - RFC 2617 Digest, as Collect speaks it, is MD5


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

    def __init__(self, accounts_of, clock=time.monotonic):
        self._accounts_of = accounts_of
        self.clock = clock  # seconds; tests pass their own to step past CACHE_SECONDS
        self._seen: dict[str, tuple[float, AppUser | None]] = {}

    def find(self, token: str) -> AppUser | bool | None:
        """The active account; False if the token is malformed, None if unknown or revoked."""
        if not TOKEN_PATTERN.fullmatch(token):
            return False
        key = token_sha256(token)
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and seen[0] > now:
            return seen[1]
        user = self._accounts_of().by_token(key)
        user = user if user is not None and user.active else None
        if len(self._seen) > 10_000:  # bounded: unknown tokens must not grow it forever
            self._seen.clear()
        self._seen[key] = (now + self.CACHE_SECONDS, user)
        return user


class NonceCounts:
    """Which nonce counts (`nc`) each nonce has been used with, so no Digest answer is taken
    twice. A count is taken once; counts may arrive out of order within WINDOW of the highest
    (Collect shares one nonce between a long upload and the form list it checks meanwhile, so
    a later count can finish first), older ones are refused. Memory is bounded: when
    MAX_NONCES are tracked, the expired ones and at least the older half are forgotten, and a
    forgotten nonce is refused from then on (its tablet gets a fresh challenge)."""

    WINDOW = 64
    MAX_NONCES = 20_000
    FORGET_AFTER = NONCE_LIFETIME + 3600  # uploads may take a while after their nonce expired

    def __init__(self):
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, int, int]] = {}  # nonce -> (issued, highest, bits)
        self._forgotten_up_to = 0  # nonces issued at or before this (unix seconds) are refused

    def use(self, nonce: str, issued: int, count: int, now: float) -> bool:
        """Take (nonce, count) if it was never taken; False for a replay."""
        if count < 1:
            return False
        with self._lock:
            seen = self._seen.get(nonce)
            if seen is None:
                if issued <= self._forgotten_up_to:
                    return False
                if len(self._seen) >= self.MAX_NONCES:
                    self._forget(now)
                self._seen[nonce] = (issued, count, 1)
                return True
            _, highest, bits = seen
            if count > highest:
                bits = ((bits << (count - highest)) | 1) & ((1 << self.WINDOW) - 1)
                self._seen[nonce] = (issued, count, bits)
                return True
            back = highest - count
            if back >= self.WINDOW or bits & (1 << back):
                return False
            self._seen[nonce] = (issued, highest, bits | (1 << back))
            return True

    def _forget(self, now: float) -> None:
        """Drop the expired nonces and at least the older half (amortised: not once a call)."""
        stamps = sorted(issued for issued, _, _ in self._seen.values())
        cutoff = max(int(now) - self.FORGET_AFTER, stamps[len(stamps) // 2])
        self._seen = {n: v for n, v in self._seen.items() if v[0] > cutoff}
        self._forgotten_up_to = max(self._forgotten_up_to, cutoff)

    def __len__(self) -> int:
        return len(self._seen)


class DeviceDigestAuth(HTTPDigestAuth):
    """Flask-HTTPAuth's Digest with stateless signed nonces (Collect keeps no cookies between
    calls), the `domain` OpenRosa asks servers to send, and replay protection: only qop=auth
    answers (with a nonce count) are taken, each (nonce, nc) once, from a nonce younger than
    NONCE_LIFETIME. A correct answer refused for its nonce alone gets `stale=TRUE`, so Collect
    answers the fresh challenge without asking the monitor for the password again."""

    def __init__(self, accounts_of, clock=time.time):
        super().__init__(realm=REALM, use_ha1_pw=True, qop="auth")
        self.clock = clock  # unix seconds: nonces carry their issue time
        self._secret = secrets.token_bytes(32)  # per process: a restart only costs a re-challenge
        self._accounts_of = accounts_of
        self._counts = NonceCounts()
        self.generate_nonce(self._new_nonce)
        self.verify_nonce(lambda nonce: self._issued(nonce) is not None)
        self.generate_opaque(lambda: self._sign("opaque"))
        self.verify_opaque(lambda opaque: hmac.compare_digest(opaque or "", self._sign("opaque")))
        self.get_password(self._ha1)

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()[:32]

    def _new_nonce(self) -> str:
        # Random part: every challenge gets its own nonce, and so its own nonce counts.
        stamp = f"{int(self.clock()):x}{secrets.token_hex(8)}"
        return f"{stamp}{self._sign(stamp)}"

    def _issued(self, nonce: str | None) -> int | None:
        """When a nonce this process signed was issued (unix seconds); None if not ours."""
        if not nonce or len(nonce) <= 48:
            return None
        stamp, signature = nonce[:-32], nonce[-32:]
        if not hmac.compare_digest(signature, self._sign(stamp)):
            return None
        try:
            return int(stamp[:-16], 16)
        except ValueError:
            return None

    def _nonce_ok(self, nonce: str | None, at: float | None = None) -> bool:
        """Ours, and young enough at `at` (default now)."""
        issued = self._issued(nonce)
        at = self.clock() if at is None else at
        return issued is not None and 0 <= at - issued <= NONCE_LIFETIME

    def authenticate(self, auth, stored_password_or_ha1) -> bool:
        g.digest_stale = False
        if auth is None or auth.qop != "auth" or not auth.cnonce:
            return False  # RFC 2069 answers (no qop, no nonce count) could be replayed freely
        try:
            count = int(auth.nc or "", 16)
        except ValueError:
            return False
        if not super().authenticate(auth, stored_password_or_ha1):
            return False  # wrong password or a nonce that is not ours
        started = request.environ.get(HEADERS_AT) or self.clock()
        fresh = self._nonce_ok(auth.nonce, started) and self._counts.use(
            auth.nonce, self._issued(auth.nonce), count, self.clock()
        )
        g.digest_stale = not fresh
        return fresh

    def _ha1(self, username: str) -> str | None:
        user = self._accounts_of().by_name(username)
        if user is None or not user.active:
            return None
        g.app_user = user
        return user.digest_ha1

    def authenticate_header(self) -> str:
        stale = ",stale=TRUE" if g.get("digest_stale") else ""
        return super().authenticate_header() + ',domain="/"' + stale
