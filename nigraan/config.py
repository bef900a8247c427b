"""Settings, layered: defaults in code -> TOML file -> NIGRAAN_* environment -> test overrides.

Every setting is declared once in SETTINGS with its type, default and help. Unknown or
wrong-typed settings fail at start-up with a hint; secret values never appear in repr or errors.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nigraan.errors import ConfigError

PACKAGE_FORMS_DIR = Path(__file__).resolve().parent.parent / "forms"
CONFIG_ENV = "NIGRAAN_CONFIG"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
ENV_PREFIX = "NIGRAAN_"
# NIGRAAN_* variables that are not settings: the config file path, the virtualenv the
# scripts use, and the PostgreSQL the tests use. Any other unknown NIGRAAN_* is a typo.
NOT_SETTINGS = frozenset({CONFIG_ENV, "NIGRAAN_VENV", "NIGRAAN_TEST_POSTGRES"})


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # "path" | "bool" | "str" | "int" | "float" | "url" (its password never shown)
    default: Any  # a value, or a callable taking the partly resolved values
    help: str
    secret: bool = False
    # Returns what is wrong with a resolved value, or None; checked at start-up.
    check: Callable[[Any], str | None] | None = None

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + self.name.upper().replace(".", "_")

    def display(self, value: Any) -> str:
        """The value as it may be printed: secrets masked, passwords in URLs hidden."""
        if self.secret and value:
            return "***"
        if self.kind == "url" and isinstance(value, str):
            return shown_url(value)
        return str(value)


def shown_url(url: str) -> str:
    """A URL as it may be printed or logged: its password as ***, by SQLAlchemy's own rendering
    of URLs (`make_url(url).render_as_string(hide_password=True)`); a value that cannot be read
    as a URL is hidden whole, as it could hold a password anywhere."""
    if not url:
        return url
    from sqlalchemy.engine import make_url  # here: reading settings needs no SQLAlchemy
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "***"


def _between(low: int, high: int) -> Callable[[int], str | None]:
    return lambda value: None if low <= value <= high else f"must be from {low} to {high}"


def _http_url_or_empty(value: str) -> str | None:
    if not value or re.fullmatch(r"https?://[^/\s]+(/\S*)?", value):
        return None
    return "must be an http:// or https:// address, like http://192.168.1.10:8080"


def _one_of(*allowed: str) -> Callable[[str], str | None]:
    return lambda value: None if value in allowed else f"must be one of {', '.join(allowed)}"


def _under_instance(*parts: str) -> Callable[[dict[str, Any]], Path]:
    return lambda values: Path(values["instance_dir"]).joinpath(*parts)


def _private_key_beside(public_path: Path) -> Path:
    from nigraan.keys import private_key_path_for  # here: reading settings needs no cryptography

    return private_key_path_for(public_path)


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "instance_dir",
        "path",
        Path("instance"),
        "Folder for runtime state: database, built forms, keys.",
    ),
    Setting(
        "forms.source_dir",
        "path",
        PACKAGE_FORMS_DIR / "xlsform",
        "Folder of the XLSForms (.xlsx), one file per form id.",
    ),
    Setting(
        "forms.reference_dir",
        "path",
        PACKAGE_FORMS_DIR / "reference",
        "Folder of the reference lists (CSV) the forms choose from.",
    ),
    Setting(
        "forms.lock_file",
        "path",
        PACKAGE_FORMS_DIR / "built-versions.json",
        "Record of the last built version and content fingerprint of each form.",
    ),
    Setting(
        "forms.build_dir",
        "path",
        _under_instance("forms"),
        "Where `forms build` writes the XForms and their media.",
    ),
    Setting(
        "forms.public_key_file",
        "path",
        _under_instance("keys", "form-public.pem"),
        "RSA public key (PEM, or base64 DER) put into encrypted forms at build time.",
    ),
    Setting(
        "forms.validate",
        "bool",
        True,
        "Run ODK Validate (JavaRosa, needs Java) on every compiled form.",
    ),
    Setting(
        "database.url",
        "url",
        lambda values: f"sqlite:///{Path(values['instance_dir']).resolve() / 'nigraan.sqlite3'}",
        "The reporting store: a SQLite file (default, in the instance folder) or "
        "postgresql+psycopg://user:password@host:5432/dbname.",
    ),
    Setting(
        "server.host",
        "str",
        "127.0.0.1",
        "Address `nigraan serve` listens on; 0.0.0.0 lets tablets on the office network reach it.",
    ),
    Setting(
        "server.port", "int", 8080, "Port `nigraan serve` listens on.", check=_between(1, 65535)
    ),
    Setting(
        "server.public_url",
        "str",
        "",
        "The address tablets use to reach the server (e.g. http://192.168.1.10:8080), put in "
        "device QR codes; empty: http://<server.host>:<server.port>.",
        check=_http_url_or_empty,
    ),
    Setting(
        "server.threads",
        "int",
        8,
        "Requests the server handles at once (devices uploading at the same time).",
        check=_between(1, 256),
    ),
    Setting(
        "server.header_timeout",
        "float",
        10.0,
        "Seconds a connection may take to send a request's headers, counted from when it "
        "connects or its last answer was sent; slower ones are closed, so clients that trickle "
        "bytes cannot hold the server's connections.",
        check=lambda value: None if 0.5 <= value <= 600 else "must be from 0.5 to 600",
    ),
    Setting(
        "server.connection_limit",
        "int",
        250,
        "Connections the server keeps open at once; more wait until one closes.",
        check=_between(10, 900),
    ),
    Setting(
        "server.connections_per_address",
        "int",
        20,
        "Connections one network address may hold open; more are closed at once. Behind a "
        "proxy every device has the proxy's address: set it to server.connection_limit.",
        check=_between(1, 900),
    ),
    Setting(
        "server.max_submission_bytes",
        "int",
        100_000_000,
        "Largest submission POST accepted (XML plus attachments); advertised to Collect, which "
        "splits bigger uploads. Larger requests get 413.",
        check=_between(10_000, 2_000_000_000),
    ),
    Setting(
        "server.max_submission_elements",
        "int",
        100_000,
        "Most XML elements one submission may have; more is refused (400) before it is stored, "
        "so one hostile upload cannot hold up the others.",
        check=_between(1_000, 10_000_000),
    ),
    Setting(
        "server.project_name",
        "str",
        "nigraan",
        "Project name shown in ODK Collect for devices set up from a QR code.",
    ),
    Setting(
        "web.secret_key",
        "str",
        "",
        "Key signing the web app's session cookies; empty: one generated once into "
        "<instance_dir>/web-secret-key (owner-only, never printed).",
        secret=True,
    ),
    Setting(
        "web.idle_minutes",
        "int",
        30,
        "Minutes without a request after which a person is signed out of the web app.",
        check=_between(1, 24 * 60),
    ),
    Setting(
        "web.slow_after",
        "int",
        3,
        "Failed sign-ins in a row after which each further try must wait (1 s, 2 s, 4 s...).",
        check=_between(1, 100),
    ),
    Setting(
        "web.lock_after",
        "int",
        10,
        "Failed sign-ins in a row that lock the account for web.lock_minutes.",
        check=_between(1, 1000),
    ),
    Setting(
        "web.lock_minutes",
        "int",
        15,
        "Minutes a locked account refuses every sign-in (an admin's reset-password lifts it).",
        check=_between(1, 7 * 24 * 60),
    ),
    Setting(
        "web.reveal_seconds",
        "int",
        60,
        "Seconds a revealed survivor identity stays on the screen before the page removes it.",
        check=_between(1, 3600),
    ),
    Setting(
        "log.level",
        "str",
        "INFO",
        "Least important log lines shown: DEBUG, INFO, WARNING or ERROR.",
        check=lambda value: _one_of(*LOG_LEVELS)(value.upper()),
    ),
    Setting(
        "log.format",
        "str",
        "text",
        "Log lines as text (time, level, component: message) or json (one object a line, for "
        "log collectors).",
        check=_one_of("text", "json"),
    ),
    Setting(
        "health.min_free_mb",
        "int",
        500,
        "Free space (MB) on the disks holding the store and uploads below which `nigraan "
        "status` and /health warn.",
        check=_between(0, 10_000_000),
    ),
    Setting(
        "health.max_wal_mb",
        "int",
        256,
        "Size (MB) of SQLite's write-ahead log above which `nigraan status` and /health warn "
        "(a WAL that keeps growing means checkpoints fail).",
        check=_between(1, 10_000_000),
    ),
    Setting(
        "central.base_url",
        "url",
        "",
        "ODK Central's address (https://central.example.org). Empty: base_url, username, "
        "password and default_project_id come from pyodk's config file (PYODK_CONFIG_FILE or "
        "~/.pyodk_config.toml).",
    ),
    Setting("central.username", "str", "", "The Central web user nigraan logs in as (email)."),
    Setting("central.password", "str", "", "That web user's password (never shown).", secret=True),
    Setting(
        "central.project_id",
        "int",
        0,
        "The Central project nigraan publishes to and syncs from (0: pyodk's default_project_id).",
    ),
    Setting("central.page_size", "int", 1000, "Submissions per OData page ($top) when syncing."),
    Setting(
        "central.overlap_seconds",
        "int",
        300,
        "An incremental sync re-reads this many seconds before its watermark, so rows Central "
        "committed late are not skipped (re-read rows are recognised, never duplicated).",
    ),
    Setting(
        "central.timeout", "float", 60.0, "Seconds to wait for Central before a request fails."
    ),
    Setting(
        "central.retries",
        "int",
        5,
        "Attempts per request when Central is down, answers 5xx or times out.",
    ),
    Setting(
        "central.retry_wait",
        "float",
        1.0,
        "Seconds before the first retry; the wait doubles with every attempt. A Retry-After "
        "from Central is waited instead (at most 120 s).",
    ),
    Setting(
        "central.download_workers",
        "int",
        6,
        "Submission attachments (photos) downloaded from Central at once when syncing.",
        check=_between(1, 32),
    ),
    # web-queue (issue 12): the server's scheduled sync with Central.
    Setting(
        "sync.interval_minutes",
        "int",
        10,
        "When central.base_url is set, `nigraan serve` syncs with Central this often (minutes; "
        "0: never on its own, only `nigraan sync` and the queue's button).",
        check=_between(0, 10_080),
    ),
    Setting(
        "reports.attendance_threshold",
        "float",
        0.8,
        "Share of a course's days a participant must attend to count as trained (0 to 1).",
        check=lambda value: None if 0 < value <= 1 else "must be above 0 and at most 1",
    ),
    Setting(
        "reports.pass_mark",
        "int",
        7,
        "Post-test score (out of 10) a trained official must reach to count as passing.",
        check=_between(1, 10),
    ),
    Setting(
        "reports.targets_file",
        "path",
        Path(__file__).resolve().parent.parent / "reports" / "targets.csv",
        "The indicator targets (CSV: indicator, period, district, target), edited without code.",
    ),
    Setting(
        "identity.key",
        "str",
        "",
        "The identity register's data key itself (URL-safe base64 of 32 bytes), usually from "
        "the environment only; empty: read from identity.key_file. Never shown.",
        secret=True,
    ),
    Setting(
        "identity.key_file",
        "path",
        _under_instance("keys", "identity.key"),
        "File holding the identity register's data key (owner-only, mode 0600; "
        "`nigraan identity key-create` makes it).",
    ),
    Setting(
        "identity.private_key_file",
        "path",
        lambda values: _private_key_beside(values["forms.public_key_file"]),
        "The encrypted forms' RSA private key (PEM, 0600), which decrypts their submissions "
        "inside nigraan; `nigraan keys create` puts it beside forms.public_key_file.",
    ),
    Setting(
        "identity.retention_days",
        "int",
        365,
        "Days a survivor's identity is kept after her case_closure date; then `nigraan "
        "retention run` (and `nigraan serve`, daily) erases it. 0: kept until erased by hand "
        "(`nigraan survivors erase`).",
        check=_between(0, 36_500),
    ),
    Setting(
        "identity.retention_check_hours",
        "float",
        24.0,
        "How often `nigraan serve` runs the retention (hours; 0: never on its own, only "
        "`nigraan retention run`).",
        check=lambda value: None if 0 <= value <= 8760 else "must be from 0 to 8760",
    ),
    Setting(
        "identity.passphrase",
        "str",
        "",
        "That private key's passphrase, usually from the environment only; empty with a "
        "protected key: `nigraan serve` asks for it at start. Never written, logged or shown.",
        secret=True,
    ),
)
BY_NAME = {s.name: s for s in SETTINGS}


class Config(Mapping[str, Any]):
    """Resolved settings; read with config["forms.build_dir"]."""

    def __init__(self, values: dict[str, Any], sources: dict[str, str]):
        self._values = values
        self.sources = sources

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        shown = {k: BY_NAME[k].display(v) for k, v in self._values.items()}
        return f"Config({shown})"


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _unknown(name: str, where: str) -> ConfigError:
    close = difflib.get_close_matches(name, BY_NAME, n=1)
    hint = f"Did you mean '{close[0]}'?" if close else "Run `nigraan config` to list settings."
    return ConfigError(f"Unknown setting '{name}' in {where}.", hint=hint)


def _coerce(setting: Setting, raw: Any, where: str, base: Path | None) -> Any:
    shown = "***" if setting.secret or setting.kind == "url" else repr(raw)
    if setting.kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(raw, str) and raw.strip().lower() in {"0", "false", "no", "off"}:
            return False
    elif setting.kind == "int":
        try:
            return int(raw)
        except (TypeError, ValueError):
            pass
    elif setting.kind == "float" and not isinstance(raw, bool):
        try:
            return float(raw)
        except (TypeError, ValueError):
            pass
    elif setting.kind == "path" and isinstance(raw, (str, os.PathLike)):
        path = Path(raw).expanduser()
        return path if path.is_absolute() or base is None else base / path
    elif setting.kind in ("str", "url") and isinstance(raw, str):
        return raw
    raise ConfigError(
        f"Setting '{setting.name}' from {where} should be a {setting.kind}, got {shown}.",
        hint=f"{setting.help}",
    )


def load_config(
    config_file: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Resolve every setting from its layers and check it."""
    environ = os.environ if environ is None else environ
    layered: dict[str, tuple[Any, str, Path | None]] = {}

    path = config_file or environ.get(CONFIG_ENV)
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"Config file {path} does not exist.",
                hint=f"Create it, or unset {CONFIG_ENV} / drop --config.",
            )
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Config file {path} is not valid TOML: {exc}.") from exc
        for name, raw in _flatten(table).items():
            if name not in BY_NAME:
                raise _unknown(name, str(path))
            layered[name] = (raw, str(path), path.parent.resolve())

    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key in NOT_SETTINGS:
            continue
        setting = next((s for s in SETTINGS if s.env_name == key), None)
        if setting is None:
            raise _unknown(key, "the environment")
        layered[setting.name] = (raw, key, None)

    for name, raw in (overrides or {}).items():
        if name not in BY_NAME:
            raise _unknown(name, "overrides")
        layered[name] = (raw, "overrides", None)

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:  # declaration order lets defaults depend on earlier settings
        if setting.name in layered:
            raw, where, base = layered[setting.name]
            values[setting.name] = _coerce(setting, raw, where, base)
            sources[setting.name] = where
            wrong = setting.check(values[setting.name]) if setting.check else None
            if wrong:
                raise ConfigError(
                    f"Setting '{setting.name}' from {where} {wrong}, got "
                    f"{setting.display(values[setting.name])}.",
                    hint=setting.help,
                )
        else:
            default = setting.default
            values[setting.name] = default(values) if callable(default) else default
            sources[setting.name] = "default"
    return Config(values, sources)
