"""The run's partners, programs and purchases, read once and shared by the resources and the plans.

Purchases cannot be listed without a filter, and no filter may match more than
the API's cap. They are listed per program (or per partner, whichever has fewer
values), split by the other name over the cap; names match partially, so names
that contain another name are read in a second wave, only if no record with that
name came back in the first. Never by status: the status list is open and the API
refuses undocumented values as filters.

A partition is checked against a total the read can know, and what it missed is
read another way (never silently short):

* partners over the cap are read by their three documented statuses; a partner in
  another state would be in none. The partners the purchases name are that check:
  one the statuses missed is read by name (and its purchases too, should a program
  have been split by partner names), and the log says which.
* purchases listed by names are checked against the purchases the warehouse holds
  (``purchase_pages(known)``): one not listed again is read by its code, an exact
  filter. (A purchase no listing ever returned is found by its vouchers: the full
  read reads such a purchase's vouchers whole, and the warehouse then knows it.)
"""

from __future__ import annotations

import logging
import sys
import threading
import zlib
from typing import Any, Iterator, Sequence

import orjson

from .client import CertiverseClient, Query
from .ledger import LISTS, CountingClient, Ledger
from .reader import ReadSummary, SeenIds, no_split, read_all
from .values import read_records

log = logging.getLogger(__name__)

# Statuses the reference says carry no vouchers; anything else (including values
# never seen before) is assumed to possibly have some.
CHECKOUT_STATUSES = frozenset({"CheckoutCancelled", "CheckoutExpired", "CheckoutFailed", "CheckoutInProgress"})


