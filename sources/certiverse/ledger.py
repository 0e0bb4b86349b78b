"""What a read actually spends, per unit of the plan, beside what it expected and what the naive plan pays.

The plans choose from estimates (the purchases' counters, a small sample, the
warehouse), and estimates can be wrong. The ledger is how a read checks itself
while it runs: ``CountingClient`` charges every request to the unit it serves (a
program, or ``SHARED`` for slices every program uses, or ``LISTS`` for the
catalog), and the read compares each unit's spending with its estimate and with
what the naive plan would have paid (purchases by status, then every purchase's
vouchers one purchase at a time; ``plans.naive_requests``).

Counting requests here rather than in ``CertiverseClient.stats``: the client counts
per endpoint and outcome for the whole run; a plan needs them per unit of its own
making, as they happen, and the planners' unit tests run on a fake client.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Callable, Iterator

from .client import Query

SHARED = "(shared)"  # slices that serve every program read by exam
LISTS = "(lists)"  # partners, programs, purchases


class Ledger:
    """Requests spent per unit, thread-safe (workers charge, the planning thread reads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent: Counter[str] = Counter()

    def charge(self, units: tuple[str, ...]) -> None:
        """One request, shared evenly between ``units`` (an exam slice can serve several programs)."""
        with self._lock:
            for unit in units:
                self._spent[unit] += 1 / len(units)

    def spent(self, unit: str | None = None) -> float:
        """Requests charged to ``unit``, or to every unit."""
        with self._lock:
            return self._spent[unit] if unit is not None else sum(self._spent.values())

    def by_unit(self) -> dict[str, float]:
        with self._lock:
            return dict(self._spent)


class CountingClient:
    """A client that charges every request it sends to the units ``units_of`` names for its query.

    Only ``page`` and ``follow`` send requests; anything else goes to the client it wraps.
    """

    def __init__(self, client: Any, ledger: Ledger, units_of: Callable[[Query], tuple[str, ...]]) -> None:
        self._client, self.ledger, self._units_of = client, ledger, units_of

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def page(self, query: Query, number: int = 1) -> tuple[list[dict[str, Any]], str | None]:
        self.ledger.charge(self._units_of(query))  # refused or not, a request was sent
        return self._client.page(query, number)

    def follow(self, query: Query, next_link: str | None, after: int = 1) -> Iterator[list[dict[str, Any]]]:
        units = self._units_of(query)
        pages_ = self._client.follow(query, next_link, after)
        while True:
            try:
                page = next(pages_)
            except StopIteration:
                return
            except BaseException:
                self.ledger.charge(units)  # a refused page (a late 422) was a request too
                raise
            self.ledger.charge(units)
            yield page
