"""The connection to ODK Central: settings, a pyodk Client whose session retries and logs in again.

Settings come from nigraan's `central.*` settings, or, when `central.base_url` is empty, from
pyodk's own config file (PYODK_CONFIG_FILE or ~/.pyodk_config.toml). The password lives only in
memory (no pyodk token cache file is written) and never appears in repr, logs or errors.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
import urllib3
from pyodk import Client
from pyodk._utils.config import CentralConfig, read_config
from pyodk._utils.config import Config as PyodkConfig
from pyodk._utils.session import Session
from pyodk.errors import PyODKError
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, NewConnectionError
from urllib3.util.retry import Retry

from nigraan.errors import ConfigError, NigraanError

# pyodk logs every failed request (with Central's answer) at ERROR; nigraan reports failures
# itself, once, without response bodies that could carry submission data.
_pyodk_log = logging.getLogger("pyodk")
_pyodk_log.addHandler(logging.NullHandler())
_pyodk_log.propagate = False


class CentralError(NigraanError):
    """Central refused a request (4xx): the message says what Central said."""

    code = "central.refused"
    status = 502

    def __init__(self, message: str, hint: str | None = None, central_code: Any = None):
        super().__init__(message, hint=hint)
        self.central_code = central_code


class CentralUnavailable(CentralError):
    """Central did not answer usefully (down, 5xx, timeouts) after every retry."""

    code = "central.unavailable"
    status = 503


@dataclass(frozen=True)
class CentralSettings:
    base_url: str
    username: str
    password: str = field(repr=False)
    project_id: int
    page_size: int = 1000
    overlap_seconds: int = 300
    timeout: float = 60.0
    retries: int = 5
    retry_wait: float = 1.0
    download_workers: int = 6

    @classmethod
    def from_config(cls, config) -> CentralSettings:
        """From nigraan's settings, or pyodk's config file when central.base_url is empty."""
        base_url = config["central.base_url"]
        username, password = config["central.username"], config["central.password"]
        project_id = config["central.project_id"] or None
        if not base_url:
            try:
                pyodk_config = read_config()
            except PyODKError as exc:
                raise ConfigError(
                    "No ODK Central is configured.",
                    hint="Set central.base_url, central.username, central.password and "
                    "central.project_id (NIGRAAN_CENTRAL_*), or write pyodk's config file "
                    "(PYODK_CONFIG_FILE or ~/.pyodk_config.toml).",
                ) from exc
            central = pyodk_config.central
            base_url, username, password = central.base_url, central.username, central.password
            project_id = project_id or central.default_project_id
        missing = [
            name for name, value in (("username", username), ("password", password)) if not value
        ]
        if missing:
            raise ConfigError(
                f"central.base_url is set but central.{' and central.'.join(missing)} is not.",
                hint="Set NIGRAAN_CENTRAL_USERNAME and NIGRAAN_CENTRAL_PASSWORD (or the same "
                "keys in the config file).",
            )
        if not project_id:
            raise ConfigError(
                "No Central project id.",
                hint="Set central.project_id (NIGRAAN_CENTRAL_PROJECT_ID), or "
                "default_project_id in pyodk's config file.",
            )
        return cls(
            base_url=base_url.rstrip("/"),
            username=username,
            password=password,
            project_id=int(project_id),
            page_size=config["central.page_size"],
            overlap_seconds=config["central.overlap_seconds"],
            timeout=config["central.timeout"],
            retries=max(1, config["central.retries"]),
            retry_wait=config["central.retry_wait"],
            download_workers=max(1, config["central.download_workers"]),
        )

    @property
    def shown_url(self) -> str:
        """The base URL without any user:password part."""
        parts = urlsplit(self.base_url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"


def central_problem(response: requests.Response) -> tuple[Any, str]:
    """Central's error code and message from a JSON problem body ({code, message})."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.status_code, f"HTTP {response.status_code}"
    if isinstance(body, dict):
        return body.get("code", response.status_code), str(body.get("message", ""))
    return response.status_code, f"HTTP {response.status_code}"


# A Retry-After longer than this is waited only this long, then retried: a sync never sleeps
# for hours on one header (urllib3's own cap on backoff is the same).
MAX_RETRY_AFTER = 120.0


class CentralRetry(Retry):
    """urllib3's Retry with nigraan's schedule: `backoff_factor` (central.retry_wait) before
    the first retry, doubled before each next; a Retry-After Central sends is waited instead
    (at most MAX_RETRY_AFTER), and one that cannot be read falls back to the schedule."""

    def get_backoff_time(self) -> float:
        retries = len(self.history)
        if retries == 0:
            return 0.0
        return min(self.backoff_max, self.backoff_factor * 2 ** (retries - 1))

    def get_retry_after(self, response) -> float | None:
        try:
            seconds = super().get_retry_after(response)
        except InvalidHeader:
            return None
        return None if seconds is None else min(seconds, MAX_RETRY_AFTER)


RETRY_STATUSES = frozenset({429, *range(500, 600)})


def central_retry(settings: CentralSettings) -> CentralRetry:
    """`settings.retries` attempts in all, on connection errors, timeouts, 5xx and 429, for
    every method (Central's writes that nigraan makes are safe to repeat); the last answer is
    returned, not raised, so the session can say what it was."""
    return CentralRetry(
        total=settings.retries - 1,
        backoff_factor=settings.retry_wait,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=None,
        raise_on_status=False,
        respect_retry_after_header=True,
    )


