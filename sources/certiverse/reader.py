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
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Generator, Iterable, Sequence

import numpy as np

from .client import CertiverseClient, CertiverseError, Query, TooManyRecordsError

log = logging.getLogger(__name__)

# Narrower queries covering a refused one; [] when other queries already cover it,
# None when it cannot be narrowed.
Split = Callable[[Query], Sequence[Query] | None]


class CapExceededError(CertiverseError):
    """A query is over the API's cap and no narrower partition of it exists."""


class SeenIds:
    """Primary keys already yielded in this run, in 8 bytes each.

    A run over a million vouchers would hold a million id strings (~120 MB) in a
    plain set; keeping 64-bit hashes in a sorted array keeps memory flat as the
    tenant grows. Two distinct ids share a hash with odds of about 1 in 10^7 for
    a few million ids in one run; the next run would load the one so dropped.
    """

    _MERGE_AT = 100_000

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.int64)
        self._recent: set[int] = set()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def __contains__(self, key: object) -> bool:
        h = hash(key)
        if h in self._recent:
            return True
        i = int(np.searchsorted(self._sorted, h))
        return i < len(self._sorted) and int(self._sorted[i]) == h

    def fresh(self, records: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
        """The records whose key was not seen before (also within the list); marks them seen."""
        hashes = np.fromiter((hash(r.get(key)) for r in records), dtype=np.int64, count=len(records))
        idx = np.searchsorted(self._sorted, hashes)
        idx[idx >= len(self._sorted)] = 0
        known = (self._sorted[idx] == hashes) if len(self._sorted) else np.zeros(len(records), dtype=bool)
        out = []
        for record, h, old in zip(records, hashes.tolist(), known.tolist()):
            if not old and h not in self._recent:
                self._recent.add(h)
                out.append(record)
        if len(self._recent) >= self._MERGE_AT:
            self._merge()
        return out

    def known(self, hashes: np.ndarray) -> np.ndarray:
        """Which of these id hashes (``hash(id)``) were seen: a boolean array."""
        self._merge()
        if not len(self._sorted):
            return np.zeros(len(hashes), dtype=bool)
        idx = np.minimum(np.searchsorted(self._sorted, hashes), len(self._sorted) - 1)
        return self._sorted[idx] == hashes

    def _merge(self) -> None:
        if not self._recent:
            return
        # Recent hashes are never in the sorted array already: concatenate and sort in place
        # (np.union1d would hold several copies of the array at once).
        merged = np.concatenate((self._sorted, np.fromiter(self._recent, dtype=np.int64, count=len(self._recent))))
        merged.sort()
        self._sorted, self._recent = merged, set()


@dataclass(frozen=True)
class ReadSummary:
    """What ``read_all`` did: queries answered in full, queries refused and split, and the filter
    sets (sorted names) of the queries answered."""

    answered: int
    refused: int
    filter_sets: frozenset[tuple[str, ...]]

    @property
    def read_exam_slices(self) -> bool:
        """Whether a ``storeExamCode`` query was read: those miss vouchers not linked to an exam."""
        return any("storeExamCode" in names for names in self.filter_sets)


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
    seen: SeenIds | None = None,
) -> Generator[list[dict[str, Any]], None, ReadSummary]:
    """Yield every record reachable through ``roots`` once, page by page; return a ``ReadSummary``.

    ``seen`` may be shared between calls to de-duplicate across them. Pages come in
    the order they arrive from ``workers`` threads; a bounded queue keeps memory flat.
    """
    seen = SeenIds() if seen is None else seen
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
    # Queries are handed to the pool a few at a time, not all at once: a plan of tens of
    # thousands of purchase queries would otherwise sit in the pool's queue as futures.
    limit = max(2, workers * 2)
    pending_roots = iter(roots)
    narrower: deque[Query] = deque()  # splits of refused queries go before the remaining roots
    inflight = answered = refused = 0
    filter_sets: set[tuple[str, ...]] = set()

    def submit_more() -> None:
        nonlocal inflight
        while inflight < limit:
            q = narrower.popleft() if narrower else next(pending_roots, None)
            if q is None:
                return
            pool.submit(fetch, q)
            inflight += 1

    try:
        submit_more()
        while inflight:
            kind, q, payload = results.get()
            if kind == "page":
                fresh = seen.fresh(payload, key)
                if fresh:
                    yield fresh
                continue
            inflight -= 1
            if kind == "error":
                raise payload
            if kind == "done":
                answered += 1
                filter_sets.add(tuple(sorted(q.params)))
            if kind == "split":
                refused += 1
                children = split(q)
                if children is None:
                    raise CapExceededError(
                        f"{q.describe()} matches more records than the API's cap and cannot be split "
                        "further; no records were skipped — the load stops here"
                    ) from payload
                log.info("%s is over the API's cap (422 on page %d): split into %d queries",
                         q.describe(), payload.page, len(children))
                narrower.extend(children)
            submit_more()
        return ReadSummary(answered, refused, frozenset(filter_sets))
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
