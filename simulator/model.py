"""In-memory shapes of the simulated tenant: entities, compact voucher
columns, people and codes.

Vouchers live in parallel ``array``/``bytearray`` columns (about 40 bytes
each) so that the large tenant's million vouchers fit in little memory and
flag filters run at C speed over the ``flags`` column.
"""

from __future__ import annotations

import random
from array import array
from typing import Any

from . import ids, names

DOCUMENTED_PURCHASE_STATUSES = (
    "CheckoutCancelled",
    "CheckoutExpired",
    "CheckoutFailed",
    "CheckoutInProgress",
    "Complete",
    "VoucherCreation",
)
# a status the API serves but refuses as a filter (reference, open point 9)
REFUNDED = "Refunded"
VOUCHER_STATUSES = ("Complete", "VoucherCreation", REFUNDED)

ACTIVE = 1  # bit of VoucherStore.flags
USED = 2  # bit of VoucherStore.flags
RES_SCHEDULED, RES_COMPLETED, RES_CANCELLED = 1, 2, 3
RES_NAMES = {RES_SCHEDULED: "Scheduled", RES_COMPLETED: "Completed", RES_CANCELLED: "Cancelled"}
MAX_RESERVATIONS = 7  # reservation codes encode the attempt in three bits

API_USER = ("Certiverse", "API", "api@certiverse.com")
DAY = 86_400


class Partner:
    __slots__ = ("idx", "id", "name", "status", "users", "weight", "purchases")

    def __init__(self, idx: int, id: str, name: str, status: str, users: list[dict[str, Any]]) -> None:
        self.idx, self.id, self.name, self.status, self.users = idx, id, name, status, users
        self.weight = 1.0
        self.purchases: list[int] = []

    def record(self) -> dict[str, Any]:
        """The partner as the API serializes it."""
        return {
            "id": self.id,
            "isActive": self.status == "Active",
            "isArchived": self.status == "Archived",
            "name": self.name,
            "users": [dict(u) for u in self.users],
        }


class Exam:
    __slots__ = ("gidx", "code", "id", "name", "price", "program")

    def __init__(self, gidx: int, code: str, id: str, name: str, price: float, program: int) -> None:
        self.gidx, self.code, self.id, self.name, self.price, self.program = gidx, code, id, name, price, program


class Program:
    __slots__ = (
        "idx", "id", "name", "status", "allow_ach", "discounts", "period", "open_to_all",
        "assigned", "zero_price_ok", "cost", "domains", "enforce_email", "exams", "prefix",
        "weight", "purchases",
    )

    def __init__(self, idx: int, id: str, name: str) -> None:
        self.idx, self.id, self.name = idx, id, name
        self.status = "Active"
        self.allow_ach = False
        self.discounts: list[dict[str, Any]] = []
        self.period = 365
        self.open_to_all = True
        self.assigned: list[int] = []
        self.zero_price_ok = False
        self.cost = 0.0
        self.domains: list[int] = []
        self.enforce_email = False
        self.exams: list[Exam] = []
        self.prefix = ""
        self.weight = 1.0
        self.purchases: list[int] = []

    def record(self, partners: list[Partner]) -> dict[str, Any]:
        """The program as the API serializes it."""
        return {
            "allowAchPayments": self.allow_ach,
            "discounts": [dict(d) for d in self.discounts],
            "expirationPeriodInDays": self.period,
            "id": self.id,
            "isActive": self.status == "Active",
            "isArchived": self.status == "Archived",
            "isInactive": self.status == "Inactive",
            "name": self.name,
            "partners": {
                "assignedPartners": [{"id": partners[i].id, "name": partners[i].name} for i in self.assigned],
                "canAssignedPartnersPurchaseZeroPrice": self.zero_price_ok,
                "isAvailableToAllVoucherPartners": self.open_to_all,
                "partnerCostPerVoucher": round(self.cost, 2),
            },
            "restrictions": {
                "emailDomainRestrictions": [{"domain": names.RECIPIENT_DOMAINS[d]} for d in self.domains],
                "enforceAssignedEmailToBookExam": self.enforce_email,
            },
            "storeExams": [
                {"code": e.code, "id": e.id, "name": e.name, "price": round(e.price, 2)} for e in self.exams
            ],
            "voucherCodePrefix": self.prefix,
        }

    def unit_price(self, quantity: int) -> float:
        """Cost per voucher after the best discount tier reached."""
        percent = max((d["percent"] for d in self.discounts if quantity >= d["quantity"]), default=0)
        return self.cost * (1 - percent / 100)


class Purchase:
    __slots__ = (
        "idx", "id", "code", "partner", "program", "ts", "first_name", "last_name", "email",
        "notes", "archived", "status", "quantity", "used_count", "amount", "chunks", "exam",
    )
    idx: int
    id: str
    code: str  # voucherPurchaseCode
    partner: int
    program: int
    ts: int  # purchaseDateUtc, epoch seconds
    first_name: str
    last_name: str
    email: str  # the purchaser's, only used by the purchasedByEmail filter
    notes: str
    status: str
    quantity: int

    def __init__(self) -> None:
        self.chunks: list[tuple[int, int]] = []  # voucher index ranges [start, stop)
        self.used_count = 0  # the served quantityUsed counter (may lag on purpose)
        self.exam = 0  # exam (gidx + 1) written on the vouchers at issuance, 0 = none
        self.archived = False
        self.amount = 0.0

    def voucher_count(self) -> int:
        """How many vouchers exist for the purchase so far."""
        return sum(b - a for a, b in self.chunks)

    def voucher_indexes(self) -> list[int]:
        """Voucher positions in creation order."""
        out: list[int] = []
        for a, b in self.chunks:
            out.extend(range(a, b))
        return out


