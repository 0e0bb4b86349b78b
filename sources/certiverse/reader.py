"""Read a set of queries completely: concurrently, splitting any the API refuses as too large.

The API answers 422 when a query matches more than its record cap, on the first
page or only on a page past the cap. A refused query is replaced by narrower
queries that together cover it (the ``split`` callable decides how), recursively.
Records reachable through two queries (overlapping partitions, partial name
matches, pages read before a late 422) are yielded once, by primary key.

When the consumer goes away before the end (an error, a signal, a generator closed
early), the workers are told to stop and the client is stopped: requests in flight
are abandoned (nobody waits for them, and their threads never hold up the process's
exit), and no retry, backoff or pause goes on.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Generator, Iterable, Sequence

import numpy as np

from .client import BadRequestError, CertiverseClient, CertiverseError, ClientStopped, Query, TooManyRecordsError

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


@dataclass(frozen=True)
class _Task:
    """Part of a query's read: its first page (then the reader decides), one page, or a page and all after it."""

    query: Query
    page: int = 1
    follow: bool = True  # go on through nextLink after this page
    fan_out: bool = True  # may ask for the query's later pages by number


# Not worth fetching side by side below this many pages: a short query's pages come soon enough.
FAN_OUT_MIN_PAGES = 3


def read_all(
    client: CertiverseClient,
    roots: Iterable[Query],
    split: Split = no_split,
    *,
    workers: int = 4,
    key: str = "id",
    seen: SeenIds | None = None,
    expected: Callable[[Query], int | None] | None = None,
) -> Generator[list[dict[str, Any]], None, ReadSummary]:
    """Yield every record reachable through ``roots`` once, page by page; return a ``ReadSummary``.

    ``seen`` may be shared between calls to de-duplicate across them. Pages come in
    the order they arrive from ``workers`` threads; a bounded queue keeps memory flat.

    ``expected`` tells how many records a query should hold, where the caller knows
    (from the purchases' counters, or the warehouse). ``nextLink`` only reveals one page
    at a time, so a long query would be read one page after another; for a query
    expected to span several pages, once its first page has told the page size, the
    pages up to the expected last one are asked for by number side by side, and the
    last of them follows ``nextLink`` on. A guess too high costs a request per empty
    page; too low, only time: records are never lost either way.
    """
    seen = SeenIds() if seen is None else seen
    results: queue.Queue[tuple[str, _Task, Any]] = queue.Queue(maxsize=max(4, workers * 4))
    stop = threading.Event()

    def fetch(task: _Task) -> None:
        try:
            q = task.query
            data, next_link = client.page(q, task.page)
            if not _put(results, stop, ("page", task, data)):
                return
            last = _fan_out_until(expected, task, len(data), next_link)
            if last:
                _put(results, stop, ("fan_out", task, last))
                return
            if task.follow:
                for data in client.follow(q, next_link, task.page):
                    if not _put(results, stop, ("page", task, data)):
                        return
            _put(results, stop, ("done", task, None))
        except TooManyRecordsError as exc:
            _put(results, stop, ("split", task, exc))
        except ClientStopped:
            return  # the consumer went away: nobody reads what this worker would say
        except BadRequestError as exc:
            # The reference does not say what a page past the last one answers (the simulator: an
            # empty page). Should a page asked for by number be refused, the query is read again
            # from its first page, one page after another.
            _put(results, stop, ("sequential" if task.page > 1 else "error", task, exc))
        except BaseException as exc:  # handed to the consumer thread, which re-raises it
            _put(results, stop, ("error", task, exc))

    pool = _Workers(fetch, max(1, workers), stop)
    # Queries are handed to the pool a few at a time, not all at once: a plan of tens of
    # thousands of purchase queries would otherwise sit in the pool's queue as futures.
    limit = max(2, workers * 2)
    pending_roots = iter(roots)
    ready: deque[_Task] = deque()  # pages of queries under way and splits of refused ones go first
    inflight = answered = 0
    tasks_left: dict[Query, int] = {}  # tasks of each query not yet done
    refused: set[Query] = set()
    sequential: set[Query] = set()  # queries whose numbered pages were refused: read page after page
    filter_sets: set[tuple[str, ...]] = set()

    def add(tasks: Sequence[_Task], first: bool = False) -> None:
        """Queue tasks (a query's later pages go before other queries)."""
        for task in tasks:
            tasks_left[task.query] = tasks_left.get(task.query, 0) + 1
        if first:
            ready.extendleft(reversed(tasks))
        else:
            ready.extend(tasks)

    def submit_more() -> None:
        nonlocal inflight
        while inflight < limit:
            if not ready:
                root = next(pending_roots, None)
                if root is None:
                    return
                add([_Task(root)])
            pool.submit(ready.popleft())
            inflight += 1

    def task_done(q: Query) -> bool:
        """Count one task of ``q`` done; True when that was its last."""
        tasks_left[q] -= 1
        if tasks_left[q]:
            return False
        del tasks_left[q]
        return True

    completed = False
    try:
        submit_more()
        while inflight:
            kind, task, payload = results.get()
            q = task.query
            if kind == "page":
                fresh = seen.fresh(payload, key)
                if fresh:
                    yield fresh
                continue
            inflight -= 1
            if kind == "error":
                raise payload
            if kind == "fan_out":
                add([_Task(q, n, follow=n == payload) for n in range(2, payload + 1)], first=True)
            elif kind == "sequential" and q not in sequential and q not in refused:
                log.info("%s: page %d asked for by number was refused (%s); reading the query page after page",
                         q.describe(), task.page, payload)
                sequential.add(q)
                add([_Task(q, fan_out=False)], first=True)
            last = task_done(q)
            if kind == "split" and q not in refused:
                # Another page of the same query may be refused too: the query is split once.
                refused.add(q)
                children = split(q)
                if children is None:
                    raise CapExceededError(
                        f"{q.describe()} matches more records than the API's cap and cannot be split "
                        "further; no records were skipped — the load stops here"
                    ) from payload
                log.info("%s is over the API's cap (422 on page %d): split into %d queries",
                         q.describe(), payload.page, len(children))
                add([_Task(c) for c in children])
            elif last and q not in refused:
                answered += 1
                filter_sets.add(tuple(sorted(q.params)))
            submit_more()
        completed = True
        return ReadSummary(answered, len(refused), frozenset(filter_sets))
    finally:
        stop.set()
        if not completed:
            # Workers may be waiting out a pause or an outage inside the client (minutes, up to the
            # retry budget): stopping it ends those waits, so the workers end instead of retrying.
            client.stop()
        pool.shutdown()
        _drain(results)


