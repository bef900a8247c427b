"""Reading Central's OData feeds page by page (fetch only; no store, no transforms).

pyodk's `get_table` reads one response and does not page; Central emits `@odata.nextLink`
(`$skiptoken`) when `$top` is given and more rows remain, so pages are followed here through
pyodk's session. The next page is fetched while the caller stores the current one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from sync.central import Central, CentralError

MAX_PAGES = 1_000_000  # a bound on any loop over pages; no form comes near it


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
) -> Iterator[Page]:
    """Every page from `url` (+ params), then each @odata.nextLink as Central gave it."""
    if not prefetch:
        page = fetch_page(central, url, params)
        for _ in range(MAX_PAGES):
            yield page
            if not page.next_link:
                return
            page = fetch_page(central, same_origin(central, page.next_link))
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="odata-prefetch") as pool:
        page = fetch_page(central, url, params)
        for _ in range(MAX_PAGES):
            following = (
                pool.submit(fetch_page, central, same_origin(central, page.next_link))
                if page.next_link
                else None
            )
            try:
                yield page
            except GeneratorExit:
                if following is not None:
                    following.cancel()
                raise
            if following is None:
                return
            page = following.result()