class VoucherStore:
    """Column store of vouchers; a voucher is its position in the columns."""

    def __init__(self) -> None:
        self.purchase = array("i")
        self.expires = array("q")
        self.flags = bytearray()  # ACTIVE | USED bits
        self.assigned = array("q")  # epoch seconds, 0 = not assigned
        self.person = array("i")  # recipient, -1 = none
        self.used_at = array("q")  # epoch seconds, 0 = not used
        self.res_attempt = bytearray()  # 0 = never reserved
        self.res_status = bytearray()
        self.exam = bytearray()  # exam gidx + 1, 0 = not linked

    def __len__(self) -> int:
        return len(self.flags)

    def add(self, purchase: int, expires: int, exam: int, flags: int = ACTIVE, assigned: int = 0,
            person: int = -1, used_at: int = 0, res_attempt: int = 0, res_status: int = 0) -> int:
        """Append one voucher and return its position."""
        self.purchase.append(purchase)
        self.expires.append(expires)
        self.flags.append(flags)
        self.assigned.append(assigned)
        self.person.append(person)
        self.used_at.append(used_at)
        self.res_attempt.append(res_attempt)
        self.res_status.append(res_status)
        self.exam.append(exam)
        return len(self.flags) - 1


class People:
    """Exam candidates, computed from a number rather than stored."""

    def __init__(self, count: int, rng: random.Random) -> None:
        self.count = count
        self.ids = ids.Bijection(128, rng)
        self.domains = len(names.RECIPIENT_DOMAINS)

    def draw(self, rng: random.Random, domains: list[int]) -> int:
        """A candidate, restricted to the program's e-mail domains if any."""
        if not domains:
            return rng.randrange(self.count)
        # person p has domain p % len(domains list), so pick a row then a column
        return rng.randrange(self.count // self.domains) * self.domains + rng.choice(domains)

    def first(self, p: int) -> str:
        return names.FIRST_NAMES[(p * 7 + p // 13) % len(names.FIRST_NAMES)]

    def last(self, p: int) -> str:
        return names.LAST_NAMES[(p * 11 + p // 17) % len(names.LAST_NAMES)]

    def email(self, p: int) -> str:
        """The candidate's address; the trailing number makes it unique."""
        domain = names.RECIPIENT_DOMAINS[p % self.domains]
        return f"{self.first(p)}.{self.last(p)}.{p}@{domain}".lower()

    def parse_email(self, email: str) -> int | None:
        """The candidate an address belongs to, or None."""
        local = email.lower().partition("@")[0]
        number = local.rpartition(".")[2]
        if not number.isdigit() or int(number) >= self.count:
            return None
        p = int(number)
        return p if self.email(p) == email.lower() else None

    def person_id(self, p: int) -> str:
        return ids.uuid_like(self.ids.forward(p))

    def candidate_id(self, p: int) -> str:
        return "CAND-%07d" % p


class CodeBook:
    """Keyed bijections behind every id and code the tenant hands out."""

    VOUCHER_CODE_LEN = 10  # 50 bits
    RESERVATION_CODE_LEN = 10
    PURCHASE_CODE_LEN = 8  # 40 bits

    def __init__(self, rng: random.Random) -> None:
        self.voucher_id = ids.Bijection(128, rng)
        self.voucher_code = ids.Bijection(50, rng)
        self.reservation = ids.Bijection(50, rng)
        self.purchase_id = ids.Bijection(128, rng)
        self.purchase_code = ids.Bijection(40, rng)

    def voucher_code_for(self, prefix: str, v: int) -> str:
        return f"{prefix}-{ids.encode32(self.voucher_code.forward(v), self.VOUCHER_CODE_LEN)}"

    def voucher_from_code(self, code: str) -> int | None:
        """Position encoded in a voucher code; the caller checks the prefix."""
        tail = code.rpartition("-")[2]
        if len(tail) != self.VOUCHER_CODE_LEN:
            return None
        value = ids.decode32(tail)
        return None if value is None else self.voucher_code.inverse(value)

    def reservation_code_for(self, v: int, attempt: int) -> str:
        return "RSV-" + ids.encode32(self.reservation.forward(v * 8 + attempt), self.RESERVATION_CODE_LEN)

    def reservation_from_code(self, code: str) -> tuple[int, int] | None:
        """(voucher position, attempt) encoded in a reservation code."""
        if not code.startswith("RSV-") or len(code) != 4 + self.RESERVATION_CODE_LEN:
            return None
        value = ids.decode32(code[4:])
        if value is None:
            return None
        return divmod(self.reservation.inverse(value), 8)

    def purchase_ids(self, serial: int) -> tuple[str, str]:
        """(id, voucherPurchaseCode) of the purchase with this serial."""
        code = "VP-" + ids.encode32(self.purchase_code.forward(serial), self.PURCHASE_CODE_LEN)
        return ids.uuid_like(self.purchase_id.forward(serial)), code
