"""Python's cyclic garbage collector held off while a batch is written.

A batch keeps every typed row of its submissions alive until it is flushed, so the collector's
full passes walk ever more objects that are not garbage: about a quarter of ingest's CPU time
went there (store/README.md). Rows hold no reference cycles; reference counting frees them.
The collector runs again when the last batch in the process ends (threads of the server share
the flag, hence the count).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Pause:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holders = 0
        self.was_enabled = False


_pause = _Pause()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold the cyclic collector off inside the block (nested and threaded uses counted)."""
    with _pause.lock:
        if _pause.holders == 0:
            _pause.was_enabled = gc.isenabled()
            gc.disable()
        _pause.holders += 1
    try:
        yield
    finally:
        with _pause.lock:
            _pause.holders -= 1
            if _pause.holders == 0 and _pause.was_enabled:
                gc.enable()