def _trouble(exc: requests.RequestException) -> str:
    """What went wrong, in words: requests raises a read timeout that used up the retries as a
    ConnectionError, and urllib3 counts a refused connection as a connect timeout."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, NewConnectionError):
        return "not reachable"
    if isinstance(exc, requests.Timeout) or isinstance(reason, urllib3.exceptions.TimeoutError):
        return "timed out"
    return "not reachable"


class CentralSession(Session):
    """pyodk's session, with retries with backoff, a timeout and a fresh login after a 401.

    pyodk only retries over https and never for POST/PATCH, sets no timeout for http, and never
    renews an expired token (24 h sessions); a sync must survive all three. Every request,
    including pyodk's own library calls, goes through `request` below; the retries are urllib3's
    (`central_retry`), on the adapter of both schemes.
    """

    def __init__(self, settings: CentralSettings):
        super().__init__(
            base_url=settings.base_url,
            api_version="v1",
            username=settings.username,
            password=settings.password,
            cache_path=None,
        )
        for prefix in ("http://", "https://"):  # one retry policy: ours
            self.mount(prefix, HTTPAdapter(max_retries=central_retry(settings)))
        self.settings = settings
        # The sync's reader thread and download workers share this session: one of them logs
        # in (or in again) while the others wait, instead of each starting its own session.
        self.login_lock = threading.RLock()

    def __repr__(self) -> str:
        return f"CentralSession({self.settings.shown_url!r})"

    def log_in(self) -> None:
        """Log in once when there is no token (pyodk's Auth does it per request otherwise)."""
        if "Authorization" in self.headers:
            return
        with self.login_lock:
            if "Authorization" not in self.headers:
                self.auth.login()

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", self.settings.timeout)
        is_login = str(url).rstrip("/").endswith("sessions") and method.upper() == "POST"
        relogged = False
        while True:
            try:
                if not is_login:
                    self.log_in()
                response = super().request(method, url, *args, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                trouble = _trouble(exc)
            except CentralUnavailable:
                raise  # the login inside this request already retried
            except PyODKError as exc:  # pyodk's Auth could not log in (before this request)
                failed = exc.args[1] if len(exc.args) > 1 else None
                code, message = central_problem(failed) if failed is not None else (None, "")
                raise CentralError(
                    f"ODK Central at {self.settings.shown_url} refused the login "
                    f"({message or exc.args[0]}, {code}).",
                    hint="Check central.username and central.password (NIGRAAN_CENTRAL_*), or "
                    "pyodk's config file, and that this web user has a role in the project.",
                    central_code=code,
                ) from None
            else:
                sent = response.request.headers.get("Authorization")
                if response.status_code == 401 and not is_login and not relogged and sent:
                    # Expired or revoked token: drop it (unless another thread already has)
                    # and log in again.
                    with self.login_lock:
                        if self.headers.get("Authorization") == sent:
                            del self.headers["Authorization"]
                    relogged = True
                    continue
                if response.status_code not in RETRY_STATUSES:
                    return response
                trouble = f"answered HTTP {response.status_code}"
            path = urlsplit(self.urljoin(str(url))).path
            raise CentralUnavailable(
                f"ODK Central at {self.settings.shown_url} {trouble} for {method.upper()} "
                f"{path} ({self.settings.retries} attempts).",
                hint="Check that Central is up and central.base_url is right, then run the "
                "command again: it carries on where it stopped.",
            )


def make_client(settings: CentralSettings) -> Client:
    """A pyodk Client on a CentralSession; logs in lazily on the first request."""
    config = PyodkConfig(
        central=CentralConfig(
            base_url=settings.base_url,
            username=settings.username,
            password=settings.password,
            default_project_id=settings.project_id,
        )
    )
    return Client(config=config, session=CentralSession(settings), project_id=settings.project_id)


class Central:
    """What nigraan asks of one Central project, over a pyodk Client."""

    def __init__(self, settings: CentralSettings, client: Client | None = None):
        self.settings = settings
        self.client = client or make_client(settings)
        self.session: CentralSession = self.client.session
        self.project_id = settings.project_id

    @classmethod
    def from_config(cls, config) -> Central:
        return cls(CentralSettings.from_config(config))

    def __repr__(self) -> str:
        return f"Central({self.settings.shown_url!r}, project {self.project_id})"

    def close(self) -> None:
        self.client.session.close()

    def path(self, template: str, **values: Any) -> str:
        """A path under /v1 with every value percent-encoded as Central expects."""
        return self.session.urlformat(template, project_id=self.project_id, **values)

    def get(self, url: str, ok: tuple[int, ...] = (200,), **kwargs) -> requests.Response:
        """GET that raises CentralError unless the status is in `ok`."""
        response = self.session.get(url, **kwargs)
        return self.check(response, ok)

    def check(self, response: requests.Response, ok: tuple[int, ...] = (200,)):
        if response.status_code not in ok:
            code, message = central_problem(response)
            path = urlsplit(response.url).path
            raise CentralError(
                f"Central refused {response.request.method} {path}: {message} ({code}).",
                central_code=code,
            )
        return response

    def get_json(self, url: str, **kwargs) -> Any:
        return orjson.loads(self.get(url, **kwargs).content)


def is_central_error(exc: PyODKError, code: float | str) -> bool:
    """pyodk's test that Central answered problem `code` (e.g. 409.6); False, not a crash, when
    the answer is not Central's JSON (a proxy's HTML page)."""
    try:
        return exc.is_central_error(code)
    except (ValueError, AttributeError):  # not JSON, or JSON that is not a problem object
        return False


def pyodk_failure(exc: PyODKError) -> CentralError:
    """A PyODKError from a library call, as a CentralError with Central's code and message."""
    response = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(response, requests.Response):
        code, message = central_problem(response)
        return CentralError(f"Central refused the request: {message} ({code}).", central_code=code)
    return CentralError(f"pyodk: {exc.args[0] if exc.args else exc}")
