"""Faults injected into nigraan's store process for the health tests (tests/test_health.py).

Python imports `sitecustomize` at start-up from PYTHONPATH; the tests put this folder there and
name a file in TEST_STORE_FAULTS. While that file says `enospc` or `eio`, the store process
(and only it) fails writes the way SQLite does on a full or failing disk, its WAL checkpoints
fail, and `os.fsync` raises the matching OSError; `checkpoint-eio` fails only the checkpoints
(the main database's fsync failing while the WAL still takes commits). Empty: no fault.
"""

import os

_FAULTS = os.environ.get("TEST_STORE_FAULTS")

if _FAULTS:
    import errno
    import multiprocessing
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    _SQLITE = {"enospc": "database or disk is full", "eio": "disk I/O error"}
    _ERRNO = {"enospc": errno.ENOSPC, "eio": errno.EIO}
    _WRITES = ("INSERT", "UPDATE", "DELETE")

    def _fault() -> str:
        if multiprocessing.current_process().name != "nigraan-store":
            return ""
        try:
            with open(_FAULTS, encoding="utf-8") as file:
                return file.read().strip()
        except OSError:
            return ""

    @event.listens_for(Engine, "before_cursor_execute")
    def _inject(conn, cursor, statement, parameters, context, executemany):
        fault = _fault()
        if not fault or conn.dialect.name != "sqlite":
            return
        head = statement.lstrip().upper()
        if head.startswith("PRAGMA WAL_CHECKPOINT"):
            raise sqlite3.OperationalError(_SQLITE.get(fault, "disk I/O error"))
        if fault in _SQLITE and head.startswith(_WRITES):
            raise sqlite3.OperationalError(_SQLITE[fault])

    _real_fsync = os.fsync

    def _fsync(fd):
        fault = _fault()
        if fault in _ERRNO:
            raise OSError(_ERRNO[fault], os.strerror(_ERRNO[fault]))
        return _real_fsync(fd)

    os.fsync = _fsync
