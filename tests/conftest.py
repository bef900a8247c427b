"""Shared fixtures: configs pointing at temporary folders, a test key pair, the built forms."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from nigraan.config import PACKAGE_FORMS_DIR, load_config
from nigraan.keys import create_key_pair

REPO_FORMS = PACKAGE_FORMS_DIR


@pytest.fixture(autouse=True)
def _hermetic_environment(monkeypatch):
    """A developer's own NIGRAAN_* settings must not leak into the tests."""
    for key in list(os.environ):
        if key.startswith("NIGRAAN_") and key != "NIGRAAN_TEST_POSTGRES":
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def public_key_file(tmp_path_factory) -> Path:
    """A throwaway RSA key pair, made once for the run; never a real key."""
    path = tmp_path_factory.mktemp("keys") / "form-public.pem"
    create_key_pair(path, passphrase=None)
    return path


@pytest.fixture
def make_config(tmp_path, public_key_file):
    """Build a Config whose instance, build folder and version record live in tmp_path."""

    def make(**overrides):
        values = {
            "instance_dir": str(tmp_path / "instance"),
            "forms.lock_file": str(tmp_path / "built-versions.json"),
            "forms.public_key_file": str(public_key_file),
            "forms.validate": False,
        }
        values.update({k.replace("__", "."): v for k, v in overrides.items()})
        return load_config(overrides=values, environ={})

    return make


@pytest.fixture
def small_forms(tmp_path):
    """An empty forms folder with a copy of the real reference lists."""
    source = tmp_path / "xlsform"
    source.mkdir()
    shutil.copytree(REPO_FORMS / "reference", tmp_path / "reference")
    return source


@pytest.fixture(scope="session")
def built_programme_forms(tmp_path_factory, public_key_file):
    """The programme's forms, checked and built once with ODK Validate, for XPath tests."""
    from forms.build import build_forms

    tmp = tmp_path_factory.mktemp("programme")
    config = load_config(
        overrides={
            "instance_dir": str(tmp / "instance"),
            "forms.lock_file": str(tmp / "built-versions.json"),
            "forms.public_key_file": str(public_key_file),
            "forms.validate": True,
        },
        environ={},
    )
    report = build_forms(config)
    return config, report


@pytest.fixture(scope="session")
def javarosa(tmp_path_factory):
    """JavaRosa (the engine in ODK Collect) for the whole run, to fill forms in."""
    from tests.javarosa_driver import JavaRosa

    engine = JavaRosa(tmp_path_factory.mktemp("javarosa"))
    yield engine
    engine.close()


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The test PostgreSQL; unreachable is a skip locally and a failure in CI (CI=true)."""
    import psycopg

    dsn = os.environ.get(
        "NIGRAAN_TEST_POSTGRES", "host=127.0.0.1 port=5432 user=postgres dbname=test"
    )
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            conn.execute("select 1")
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at {dsn!r} is unreachable: {exc}"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message + " (CI=true requires it)")
        pytest.skip(message)
    return dsn


CENTRAL = Path(__file__).resolve().parent / "data" / "central"


# The recording's throwaway private key stays in shared/ (beside the clone, in CI too): no
# private key, not even a test one, is committed to this repository.
SHARED_KEYS = Path(__file__).resolve().parents[2] / "shared" / "central" / "keys"


@pytest.fixture(scope="session")
def recorded_private_key_file() -> Path:
    """The private key the recorded encrypted submissions were made with (shared/central)."""
    path = SHARED_KEYS / "rec_encrypted_private.pem"
    if not path.is_file():
        message = f"The recorded test key {path} is missing (shared/ beside the clone)."
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message + " (CI=true requires it)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def central_dir() -> Path:
    """Forms, submissions and OData reads recorded against a real ODK Central."""
    return CENTRAL


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def new_database(request, tmp_path):
    """Make fresh, empty store databases: SQLite files, or PostgreSQL schemas of their own."""
    made: list[str] = []
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgresql" else None

    def make() -> str:
        n = len(made)
        if dsn is None:
            made.append(f"sqlite:///{tmp_path / f'store{n}.sqlite3'}")
            return made[-1]
        import uuid

        import psycopg

        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        made.append(schema)
        info = psycopg.conninfo.conninfo_to_dict(dsn)
        return (
            f"postgresql+psycopg://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}"
            f":{info.get('port', 5432)}/{info.get('dbname', 'test')}"
            f"?options=-csearch_path%3D{schema}"
        )

    yield make
    if dsn is not None:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            for schema in made:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def open_store(new_database):
    """open_store() -> a Store on a fresh database; open_store(url) reopens one."""
    from store.store import Store

    opened = []

    def open_(url: str | None = None):
        opened.append(Store.open(url or new_database(), upgrade=True))
        return opened[-1]

    yield open_
    for s in opened:
        s.close()


@pytest.fixture
def store_of():
    """store_of(server) -> the Store a running (or in-process) server writes to."""
    from store.store import Store

    opened = []

    def open_(server):
        opened.append(Store.open(server.database_url))
        return opened[-1]

    yield open_
    for s in opened:
        s.close()


@pytest.fixture
def store(open_store):
    return open_store()


@pytest.fixture
def serve_openrosa(tmp_path, central_dir):
    """serve_openrosa(database_url) -> a running `nigraan serve` offering the recorded forms,
    and a device account for all of them (`.token_url`, `.username`, `.password`)."""
    from server.device_accounts import create_account
    from store.store import Store
    from tests.openrosa_client import ServerProcess, publish_recorded_forms

    started = []

    def start(database_url: str, **settings):
        instance = tmp_path / f"instance{len(started)}"
        build_dir = publish_recorded_forms(instance / "forms", central_dir)
        env = {
            "NIGRAAN_INSTANCE_DIR": str(instance),
            "NIGRAAN_FORMS_BUILD_DIR": str(build_dir),
            "NIGRAAN_DATABASE_URL": database_url,
            **{"NIGRAAN_" + k.upper().replace("__", "_"): str(v) for k, v in settings.items()},
        }
        server = ServerProcess(env).start()
        started.append(server)
        store = Store.open(database_url)
        try:
            account = create_account(
                store.app_users,
                f"tablet-{len(started)}",
                ["rec_visit", "rec_encrypted", "rec_entity"],
            )
        finally:
            store.close()
        server.account = account
        server.token_url = account.token_url(server.base)
        server.username, server.password = account.user.name, account.password
        server.database_url = database_url
        server.build_dir = build_dir
        server.central_dir = central_dir
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def serve_in_process(tmp_path, central_dir, new_database):
    """serve_in_process(**settings) -> the app as `serve_openrosa` serves it (the recorded
    forms, a device account for all of them), in this process: create_app with the real
    SubmissionWriter over a fresh store (SQLite and PostgreSQL), no store process. Optional
    `database_url` and `build_dir` start another app over the same ones."""
    from tests.openrosa_client import InProcessServer

    started = []

    def start(database_url: str | None = None, build_dir=None, **settings):
        server = InProcessServer(
            tmp_path / f"app{len(started)}",
            central_dir,
            database_url or new_database(),
            build_dir=build_dir,
            **settings,
        )
        started.append(server)
        return server.add_account(f"tablet-{len(started)}")

    yield start
    for server in reversed(started):
        server.close()


@pytest.fixture
def app(serve_in_process):
    """The Flask app in process (the flask tutorial's fixture), over a fresh store."""
    return serve_in_process().app


@pytest.fixture
def client(app):
    return app.test_client()


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium driven by Playwright, one for the whole run (a second sync_playwright
    while one is open fails: "Sync API inside the asyncio loop")."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message + " (CI=true requires it)")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()
