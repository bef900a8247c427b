"""Files only their owner may read: QR codes and account cards carry credentials."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a file created 0600, and make an existing one 0600 too (os.open's mode
    only applies to a file it creates)."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)
