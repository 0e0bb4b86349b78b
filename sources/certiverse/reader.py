"""Read a set of queries completely: concurrently, splitting any the API refuses as too large.

The API answers 422 when a query matches more than its record cap, on the first
page or only on a page past the cap. A refused query is replaced by narrower
queries that together cover it (the ``split`` callable decides how), recursively.
Records reachable through two queries (overlapping partitions, partial name
matches, pages read before a late 422) are yielded once, by primary key.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Sequence

from .client import CertiverseClient, CertiverseError, Query, TooManyRecordsError

log = logging.getLogger(__name__)

Split = Callable[[Query], Sequence[Query] | None]


class CapExceededError(CertiverseError):
    """A query is over the API's cap and no narrower partition of it exists."""


def no_split(query: Query) -> None:
    """For endpoints with nothing to split on."""
    return None


def read_all(
    client: CertiverseClient,
    roots: Iterable[Query],
    split: Split = no_split,
    *,
    workers: int = 4,
    key: str = "id",
    seen: set[Any] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Yield every record reachable through ``roots`` once, page by page.

    ``seen`` may be shared between calls to de-duplicate across them. Pages come in
    the order they arrive from ``workers`` threads; a bounded queue keeps memory flat.
    """
    seen = set() if seen is None else seen
    results: queue.Queue[tuple[str, Query, Any]] = queue.Queue(maxsize=max(4, workers * 4))
    stop = threading.Event()

    def fetch(q: Query) -> None:
        try:
            for page in client.pages(q):
                if not _put(results, stop, ("page", q, page)):
                    return
            _put(results, stop, ("done", q, None))
        except TooManyRecordsError as exc:
            _put(results, stop, ("split", q, exc))
        except BaseException as exc:  # handed to the consumer thread, which re-raises it
            _put(results, stop, ("error", q, exc))

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="certiverse")
    pending = 0
    try:
        for q in roots:
            pool.submit(fetch, q)
            pending += 1
        while pending:
            kind, q, payload = results.get()
            if kind == "page":
                fresh = [r for r in payload if r.get(key) not in seen]
                seen.update(r.get(key) for r in fresh)
                if fresh:
                    yield fresh
                continue
            pending -= 1
            if kind == "error":
                raise payload
            if kind == "split":
                children = split(q)
                if not children:
                    raise CapExceededError(
                        f"{q.describe()} matches more records than the API's cap and cannot be split "
                        "further; no records were skipped — the load stops here"
                    ) from payload
                log.info("%s is over the API's cap (422 on page %d): split into %d queries",
                         q.describe(), payload.page, len(children))
                for child in children:
                    pool.submit(fetch, child)
                    pending += 1
    finally:
        stop.set()
        _drain(results)
        pool.shutdown(wait=True, cancel_futures=True)


def _put(results: queue.Queue, stop: threading.Event, item: tuple) -> bool:
    """Put unless the consumer has stopped; False tells the worker to quit."""
    while not stop.is_set():
        try:
            results.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _drain(results: queue.Queue) -> None:
    while True:
        try:
            results.get_nowait()
        except queue.Empty:
            return
