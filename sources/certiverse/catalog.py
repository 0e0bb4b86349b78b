"""The run's partners, programs and purchases, read once and shared by the resources and the plans.

Purchases cannot be listed without a filter, and no filter may match more than
the API's cap. They are listed per program (or per partner, whichever has fewer
values), split by the other name over the cap; names match partially, so names
that contain another name are read in a second wave, only if no record with that
name came back in the first. Never by status: the status list is open and the API
refuses undocumented values as filters.
"""

from __future__ import annotations

import logging
import sys
import threading
import zlib
from typing import Any, Iterator, Sequence

import orjson

from .client import CertiverseClient, Query
from .reader import SeenIds, no_split, read_all
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
        self.workers = workers
        self.record_cap = record_cap
        self._lock = threading.RLock()
        self._cache: dict[str, list[dict[str, Any]]] = {}
        self._purchases: list[dict[str, Any]] | None = None
        self._purchase_pages: list[bytes] = []
        self._pages_taken = False

    def partners(self) -> list[dict[str, Any]]:
        return self._cached("partners", lambda: self._read([Query("partners")], split_partners))

    def programs(self) -> list[dict[str, Any]]:
        return self._cached("programs", lambda: self._read([Query("programs")], no_split))

    def purchases(self) -> list[dict[str, Any]]:
        """Every purchase, with only the fields the plans use (``PLAN_FIELDS``)."""
        with self._lock:
            if self._purchases is None:
                self._read_purchases()
            return self._purchases

    def purchase_pages(self) -> Iterator[list[dict[str, Any]]]:
        """Every purchase as the API sent it, page by page, for the purchases resource.

        Pages are kept compressed until then: the plans need only a few fields of each
        purchase, and on a large tenant the full records as dicts held ~1 KB each.
        """
        with self._lock:
            if self._purchases is None or self._pages_taken:
                self._read_purchases()
            pages, self._purchase_pages, self._pages_taken = self._purchase_pages, [], True
        for blob in pages:
            yield orjson.loads(zlib.decompress(blob))

    def _cached(self, name: str, load: Any) -> list[dict[str, Any]]:
        with self._lock:
            if name not in self._cache:
                self._cache[name] = load()
            return self._cache[name]

    def _read(self, roots: list[Query], split: Any, seen: SeenIds | None = None) -> list[dict[str, Any]]:
        endpoint = roots[0].endpoint
        return [r for page in read_all(self.client, roots, split, workers=self.workers, seen=seen)
                for r in read_records(endpoint, page)]

    def _read_purchases(self) -> None:
        # A name the API left out (the reference says there always is one) cannot be a filter.
        programs = [p["name"] for p in self.programs() if p.get("name")]
        partners = [p["name"] for p in self.partners() if p.get("name")]
        # Partition on the dimension with fewer values: fewer half-empty last pages.
        by, names, other, other_names = ("programName", programs, "partnerName", partners)
        if len(partners) < len(programs):
            by, names, other, other_names = ("partnerName", partners, "programName", programs)
        split = PurchaseSplit(by, other, other_names)
        seen = SeenIds()
        first, second = split_by_containment(names)
        slim: list[dict[str, Any]] = []
        self._purchase_pages = []

        def read(queries: list[Query]) -> None:
            for page in read_all(self.client, queries, split, workers=self.workers, seen=seen):
                page = read_records("purchases", page)
                # The plans know purchases by their code; one without a code is loaded, not planned for.
                slim.extend(_slim(p) for p in page if p.get("voucherPurchaseCode"))
                self._purchase_pages.append(zlib.compress(orjson.dumps(page), 1))

        read([Query.of("purchases", **{by: n}) for n in first])
        # A name filter that matched partially covered every record of the longer names it returned.
        covered = {str(r.get(by, "")).casefold() for r in slim}
        rest = [n for n in second if n.casefold() not in covered]
        log.info("purchases: %d %s queries, %d more for names not covered by partial matches",
                 len(first), by, len(rest))
        read([Query.of("purchases", **{by: n}) for n in rest])
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


def split_partners(query: Query) -> list[Query] | None:
    """Partners over the cap: by their three documented states, which cover every partner."""
    if "status" in query.params:
        return None
    return [query.narrowed(status=s) for s in ("Active", "Archived", "Inactive")]


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
