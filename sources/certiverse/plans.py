"""Which queries cover an endpoint, and how to narrow one the API refuses as too large.

Purchases and vouchers cannot be listed without a filter, and no filter may match
more than the API's cap. Partners and programs are listable, vouchers belong to
purchases, and the voucher booleans are closed sets, so every plan here is built
from values the API itself listed: a partition is never guessed.
"""

from __future__ import annotations

import logging
import sys
import threading
import zlib
from collections import Counter, defaultdict
from typing import Any, Iterable, Iterator, Sequence

import orjson

from .client import CertiverseClient, Query
from .reader import SeenIds, no_split, read_all

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

    def _read(self, roots: Iterable[Query], split: Any, seen: SeenIds | None = None) -> list[dict[str, Any]]:
        return [r for page in read_all(self.client, roots, split, workers=self.workers, seen=seen) for r in page]

    def _read_purchases(self) -> None:
        programs = [p["name"] for p in self.programs()]
        partners = [p["name"] for p in self.partners()]
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
                slim.extend(_slim(p) for p in page)
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


def split_purchase_query(query: Query) -> list[Query] | None:
    """One purchase's vouchers over the cap: its closed boolean slices are all that is left."""
    for flag in ("isUsed", "isActive"):
        if flag not in query.params:
            return [query.narrowed(**{flag: True}), query.narrowed(**{flag: False})]
    return None


def read_purchases_whole(client: CertiverseClient, codes: Iterable[str], workers: int
                         ) -> Iterator[list[dict[str, Any]]]:
    """Every voucher of these purchases, page by page (the counter check's re-read)."""
    queries = (Query.of("vouchers", purchaseCode=code) for code in codes)
    yield from read_all(client, queries, split_purchase_query, workers=workers)


def expected_vouchers(purchase: dict[str, Any]) -> int | None:
    """How many vouchers a purchase should have, or None when its status does not say."""
    status = purchase.get("status")
    if status == "Complete":
        return int(purchase.get("quantity") or 0)
    if status in CHECKOUT_STATUSES and not purchase.get("quantityUsed") and not purchase.get("quantityRemaining"):
        return 0
    return None


class VoucherPlan:
    """Reads every voucher with as few requests as the API allows.

    Starts from ``isUsed`` (two queries that cover everything); a slice over the cap
    splits by ``isActive`` (still covering), then by ``storeExamCode`` over every
    exam the programs list. A program whose exam slices would still exceed the cap
    (judged from its purchases' counters, or learnt from a 422) is read purchase by
    purchase instead, each purchase once and whole. Exam slices miss vouchers not
    linked to an exam: a completion pass compares, per purchase, the vouchers seen
    with the purchase's own count and lists the purchases that are short.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.incomplete = False
        cap = catalog.record_cap
        purchases = catalog.purchases()
        exams_by_program: dict[str, list[str]] = {}
        for program in catalog.programs():
            codes = [e["code"] for e in program.get("storeExams") or [] if e.get("code")]
            exams_by_program[program.get("name", "")] = codes
        self.exams = sorted({c for codes in exams_by_program.values() for c in codes})
        self.programs_by_exam: dict[str, set[str]] = defaultdict(set)
        for name, codes in exams_by_program.items():
            for code in codes:
                self.programs_by_exam[code].add(name)
        self.purchases_by_program: dict[str, list[str]] = defaultdict(list)
        used: Counter[str] = Counter()
        unused: Counter[str] = Counter()
        for p in purchases:
            if expected_vouchers(p) == 0:
                continue
            program = p.get("programName", "")
            self.purchases_by_program[program].append(p["voucherPurchaseCode"])
            used[program] += int(p.get("quantityUsed") or 0)
            unused[program] += int(p.get("quantityRemaining") or 0)
        # Programs read purchase by purchase: those whose exam slices would overflow the
        # cap even if their vouchers spread evenly over their exams, and purchases of
        # programs the program list does not know (no exam slice is sure to reach them).
        self.whole_programs = {
            name for name in self.purchases_by_program
            if name not in exams_by_program
            or max(used[name], unused[name]) > cap * max(len(exams_by_program[name]), 1)
        }
        self.whole_started: set[str] = set()
        self.estimates = {"true": sum(used.values()), "false": sum(unused.values())}

    def roots(self) -> list[Query]:
        """The two ``isUsed`` slices, pre-split where the purchases' counters say they are over the cap."""
        roots: list[Query] = []
        for flag, estimate in self.estimates.items():
            q = Query.of("vouchers", isUsed=flag)
            roots.extend(self.split(q) if estimate > self.catalog.record_cap else [q])
        return roots

    def split(self, query: Query) -> list[Query] | None:
        """Narrower queries that together cover ``query`` (called when it is over the cap)."""
        params = query.params
        if "purchaseCode" in params:
            return split_purchase_query(query)
        if "isActive" not in params:
            return [query.narrowed(isActive=True), query.narrowed(isActive=False)]
        if "storeExamCode" not in params:
            self.incomplete = True
            slices = [query.narrowed(storeExamCode=e) for e in self.exams
                      if not self.programs_by_exam[e] <= self.whole_programs]
            return slices + self._whole(self.whole_programs)
        # An exam slice over the cap: its programs go purchase by purchase.
        programs = self.programs_by_exam.get(params["storeExamCode"], set())
        if not programs:
            return None
        self.whole_programs |= programs
        return self._whole(programs)

    def whole_purchases(self) -> set[str]:
        """Purchases of the programs read purchase by purchase."""
        return {code for program in self.whole_programs for code in self.purchases_by_program.get(program, [])}

    def _whole(self, programs: Iterable[str]) -> list[Query]:
        """Each purchase of these programs once, whole (all its vouchers, in every slice)."""
        queries = []
        for program in sorted(programs):
            for code in self.purchases_by_program.get(program, []):
                if code not in self.whole_started:
                    self.whole_started.add(code)
                    queries.append(Query.of("vouchers", purchaseCode=code))
        return queries

    def completion(self, seen_per_purchase: Counter[str]) -> list[str]:
        """Purchases whose vouchers the exam slices may have missed (their codes)."""
        if not self.incomplete:
            return []
        codes = []
        for p in self.catalog.purchases():
            expected = expected_vouchers(p)
            if p["voucherPurchaseCode"] in self.whole_started:
                continue
            if expected is None or seen_per_purchase[p["voucherPurchaseCode"]] < expected:
                codes.append(p["voucherPurchaseCode"])
        return codes

    def read(self, workers: int) -> Iterator[list[dict[str, Any]]]:
        """Yield every voucher once, page by page."""
        client = self.catalog.client
        seen = SeenIds()
        per_purchase: Counter[str] = Counter()
        for page in read_all(client, self.roots(), self.split, workers=workers, seen=seen):
            per_purchase.update(v.get("voucherPurchaseCode") for v in page)
            yield page
        extra = self.completion(per_purchase)
        log.info("vouchers: %d programs read purchase by purchase (%d purchases); %d purchases to complete",
                 len(self.whole_programs), len(self.whole_started), len(extra))
        if extra:
            log.info("vouchers: %d purchases hold vouchers no exam slice reached; listing them", len(extra))
            queries = (Query.of("vouchers", purchaseCode=code) for code in extra)  # made as the reader needs them
            yield from read_all(client, queries, self.split, workers=workers, seen=seen)
