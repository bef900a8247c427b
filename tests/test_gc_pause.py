"""The cyclic collector is held off inside a batch and back on after the last one ends."""

from __future__ import annotations

import gc
import threading

from store.gc_pause import collector_paused
from store.store import Incoming


def test_the_collector_is_off_inside_and_on_again_after():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer batch still runs
    assert gc.isenabled()


def test_a_batch_ending_in_another_thread_leaves_it_off_for_the_one_still_running():
    inside, release = threading.Event(), threading.Event()

    def other():
        with collector_paused():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    with collector_paused():
        thread.start()
        assert inside.wait(10)
    assert not gc.isenabled()  # the other thread's batch is still open
    release.set()
    thread.join(10)
    assert gc.isenabled()


def test_a_collector_switched_off_by_the_process_stays_off():
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_ingest_leaves_the_collector_on(open_store, central_dir):
    store = open_store()
    store.register_form((central_dir / "forms" / "rec_visit.xml").read_bytes())
    xml = sorted((central_dir / "submissions").glob("*.xml"))[0].read_bytes()
    results = store.ingest_many([Incoming(xml)])
    assert results[0].form_id == "rec_visit"
    assert gc.isenabled()
