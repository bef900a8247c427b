"""Write the next migration of the store's fixed tables (see store/migrations/README.md).

    .venv/bin/python -m store.migrations.new "what it changes"           # from store/tables.py
    .venv/bin/python -m store.migrations.new --empty "what it changes"   # written by hand

Alembic compares `store.tables.metadata` with a scratch SQLite database brought to the newest
migration and writes the difference as `versions/YYYYMMDD_NNNN_<slug>.py`, revision "NNNN"
(the next number), revising the newest one. Read what it wrote before committing it.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

from alembic import command

from store.database import MIGRATIONS, alembic_config, create_store_engine

VERSIONS = MIGRATIONS / "versions"
_REVISION = re.compile(r"""^revision\s*=\s*["'](\d{4})["']""", re.MULTILINE)


def next_revision(versions: Path = VERSIONS) -> str:
    """The next revision id: one more than the highest four-digit id in `versions`."""
    ids = [
        int(m.group(1))
        for p in versions.glob("*.py")
        if (m := _REVISION.search(p.read_text(encoding="utf-8")))
    ]
    return f"{max(ids, default=0) + 1:04d}"


def new_migration(
    message: str, *, empty: bool = False, versions: Path = VERSIONS, today: date | None = None
) -> Path:
    """Write the next migration into `versions`; returns its path."""
    day = today or datetime.now(UTC).date()
    revision = next_revision(versions)
    with tempfile.TemporaryDirectory(prefix="nigraan-migration-") as scratch:
        engine = create_store_engine(f"sqlite:///{Path(scratch) / 'head.sqlite3'}")
        try:
            with engine.begin() as conn:
                config = alembic_config(conn)
                for separator in ("path_separator", "version_path_separator"):  # new, old Alembic
                    config.set_main_option(separator, "os")
                config.set_main_option("version_locations", str(versions))
                # %% : Alembic's config is a ConfigParser, which reads % itself.
                config.set_main_option("file_template", f"{day:%Y%m%d}_%%(rev)s_%%(slug)s")
                command.upgrade(config, "head")  # the scratch database at the newest migration
                script = command.revision(
                    config, message=message, autogenerate=not empty, rev_id=revision
                )
        finally:
            engine.dispose()
    return Path(script.path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m store.migrations.new", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("message", help="what the migration changes (one line; names the file)")
    parser.add_argument(
        "--empty", action="store_true", help="no autogenerate: upgrade() to write by hand"
    )
    args = parser.parse_args(argv)
    path = new_migration(args.message, empty=args.empty)
    print(f"Wrote {path}. Read it, adjust it, and run the store tests (SQLite and PostgreSQL).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
