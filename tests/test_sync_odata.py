"""Reading OData pages ahead of storing them: the order of commits, resuming, reader failures."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from sync.central import Central, CentralError
from sync.odata import PREFETCH_PAGES, read_pages, submissions_path
from sync.pull import FormPuller, sync
from tests.central_records import numbered_rows
from tests.central_standin import CentralStandin, _read_skiptoken, admin_settings

FORM = "rec_visit"
N, PAGE = 50, 5


@pytest.fixture
def standin(central_dir):
    server = CentralStandin().serve()
    server.add_form((central_dir / "forms" / "rec_visit.xml").read_bytes())
    first = datetime.now(UTC) - timedelta(days=2)
    server.add_rows(FORM, numbered_rows(central_dir, N, first, prefix="pages"), keep_dates=True)
    yield server
    server.stop()


@pytest.fixture
def central(standin):
    settings = admin_settings(
        standin.base_url, page_size=PAGE, timeout=5.0, retries=2, retry_wait=0.01
    )
    client = Central(settings)
    yield client
    client.close()


def _pages_served(standin) -> int:
    return len([p for _, p, _ in standin.requests(".svc/Submissions?") if "%24expand=" in p])


def _cursor(link: str | None) -> str | None:
    """The instanceId a nextLink continues after (the stand-in's $skiptoken)."""
    if link is None:
        return None
    [token] = parse_qs(urlsplit(link).query)["$skiptoken"]
    return _read_skiptoken(token)["instanceId"]


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "odata-reader" and t.is_alive()]


def test_pages_are_read_ahead_but_committed_one_by_one_in_centrals_order(standin, central, store):
    newest_first = list(reversed(standin.form(FORM).order))
    seen = []

    def progress(_form, done, _total):  # called after a page and its next link are committed
        k = len(seen) + 1
        state = store.sync_state(puller.scope)
        seen.append((store.live_count(FORM), _cursor(state["resume_link"]), state["watermark"]))
        if k == 1:
            time.sleep(0.5)  # a slow commit: the reader goes on meanwhile, up to its bound
            ahead = _pages_served(standin)
            assert 1 + 2 <= ahead <= 1 + PREFETCH_PAGES + 1  # queued, plus one waiting to queue

    puller = FormPuller(central, store, FORM, progress)
    result = puller.run()
    assert result.new == N
    pages = N // PAGE
    assert [count for count, _, _ in seen] == [PAGE * k for k in range(1, pages + 1)]
    # Each saved link continues right after the rows stored so far, never further on.
    assert [cursor for _, cursor, _ in seen] == [
        *(newest_first[PAGE * k - 1] for k in range(1, pages)),
        None,
    ]
    assert all(watermark is None for _, _, watermark in seen)  # it moves after the whole pass
    assert store.sync_state(puller.scope)["watermark"]
    assert not _readers()


def test_a_store_failure_mid_pass_ends_the_reader_and_the_next_sync_resumes(
    standin, central, store, open_store
):
    class Stop(Exception):
        pass

    def progress(_form, _done, _total):
        if store.live_count(FORM) == 2 * PAGE:
            raise Stop  # e.g. the database went away after page 2 was committed

    with pytest.raises(Stop):
        FormPuller(central, store, FORM, progress).run()
    assert not _readers()  # the reader thread ended with the pass
    assert store.live_count(FORM) == 2 * PAGE
    served = _pages_served(standin)
    assert served <= 2 + PREFETCH_PAGES + 1  # it read ahead a few pages, not the whole feed

    [result] = sync(central, store, [FORM])
    assert result.resumed and result.new == N - 2 * PAGE
    assert store.live_count(FORM) == N
    # Only the pages not stored were asked again, from the saved link.
    assert _pages_served(standin) - served == N // PAGE - 2


def test_a_failure_in_the_reader_thread_is_raised_in_the_caller_after_the_pages_before_it(
    standin, central
):
    standin.fail(404, count=1, match="skiptoken")  # the second page is refused
    url = submissions_path(central, FORM)
    pages = read_pages(central, url, {"$top": PAGE, "$expand": "*"})
    first = next(pages)
    assert len(first.rows) == PAGE
    with pytest.raises(CentralError) as refused:
        next(pages)
    assert "Central refused GET" in refused.value.message and "404" in refused.value.message
    assert not _readers()


def test_a_refused_page_mid_pass_is_the_forms_problem_and_keeps_the_resume_link(
    standin, central, store
):
    standin.fail(403, count=1, match="skiptoken")
    [result] = sync(central, store, [FORM])
    assert result.refused and "403" in result.problems[0]
    assert store.live_count(FORM) == PAGE  # page 1 committed
    scope = FormPuller(central, store, FORM).scope
    assert _cursor(store.sync_state(scope)["resume_link"]) == standin.form(FORM).order[-PAGE]
    [again] = sync(central, store, [FORM])
    assert again.resumed and store.live_count(FORM) == N
