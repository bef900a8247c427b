"""The README's module map holds: each package imports only the packages below it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = {"nigraan", "forms", "store", "sync", "server", "reports"}
# package -> the packages of ours it may import (itself always)
ALLOWED = {
    "nigraan": set(),
    "forms": {"nigraan"},
    "store": {"nigraan"},
    "sync": {"store", "nigraan"},
    "server": {"sync", "reports", "store", "nigraan"},  # scheduled sync; indicators; exports
    "reports": {"store", "nigraan"},
    "nigraan.cli": OURS,
}


def _imported(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


def test_each_package_imports_only_what_the_module_map_allows():
    wrong = []
    for package in OURS:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            key = "nigraan.cli" if relative.parts[:2] == ("nigraan", "cli") else package
            for name in sorted(_imported(path) - ALLOWED[key] - {package}):
                wrong.append(f"{relative} imports {name}")
    assert not wrong, "against the README's module map:\n" + "\n".join(wrong)