class Catalog:
    """Partners, programs and purchases of one run, each read once and shared.

    The purchase and voucher plans need the full lists of partners, programs and
    purchases; reading them once serves both the plans and the resources.
    """

    def __init__(self, client: CertiverseClient, *, workers: int = 4, record_cap: int = 10_000) -> None:
        self.client = client
        self._ledger = Ledger()
        self._lists_client = CountingClient(client, self._ledger, lambda query: (LISTS,))
        self.workers = workers
        self.record_cap = record_cap
        self._lock = threading.RLock()
        self._cache: dict[str, list[dict[str, Any]]] = {}
        self._partner_listing: tuple[list[dict[str, Any]], bool] | None = None  # (partners, read by status)
        self._purchases: list[dict[str, Any]] | None = None
        self._purchase_pages: list[bytes] = []
        self._pages_taken = False

    @property
    def requests(self) -> int:
        """Requests the lists have cost so far (the full read weighs its plan against the naive one's)."""
        return round(self._ledger.spent())

    def partners(self) -> list[dict[str, Any]]:
        """Every partner (read by status over the cap, then checked against the partners purchases name)."""
        with self._lock:
            if "partners" not in self._cache:
                listed, by_status = self._listed_partners()
                self._cache["partners"] = self._partners_named_by_purchases(listed) if by_status else listed
            return self._cache["partners"]

    def programs(self) -> list[dict[str, Any]]:
        return self._cached("programs", lambda: self._read([Query("programs")], no_split)[0])

    def purchases(self) -> list[dict[str, Any]]:
        """Every purchase, with only the fields the plans use (``PLAN_FIELDS``)."""
        with self._lock:
            if self._purchases is None:
                self._read_purchases()
            return self._purchases

    def purchase_pages(self, known: frozenset[str] = frozenset()) -> Iterator[list[dict[str, Any]]]:
        """Every purchase as the API sent it, page by page, for the purchases resource; then those of ``known``
        (the purchases the warehouse holds) the listing did not return, read by code.

        Pages are kept compressed until then: the plans need only a few fields of each
        purchase, and on a large tenant the full records as dicts held ~1 KB each.
        """
        with self._lock:
            if self._purchases is None or self._pages_taken:
                self._read_purchases()
            pages, self._purchase_pages, self._pages_taken = self._purchase_pages, [], True
        for blob in pages:
            yield orjson.loads(zlib.decompress(blob))
        found = self._unlisted(known)
        if found:
            yield found

    def _unlisted(self, known: frozenset[str]) -> list[dict[str, Any]]:
        """The purchases of ``known`` the listing did not return, read by code; and every purchase of the
        programs they name that the program list does not show, read by that name (kept for the plans too)."""
        with self._lock:
            listed = {p["voucherPurchaseCode"] for p in self.purchases()}
            missing = sorted(known - listed)
            if not missing:
                return []
            found, _ = self._read([Query.of("purchases", purchaseCode=c) for c in missing], no_split)
            programs = {p.get("name") for p in self.programs()}
            unshown = sorted({n for p in found if (n := p.get("programName")) and n not in programs})
            if unshown:
                more, _ = self._read([Query.of("purchases", programName=n) for n in unshown], no_split)
                codes = {p.get("voucherPurchaseCode") for p in found}
                found += [p for p in more if p.get("voucherPurchaseCode") not in listed | codes]
            self._purchases.extend(_slim(p) for p in found if p.get("voucherPurchaseCode"))
        if found:
            log.warning("purchases: %d purchases the warehouse holds were not listed by name; read by code: %s%s",
                        len(found), _few(sorted(p.get("voucherPurchaseCode", "") for p in found)),
                        f" (programs the program list does not show: {_few(unshown)})" if unshown else "")
        gone = set(missing) - {p.get("voucherPurchaseCode") for p in found}
        if gone:
            log.info("purchases: %d purchases the warehouse holds are gone from the API: %s", len(gone),
                     _few(sorted(gone)))
        return found

    def _cached(self, name: str, load: Any) -> list[dict[str, Any]]:
        with self._lock:
            if name not in self._cache:
                self._cache[name] = load()
            return self._cache[name]

    def _read(self, roots: list[Query], split: Any, seen: SeenIds | None = None
              ) -> tuple[list[dict[str, Any]], ReadSummary]:
        """Every record of these queries of one endpoint, read by meaning; and what the reader did."""
        endpoint = roots[0].endpoint if roots else ""
        records: list[dict[str, Any]] = []
        pages = read_all(self._lists_client, roots, split, workers=self.workers, seen=seen)
        while True:
            try:
                records.extend(read_records(endpoint, next(pages)))
            except StopIteration as done:
                return records, done.value

    def _listed_partners(self) -> tuple[list[dict[str, Any]], bool]:
        """The partner list as the API gave it, and whether it was read by status (over the cap)."""
        if self._partner_listing is None:
            records, summary = self._read([Query("partners")], split_partners)
            self._partner_listing = (records, summary.refused > 0)
        return self._partner_listing

    def _partners_named_by_purchases(self, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The status partition checked against the partners the purchases name; those it missed, read by
        name (a name filter may match partially: every partner it returns is kept, once)."""
        names = {str(p.get("name", "")).casefold() for p in listed}
        missing = sorted({n for p in self.purchases() if (n := p.get("partnerName")) and n.casefold() not in names})
        if not missing:
            return listed
        seen = SeenIds()
        seen.fresh(listed, "id")
        found, _ = self._read([Query.of("partners", partnerName=n) for n in missing], split_partners, seen)
        still = [n for n in missing if n.casefold() not in {str(p.get("name", "")).casefold() for p in found}]
        if len(still) < len(missing):
            log.warning("partners: the status filters (%s) missed %d partners the purchases name; read by name: %s",
                        ", ".join(PARTNER_STATUSES), len(missing) - len(still), _few(sorted(set(missing) - set(still))))
        if still:
            log.warning("partners: %d partners the purchases name are not listed by the API: %s", len(still),
                        _few(still))
        return listed + found

    def _read_purchases(self) -> None:
        # A name the API left out (the reference says there always is one) cannot be a filter.
        programs = [p["name"] for p in self.programs() if p.get("name")]
        listed, by_status = self._listed_partners()
        partners = [p["name"] for p in listed if p.get("name")]
        # Partition on the dimension with fewer values: fewer half-empty last pages. Not on partners read by
        # status: their list is checked against the purchases, so it cannot be what lists them.
        by, names, other, other_names = ("programName", programs, "partnerName", partners)
        if len(partners) < len(programs) and not by_status:
            by, names, other, other_names = ("partnerName", partners, "programName", programs)
        split = PurchaseSplit(by, other, other_names)
        seen = SeenIds()
        first, second = split_by_containment(names)
        slim: list[dict[str, Any]] = []
        self._purchase_pages = []

        def read(queries: list[Query]) -> ReadSummary:
            pages = read_all(self._lists_client, queries, split, workers=self.workers, seen=seen)
            while True:
                try:
                    page = read_records("purchases", next(pages))
                except StopIteration as done:
                    return done.value
                # The plans know purchases by their code; one without a code is loaded, not planned for.
                slim.extend(_slim(p) for p in page if p.get("voucherPurchaseCode"))
                self._purchase_pages.append(zlib.compress(orjson.dumps(page), 1))

        refused = read([Query.of("purchases", **{by: n}) for n in first]).refused
        # A name filter that matched partially covered every record of the longer names it returned.
        covered = {str(r.get(by, "")).casefold() for r in slim}
        rest = [n for n in second if n.casefold() not in covered]
        log.info("purchases: %d %s queries, %d more for names not covered by partial matches",
                 len(first), by, len(rest))
        refused += read([Query.of("purchases", **{by: n}) for n in rest]).refused
        if by_status and refused:
            # A program over the cap was split by partner names from a list that may be short: the partners
            # the statuses missed get their purchases read by name too.
            missing = {p.get("partnerName") for p in slim} - set(partners)
            read([Query.of("purchases", partnerName=n) for n in sorted(missing) if n])
        self._purchases, self._pages_taken = slim, False


PLAN_FIELDS = ("voucherPurchaseCode", "programName", "partnerName", "status", "quantity", "quantityUsed",
               "quantityRemaining")


def _slim(purchase: dict[str, Any]) -> dict[str, Any]:
    """A purchase's plan fields; names and statuses interned (thousands of purchases share them)."""
    return {k: sys.intern(v) if isinstance(v, str) and k != "voucherPurchaseCode" else v
            for k in PLAN_FIELDS if (v := purchase.get(k)) is not None}


def split_by_containment(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Names that contain no other name, and names that contain one (maybe covered by a partial match)."""
    unique = sorted(set(names), key=len)
    folded = [n.casefold() for n in unique]
    first, second = [], []
    for i, name in enumerate(unique):
        inside = any(folded[j] in folded[i] for j in range(i) if folded[j] != folded[i])
        (second if inside else first).append(name)
    return first, second


PARTNER_STATUSES = ("Active", "Archived", "Inactive")


def split_partners(query: Query) -> list[Query] | None:
    """Partners over the cap: by their three documented states (the list is open: ``Catalog.partners`` checks
    what they return)."""
    if "status" in query.params:
        return None
    return [query.narrowed(status=s) for s in PARTNER_STATUSES]


def _few(names: Sequence[str], shown: int = 5) -> str:
    """A few names for a log line, and how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(map(str, names[:shown])) + more


class PurchaseSplit:
    """Purchases of one program (or partner) over the cap: add the other name filter.

    Program × partner covers every purchase. Below that only ``status`` is left,
    and the status list is open (values the API refuses as a filter exist), so a
    split there could lose records: the reader fails loudly instead.
    """

    def __init__(self, first: str, second: str, second_values: Sequence[str]) -> None:
        self.first, self.second, self.values = first, second, list(second_values)

    def __call__(self, query: Query) -> list[Query] | None:
        if self.second in query.params or not self.values:
            return None
        return [query.narrowed(**{self.second: v}) for v in self.values]


def expected_vouchers(purchase: dict[str, Any]) -> int | None:
    """How many vouchers a purchase should have, or None when its status does not say."""
    status = purchase.get("status")
    if status == "Complete":
        return int(purchase.get("quantity") or 0)
    if status in CHECKOUT_STATUSES and not purchase.get("quantityUsed") and not purchase.get("quantityRemaining"):
        return 0
    return None
