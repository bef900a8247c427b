"""Files only their owner may read: the store, keys, QR codes and account cards."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path


def write_private(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a file created 0600, and make an existing one 0600 too (os.open's mode
    only applies to a file it creates)."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)


@dataclass(frozen=True)
class ModeChange:
    """A file or folder that others could reach, and what was done about it."""

    path: Path
    old: int
    new: int
    error: str | None = None  # why it could not be fixed (e.g. owned by another user)

    def __str__(self) -> str:
        if self.error:
            return (
                f"{self.path} has mode {self.old:04o} (others may read it) and could not "
                f"be made {self.new:04o}: {self.error}"
            )
        return f"{self.path} had mode {self.old:04o} (others could read it); made {self.new:04o}"


def _sqlite_files(database_url: str | None) -> list[Path]:
    """The SQLite store's file and its companions (WAL, SHM, rollback journal), if any."""
    if not database_url:
        return []
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(database_url)
    except ArgumentError:  # the store reports an unreadable URL when it opens
        return []
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return []
    base = Path(url.database)
    return [base, *(base.with_name(base.name + s) for s in ("-wal", "-shm", "-journal"))]


def _tighten(path: Path, wanted_most: int, changes: list[ModeChange]) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        return  # a link's target is not ours to change through it
    old = stat.S_IMODE(info.st_mode)
    new = old & wanted_most
    if stat.S_ISDIR(info.st_mode):
        new |= 0o700  # the owner keeps reaching her own folder
    else:
        new |= 0o600
    if new == old:
        return
    try:
        os.chmod(path, new)
    except OSError as exc:
        changes.append(ModeChange(path, old, new, error=exc.strerror or str(exc)))
    else:
        changes.append(ModeChange(path, old, new))


def tighten_instance_modes(
    instance_dir: str | os.PathLike, database_url: str | None = None
) -> list[ModeChange]:
    """Make `instance_dir` and everything in it owner-only (folders 0700, files 0600 at most),
    and the SQLite store's file, WAL and SHM 0600 wherever they are; returns what was looser.

    The instance folder holds the store, keys, device account cards and exports: a umask of
    0002 or 0022 would leave them readable by every account on the machine."""
    changes: list[ModeChange] = []
    root = Path(instance_dir)
    if root.is_dir() and not root.is_symlink():
        _tighten(root, 0o700, changes)
        for folder, dirs, files in os.walk(root):  # never follows links
            for name in dirs:
                _tighten(Path(folder) / name, 0o700, changes)
            for name in files:
                _tighten(Path(folder) / name, 0o600, changes)
    for path in _sqlite_files(database_url):
        _tighten(path, 0o600, changes)
    return list({c.path: c for c in changes}.values())


def warn_and_tighten(instance_dir, database_url, log: logging.Logger) -> list[ModeChange]:
    """`tighten_instance_modes`, with a warning line per file or folder that was looser."""
    changes = tighten_instance_modes(instance_dir, database_url)
    for change in changes:
        log.warning("%s", change)
    return changes
