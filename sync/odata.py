"""Reading Central's OData feeds page by page (fetch only; no store, no transforms).

pyodk's `get_table` reads one response and does not page; Central emits `@odata.nextLink`
(`$skiptoken`) when `$top` is given and more rows remain, so pages are followed here through
pyodk's session. A reader thread fetches the next pages while the caller stores the current one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from sync.central import Central, CentralError

MAX_PAGES = 1_000_000  # a bound on any loop over pages; no form comes near it
# Pages read ahead of the one being stored: enough to ride out a slow commit or a slow answer,
# few enough that memory stays a few pages (a page of 1,000 rows is a few MB parsed).
PREFETCH_PAGES = 3
READER_JOIN_SECONDS = 5.0


@dataclass
class Page:
    rows: list[dict[str, Any]]
    next_link: str | None
    count: int | None = None
    url: str = ""


def submissions_path(central: Central, form_id: str) -> str:
    return central.path("projects/{project_id}/forms/{form_id}.svc/Submissions", form_id=form_id)


def same_origin(central: Central, link: str) -> str:
    """A nextLink on the origin nigraan was configured with.

    Central builds nextLinks from its DOMAIN setting, the address browsers use; nigraan may
    reach the same server by another (e.g. internal) address, and the session token should only
    go where central.base_url points.
    """
    parts = urlsplit(link)
    base = urlsplit(central.settings.base_url)
    return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))


def fetch_page(central: Central, url: str, params: Mapping[str, Any] | None = None) -> Page:
    """One OData response as a Page; Central's refusals become CentralError."""
    response = central.get(url, params=dict(params) if params else None)
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise CentralError(f"Central sent an OData page that is not JSON ({exc}).") from exc
    return Page(
        rows=body.get("value", []),
        next_link=body.get("@odata.nextLink"),
        count=body.get("@odata.count"),
        url=response.url,
    )


def read_pages(
    central: Central,
    url: str,
    params: Mapping[str, Any] | None = None,
    *,
    prefetch: bool = True,
    depth: int = PREFETCH_PAGES,
) -> Iterator[Page]:
    """Every page from `url` (+ params), then each @odata.nextLink as Central gave it.

    With `prefetch`, one reader thread fetches and parses pages into a queue of at most `depth`
    while the caller stores the ones it has, so a sync takes about as long as Central takes to
    answer, not that plus storing. The caller still sees the pages one by one in Central's order;
    what it has not taken yet is only in memory (a stopped sync reads it again). A failure of
    the reader (Central down, a refusal, a page that is not JSON) is raised here, in the caller,
    with its own type and message, after the pages read before it.
    """
    if not prefetch:
        page = fetch_page(central, url, params)
        for _ in range(MAX_PAGES):
            yield page
            if not page.next_link:
                return
            page = fetch_page(central, same_origin(central, page.next_link))
        return
    reader = PageReader(central, url, params, depth)
    reader.start()
    try:
        for _ in range(MAX_PAGES):
            item = reader.take()
            if item is None:
                return
            yield item
    finally:
        reader.stop()


class PageReader(threading.Thread):
    """The reader thread of `read_pages`: pages (or the reader's failure) through a bounded
    queue; `None` in the queue marks the end of the feed."""

    def __init__(self, central: Central, url: str, params: Mapping[str, Any] | None, depth: int):
        super().__init__(name="odata-reader", daemon=True)
        self.central, self.url, self.params = central, url, params
        self.pages: queue.Queue[Page | BaseException | None] = queue.Queue(maxsize=max(1, depth))
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            page = fetch_page(self.central, self.url, self.params)
            for _ in range(MAX_PAGES):
                if not self.put(page) or self.stopping.is_set() or not page.next_link:
                    break
                page = fetch_page(self.central, same_origin(self.central, page.next_link))
        except BaseException as exc:  # handed to the caller, raised there
            self.put(exc)
            return
        self.put(None)

    def put(self, item: Page | BaseException | None) -> bool:
        """Queue an item, waiting while the queue is full; False once the caller has stopped."""
        while not self.stopping.is_set():
            try:
                self.pages.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def take(self) -> Page | None:
        item = self.pages.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        """The caller is done (the end, its own error, or it stopped early): end the reader.

        A request in flight is not interrupted: it is waited for a few seconds, then left to end
        on its own (within central.timeout; its page is dropped), so a failing sync reports at
        once."""
        self.stopping.set()
        while True:  # let a reader blocked on a full queue see the stop at once
            try:
                self.pages.get_nowait()
            except queue.Empty:
                break
        self.join(timeout=READER_JOIN_SECONDS)
