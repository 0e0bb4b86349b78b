"""How tonight's vouchers are read: a full read or a nightly read, decided here from what is known.

Glossary (these words mean this everywhere in the source):

* **open**: a voucher that is unused, active and not expired. It can change any
  day (assigned, reserved, used, deactivated), so a nightly run re-reads every
  voucher that was open when the last run started.
* **settled**: used, deactivated, or expired unused. It can still change (the
  expiry moved, re-activated), only rarely.
* **live**: unused and active as the warehouse last loaded it; a live voucher is
  open unless it has expired since.
* **linked**: carrying a ``storeExamCode``. Only linked vouchers are reached by
  exam slices (``storeExamCode=E``); an unlinked one only through its purchase
  (or its own code).
* **read by purchase** (a program): each of its purchases read once, whole
  (``purchaseCode=P``), instead of by exam slices and a completion pass.
* **completion pass**: after exam slices, the purchases whose vouchers seen fall
  short of what their counters say are read whole.
* **rolling re-check**: each settled voucher belongs to one night of
  ``recheck_nights`` (by a stable hash of the query that reads it); each night
  re-reads that night's share, so every settled voucher is re-read at least once
  in ``recheck_nights`` nights.
* **now**: the earlier of the API's clock (the ``Date`` header of its first answer
  this run) and this machine's at that answer; ``as_of`` overrides it in tests. Both
  clocks are wrong sometimes, and only a clock ahead of the truth loses changes: it
  judges open vouchers expired, and the nightly plan stops re-reading them. A clock
  behind costs at most a few vouchers re-read that had just expired.

``plan_voucher_read`` takes the run's catalog, the warehouse's snapshot and the
resource state, and returns a ``VoucherRead``: its pages, and the state to keep.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from .catalog import Catalog
from .nightly import NightlyRead, expected_open_or_counted, plan_nightly
from .plans import (
    FullRead,
    LinkRates,
    choose_programs_read_by_purchase,
    estimated_requests,
    over_cap_slices,
    voucher_facts,
    voucher_split,
)
from .snapshot import Snapshot

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 100  # only for estimates, before any page has told the real one
CLOCKS_APART = dt.timedelta(days=1)  # the API's clock and this machine's differ by more: the summary says so
CLOCK_STATE_KEY = "api_clock_ahead_s"  # the API's clock minus this machine's, in the vouchers resource state


def api_now(catalog: Catalog, as_of: dt.datetime | None) -> dt.datetime:
    """``as_of``, else the earlier of the API's clock and this machine's, else this machine's (the API sent no
    ``Date`` header: a warning)."""
    if as_of is not None:
        return as_of if as_of.tzinfo else as_of.replace(tzinfo=dt.timezone.utc)
    stamped, offset = catalog.client.api_time(), catalog.client.clock_offset()
    if stamped is None or offset is None:
        log.warning("the API sent no Date header: judging expiry by this machine's clock")
        return dt.datetime.now(dt.timezone.utc)
    if abs(offset) > CLOCKS_APART:
        log.warning("%s; judging expiry by the earlier of the two", clock_sentence(offset.total_seconds()))
    return min(stamped, stamped - offset)


def clock_sentence(api_ahead_seconds: float) -> str:
    """The API's clock against this machine's, in words."""
    days = abs(api_ahead_seconds) / 86_400
    return f"the API's clock is {days:,.1f} days {'ahead of' if api_ahead_seconds > 0 else 'behind'} this machine's"


def clock_note(state: Mapping[str, Any]) -> str | None:
    """A sentence for the summary and ``status`` when the last read found the clocks more than a day apart."""
    offset = state.get(CLOCK_STATE_KEY)
    if offset is None or abs(offset) <= CLOCKS_APART.total_seconds():
        return None
    return f"Clocks: {clock_sentence(offset)}; expiry was judged by the earlier of the two."


def known_unlinked(snapshot: Snapshot) -> frozenset[str]:
    """Purchases the warehouse holds unlinked vouchers of."""
    live = snapshot.live
    return frozenset(set(snapshot.unlinked_settled) | live.purchase_codes(live.columns.exam < 0))


@dataclass
class VoucherRead:
    """One run's read of the vouchers: ``pages`` to yield, then ``next_state`` to keep."""

    reader: FullRead | NightlyRead
    mode: str  # "full" or "nightly"
    now: dt.datetime
    night: int  # the run's count of nights since the last full read (the rolling night is this mod N)
    clock_offset: dt.timedelta | None = None  # the API's clock minus this machine's, when known

    def pages(self, workers: int) -> Iterator[list[dict[str, Any]]]:
        return self.reader.pages(workers)

    def next_state(self) -> dict[str, Any]:
        """The resource state after the read; a full read re-checks everything, so the rolling re-check
        starts over."""
        state: dict[str, Any] = {"mode": self.mode, "read_at": self.now.isoformat()}
        if self.clock_offset is not None:
            state[CLOCK_STATE_KEY] = round(self.clock_offset.total_seconds())
        if self.mode == "full":
            return {**state, "night": 0, "last_full_at": self.now.isoformat(), "last_full": self.reader.counts}
        return {**state, "night": self.night + 1, "last_nightly": self.reader.counts}


def plan_voucher_read(catalog: Catalog, previous: Snapshot | None, state: Mapping[str, Any], recheck_nights: int,
                      as_of: dt.datetime | None = None) -> VoucherRead:
    """A full read without a snapshot; else tonight's nightly plan, unless it costs no less than a full read."""
    facts = voucher_facts(catalog.programs(), catalog.purchases())  # read first: their answers carry the clock
    now = api_now(catalog, as_of)
    offset = catalog.client.clock_offset() if as_of is None else None  # as_of: the clocks decided nothing
    page = catalog.client.page_size or DEFAULT_PAGE_SIZE
    night = int(state.get("night", 0))
    if previous is None:
        return VoucherRead(FullRead(catalog, page), "full", now, night, offset)
    cap = catalog.record_cap
    known = known_unlinked(previous)
    over = over_cap_slices(facts, cap)
    rates = LinkRates(known=known)
    by_purchase = choose_programs_read_by_purchase(facts, rates, over, page, cap)
    since = min(_read_at(state) or now, now)
    plan = plan_nightly(facts, previous, by_purchase, since, night % recheck_nights, recheck_nights, page, cap)
    full_estimate = estimated_requests(facts, by_purchase, rates, over, page)[0]
    if plan.estimated_requests >= full_estimate:
        log.info("vouchers: tonight's plan (~%d requests) costs no less than a full read (~%d); reading everything",
                 plan.estimated_requests, full_estimate)
        return VoucherRead(FullRead(catalog, page, known_unlinked=known), "full", now, night, offset)
    split = voucher_split(facts, by_purchase, frozenset())
    expected = expected_open_or_counted(facts, previous.live)
    return VoucherRead(NightlyRead(catalog, previous, plan, split, page, expected), "nightly", now, night, offset)


def _read_at(state: Mapping[str, Any]) -> dt.datetime | None:
    """When the last run started, by the API's clock (older states kept no such time)."""
    value = state.get("read_at")
    return dt.datetime.fromisoformat(value) if value else None
