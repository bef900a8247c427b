"""A sync's downloads of submission attachments (photos, recordings) from Central.

The files the store's submissions name but do not hold are asked for by
`central.download_workers` threads at once, each on its own connection of the shared session,
and stored by the calling thread in batches (one transaction each) while the workers go on. A
row read in this run says how many of its files Central has (`__system.attachmentsPresent` of
`attachmentsExpected`): all of them, and they are asked for by name at once; none, and nothing
is asked; some, or a submission not read in this run, and Central's listing
(`…/submissions/<id>/attachments`) says which.

A file that does not come (refused, or Central failing for it after every retry) is named in the
problems and stays missing, so the next sync asks for it again; Central failing for many
submissions in a row is an outage: the downloads stop, what came is stored, and the caller
raises it as it does any other.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from store.store import Store
from sync.central import Central, CentralError, CentralUnavailable

# Downloaded files are stored in transactions of at most this many files or bytes (whichever
# comes first): few commits, little held in memory while a batch fills.
FILES_PER_COMMIT = 50
BYTES_PER_COMMIT = 16 * 1024 * 1024
# Submissions whose files may be downloaded but not yet stored (or on their way): the workers
# go on while a batch is committed, and memory stays bounded when storing is the slower part.
AHEAD = 2 * FILES_PER_COMMIT
BASE = "projects/{project_id}/forms/{form_id}/submissions/{root_id}/attachments"

File = tuple[str, str, bytes, str | None]  # instanceID, name, content, content type


@dataclass
class FetchedFiles:
    """What a download worker brings back for one submission."""

    files: list[File] = field(default_factory=list)
    waiting: int = 0  # named, but Central does not have them yet
    problems: list[str] = field(default_factory=list)
    unavailable: CentralUnavailable | None = None  # Central failed after every retry
    skipped: bool = False  # not asked for: the downloads had stopped


@dataclass
class Downloads:
    """What a form's downloads did."""

    stored: int = 0
    waiting: int = 0
    problems: list[str] = field(default_factory=list)
    # submissions that got an encrypted part (`.enc`): their envelope may be whole now
    encrypted: set[str] = field(default_factory=set)
    outage: CentralUnavailable | None = None  # set: the downloads stopped; raise it


def download_missing(
    central: Central, store: Store, form_id: str, file_counts: Mapping[str, tuple[int, int]]
) -> Downloads:
    """Download and store the files `form_id`'s submissions name but the store lacks.

    `file_counts`: {root id: (attachmentsPresent, attachmentsExpected)} of the rows read in
    this run.
    """
    done = Downloads()
    missing = store.missing_attachments(form_id)
    if not missing:
        return done
    workers = central.settings.download_workers
    slots = threading.BoundedSemaphore(AHEAD)
    stop = threading.Event()

    def task(root_id: str, files: list[tuple[str, str]]) -> FetchedFiles:
        while not slots.acquire(timeout=0.1):  # wait while AHEAD results are not stored
            if stop.is_set():
                return FetchedFiles(skipped=True)
        if stop.is_set():
            slots.release()
            return FetchedFiles(skipped=True)
        return fetch_files(central, form_id, root_id, files, file_counts.get(root_id))

    batch: list[File] = []
    batch_bytes = 0
    held = 0  # slots of the results in `batch`
    failing = 0  # submissions in a row whose files Central failed to give

    def commit() -> None:
        nonlocal batch, batch_bytes, held
        if batch:
            done.stored += store.add_attachments(form_id, batch)
            done.encrypted.update(f[0] for f in batch if f[1].endswith(".enc"))
        for _ in range(held):
            slots.release()
        batch, batch_bytes, held = [], 0, 0

    pool = ThreadPoolExecutor(workers, thread_name_prefix="attachments")
    try:
        # No list of the futures kept here: as_completed lets go of each one it has given, so
        # a stored file's bytes are freed (a list would hold every file until the end).
        tasks = (pool.submit(task, root_id, files) for root_id, files in missing.items())
        for future in as_completed(list(tasks)):
            fetched = future.result()
            del future
            if fetched.skipped:
                continue  # after an outage: it holds no slot
            held += 1
            done.waiting += fetched.waiting
            done.problems += fetched.problems
            batch += fetched.files
            batch_bytes += sum(len(f[2]) for f in fetched.files)
            if fetched.unavailable is None:
                failing = 0
            else:
                failing += 1
                if failing >= 2 * workers and done.outage is None:
                    done.outage = fetched.unavailable
                    stop.set()
            # (results without files, waiting or failed, count too: they hold slots)
            if max(held, len(batch)) >= FILES_PER_COMMIT or batch_bytes >= BYTES_PER_COMMIT:
                commit()
        commit()
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
    return done


def fetch_files(
    central: Central,
    form_id: str,
    root_id: str,
    files: list[tuple[str, str]],
    counts: tuple[int, int] | None,
) -> FetchedFiles:
    """One submission's missing files from Central (a download worker's task)."""
    fetched = FetchedFiles()
    if counts is not None and counts[0] == 0:  # Central has none of its files yet
        fetched.waiting = len(files)
        return fetched
    if counts is None or counts[0] < counts[1]:
        try:
            listing = central.get_json(central.path(BASE, form_id=form_id, root_id=root_id))
        except CentralError as exc:  # e.g. deleted in Central since this pass
            fetched.problems.append(f"{root_id}: attachments not listed ({exc.message})")
            if isinstance(exc, CentralUnavailable):
                fetched.unavailable = exc
            return fetched
        present = {entry["name"] for entry in listing if entry.get("exists")}
        fetched.waiting = sum(1 for _, name in files if name not in present)
        files = [(i, name) for i, name in files if name in present]
    for instance_id, name in files:
        path = central.path(BASE + "/{name}", form_id=form_id, root_id=root_id, name=name)
        try:
            response = central.get(path)
        except CentralError as exc:
            fetched.problems.append(
                f"{root_id}: attachment {name} not downloaded ({exc.message}); "
                "the next sync asks for it again"
            )
            if isinstance(exc, CentralUnavailable):
                fetched.unavailable = exc
            continue
        content_type = response.headers.get("Content-Type", "").split(";")[0] or None
        fetched.files.append((instance_id, name, response.content, content_type))
    return fetched
