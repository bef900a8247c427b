"""Every module of nigraan's packages imports on its own, in a fresh interpreter (no cycles)."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("nigraan", "forms", "server", "sync", "store")


def modules() -> list[str]:
    """Dotted names of every module of PACKAGES; Alembic's migration scripts are not modules
    (Alembic runs them), so store/migrations is left out."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).with_suffix("")
            if relative.parts[:2] == ("store", "migrations"):
                continue
            parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
            found.append(".".join(parts))
    return found


def _import_alone(module: str) -> tuple[str, int, str]:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return module, done.returncode, done.stderr.strip().splitlines()[-1:]


def test_every_module_imports_on_its_own():
    names = modules()
    assert {
        "nigraan.cli",
        "nigraan.cli.common",
        "nigraan.cli.central",
        "store.instance_files",
        "sync.pull",
        "server.openrosa",
        "forms.build",
    } <= set(names)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_import_alone, names))
    failed = [f"{module}: {last}" for module, code, last in results if code != 0]
    assert not failed, "\n".join(failed)