class _Workers:
    """Daemon threads running ``fetch`` on the tasks handed to them, until ``stop`` is set.

    Written here rather than taken from concurrent.futures: its pool joins its threads at
    interpreter exit, so a worker inside a request (30 s of timeout, more with an API that
    hangs and retries) kept a stopped run alive after its error was printed. Nothing waits for
    these: told to stop, an idle worker ends at once, a busy one after the request it is in.
    """

    def __init__(self, fetch: Callable[[_Task], None], count: int, stop: threading.Event) -> None:
        self._fetch, self._count, self._stop = fetch, count, stop
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._started = 0

    def submit(self, task: _Task) -> None:
        """Hand ``task`` to the next free worker (starting one, up to ``count``)."""
        self._tasks.put(task)
        if self._started < self._count:
            self._started += 1
            threading.Thread(target=self._work, name=f"certiverse-reader-{self._started}", daemon=True).start()

    def shutdown(self) -> None:
        """Wake the idle workers so they end now; does not wait for busy ones (``stop`` ends them)."""
        for _ in range(self._started):
            self._tasks.put(None)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                task = self._tasks.get(timeout=1.0)
            except queue.Empty:
                continue
            if task is None:
                return
            self._fetch(task)


def _fan_out_until(expected: Callable[[Query], int | None] | None, task: _Task, got: int,
                   next_link: str | None) -> int:
    """The last page to ask for by number after this first page, or 0 to follow ``nextLink`` instead."""
    if expected is None or not task.fan_out or task.page != 1 or not next_link or not got:
        return 0
    n = expected(task.query)
    last = -(-n // got) if n else 0  # a first page with a next page is a full page
    return last if last >= FAN_OUT_MIN_PAGES else 0


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
