"""Small fakes for the planners' unit tests: records built from a few constants, and an in-memory API.

``FakeApi`` answers ``page``, ``follow`` and ``pages`` the way ``CertiverseClient`` does, from lists of
records: filters match exactly (names partially, as the API's may), pages of
``page_size``, a 422 (``TooManyRecordsError``) when a query matches more than
``cap`` records, on the first page or on the first page past the cap. It records
every request, so a test can count them. No HTTP, no simulator.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any, Iterator

from certiverse_warehouse.sources.certiverse.catalog import Catalog
from certiverse_warehouse.sources.certiverse.client import Query, TooManyRecordsError

EXPIRES = "2027-06-01T00:00:00Z"
FIELD_OF = {"purchaseCode": "voucherPurchaseCode", "programName": "programName", "partnerName": "partnerName"}


def program(name: str, *exams: str) -> dict[str, Any]:
    return {"id": f"id-{name}", "name": name, "storeExams": [{"code": e, "id": e, "name": e} for e in exams]}


def purchase(code: str, program_name: str, quantity: int, used: int = 0, status: str = "Complete",
             partner: str = "Acme") -> dict[str, Any]:
    return {"id": f"id-{code}", "voucherPurchaseCode": code, "programName": program_name, "partnerName": partner,
            "status": status, "quantity": quantity, "quantityUsed": used, "quantityRemaining": quantity - used}


def vouchers_of(p: dict[str, Any], exams: list[str | None], used: int | None = None) -> list[dict[str, Any]]:
    """The purchase's vouchers, the i-th linked to ``exams[i % len(exams)]`` (None: unlinked); the first
    ``used`` (default: the purchase's quantityUsed) are used."""
    used = p["quantityUsed"] if used is None else used
    out = []
    for i in range(p["quantity"]):
        v = {"id": f"{p['voucherPurchaseCode']}-{i}", "voucherCode": f"C-{p['voucherPurchaseCode']}-{i}",
             "voucherPurchaseCode": p["voucherPurchaseCode"], "isUsed": i < used, "isActive": True,
             "expirationDateUtc": EXPIRES}
        exam = exams[i % len(exams)]
        if exam:
            v["storeExamCode"] = exam
        out.append(v)
    return out


class FakeApi:
    """An in-memory stand-in for ``CertiverseClient``'s paging (see the module docstring)."""

    def __init__(self, records: dict[str, list[dict[str, Any]]], *, page_size: int = 2, cap: int = 1_000,
                 cap_mode: str = "first", date: dt.datetime | None = None,
                 fail: dict[Query, Exception] | None = None, page_size_known: bool = True,
                 local: dt.datetime | None = None) -> None:
        self.records = {"partners": [{"id": "p-acme", "name": "Acme"}], "programs": [], "purchases": [], "vouchers": [],
                        **records}
        self.serve_page, self.cap, self.cap_mode, self.date = page_size, cap, cap_mode, date
        self.local = local  # this machine's clock when the API's date came (None: the real clock)
        self.page_size = page_size if page_size_known else None  # what a client would have learnt by now
        self.fail = fail or {}
        self.requests: list[tuple[Query, int]] = []
        self.stopped = False  # CertiverseClient.stop() was called
        self._lock = threading.Lock()

    def stop(self) -> None:
        self.stopped = True

    def api_time(self) -> dt.datetime | None:
        return self.date

    def clock_offset(self) -> dt.timedelta | None:
        if self.date is None:
            return None
        return self.date - (self.local or dt.datetime.now(dt.timezone.utc))

    def requests_for(self, endpoint: str) -> int:
        return sum(1 for q, _ in self.requests if q.endpoint == endpoint)

    def queries(self, endpoint: str = "vouchers") -> set[Query]:
        return {q for q, _ in self.requests if q.endpoint == endpoint}

    def pages(self, query: Query, start: int = 1) -> Iterator[list[dict[str, Any]]]:
        data, next_link = self.page(query, start)
        yield data
        yield from self.follow(query, next_link)

    def page(self, query: Query, number: int = 1) -> tuple[list[dict[str, Any]], str | None]:
        """One page by number, and a nextLink (``fake:N``) unless it is the last."""
        matches = [r for r in self.records[query.endpoint] if _matches(r, query)]
        with self._lock:
            self.requests.append((query, number))
        if query in self.fail:
            raise self.fail[query]
        start = (number - 1) * self.serve_page
        if len(matches) > self.cap and (self.cap_mode == "first" or start >= self.cap):
            raise TooManyRecordsError(query, number)
        more = start + self.serve_page < len(matches)
        return matches[start:start + self.serve_page], f"fake:{number + 1}" if more else None

    def follow(self, query: Query, next_link: str | None, after: int = 1) -> Iterator[list[dict[str, Any]]]:
        while next_link:
            data, next_link = self.page(query, int(next_link.removeprefix("fake:")))
            yield data


def _matches(record: dict[str, Any], query: Query) -> bool:
    for name, value in query.filters:
        # A name filter on its own list matches the record's name (partners' partnerName, programs' programName).
        own = {"partners": "partnerName", "programs": "programName"}.get(query.endpoint)
        field = "name" if name == own else FIELD_OF.get(name, name)
        have = record.get(field)
        if name in ("programName", "partnerName"):
            if value.casefold() not in str(have).casefold():
                return False
        elif isinstance(have, bool) or name in ("isUsed", "isActive"):
            if bool(have) != (value == "true"):
                return False
        elif have != value:
            return False
    return True


def catalog(api: FakeApi, *, cap: int = 1_000, workers: int = 2) -> Catalog:
    """A catalog over the fake API (the planners call ``page``, ``follow`` and ``api_time`` on its client)."""
    return Catalog(api, workers=workers, record_cap=cap)  # type: ignore[arg-type]


# A small catalog the planners' and the full read's unit tests share: one program of one exam, one of two,
# eight purchases of each (12 vouchers, 4 used), and a failed checkout that holds no vouchers.
PAGE = 10
CAP = 100
ONE_EXAM = program("Solo", "SOLO-1")
TWO_EXAMS = program("Duo", "DUO-1", "DUO-2")
SOLO = [purchase(f"S{i}", "Solo", quantity=12, used=4) for i in range(8)]
DUO = [purchase(f"D{i}", "Duo", quantity=12, used=4) for i in range(8)]
FAILED = purchase("F0", "Solo", quantity=5, used=0, status="CheckoutFailed")
FAILED["quantityRemaining"] = 0
