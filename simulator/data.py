"""The simulated Certiverse tenant: its data, its clock and its write rules."""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable, Sized
from typing import Any

from . import activity, history, ids
from .shape import DEFAULT, WorldShape
from .model import (
    ACTIVE,
    API_USER,
    DAY,
    RES_NAMES,
    USED,
    VOUCHER_STATUSES,
    CodeBook,
    Exam,
    Partner,
    People,
    Program,
    Purchase,
    VoucherStore,
)

log = logging.getLogger(__name__)

# big_share: share of purchases of 50-500 vouchers, tuned so the voucher
# totals land near the targets (small ~3k, default ~60k, large ~1M)
SIZES: dict[str, dict[str, Any]] = {
    "small": {"partners": 12, "programs": 6, "purchases": 150, "big_share": 0.06},
    "default": {"partners": 80, "programs": 20, "purchases": 3_000, "big_share": 0.06},
    "large": {"partners": 600, "programs": 50, "purchases": 40_000, "big_share": 0.086},
}
RESOURCES = ("partners", "programs", "purchases", "vouchers")


class ValidationError(ValueError):
    """A request the API answers with 400; the message names the field."""


class Tenant:
    """One organisation's voucher data, with a simulated clock.

    Mutations (``advance_day``, ``create_purchase``) bump ``version`` and hold
    ``lock``; readers that walk several records hold ``lock`` as well.
    """

    def __init__(self, size: str, seed: int, scale: float, shape: WorldShape = DEFAULT) -> None:
        self.size, self.seed, self.scale, self.shape = size, seed, scale, shape
        self.spec = SIZES[size]
        self.today = shape.start_day
        self.version = 0
        self.lock = threading.RLock()
        self.partners: list[Partner] = []
        self.programs: list[Program] = []
        self.exams: list[Exam] = []
        self.purchases: list[Purchase] = []
        self.purchase_by_code: dict[str, int] = {}
        self.vouchers = VoucherStore()
        self.codes: CodeBook
        self.people: People
        self.scheduled: set[int] = set()  # vouchers with a Scheduled reservation
        self.deactivated: set[int] = set()  # deactivated by a partner (not refunds)
        self.pending: set[int] = set()  # purchases still in checkout or voucher creation
        self._by_person: dict[int, list[int]] | None = None
        self._exam_by_code: dict[str, Exam] = {}

    @classmethod
    def generate(cls, size: str = "default", seed: int = 42, scale: float = 1.0,
                 shape: WorldShape = DEFAULT) -> Tenant:
        """Build a tenant deterministically from (size, seed, scale, shape)."""
        if size not in SIZES:
            raise ValueError(f"size must be one of {sorted(SIZES)}, not {size!r}")
        if scale <= 0:
            raise ValueError("scale must be positive")
        started = time.perf_counter()
        tenant = cls(size, seed, scale, shape)
        history.build(tenant, SIZES[size], random.Random(seed))
        tenant._exam_by_code = {e.code: e for e in tenant.exams}
        log.info("generated %s tenant (shape %s, seed %s, scale %s): %d purchases, %d vouchers in %.2f s",
                 size, shape.name, seed, scale, len(tenant.purchases), len(tenant.vouchers),
                 time.perf_counter() - started)
        return tenant

    # -- clock -------------------------------------------------------------

    def now(self) -> dt.datetime:
        """End of the simulated current day's activity (aware, UTC)."""
        return dt.datetime.combine(self.today, dt.time(23, 59, 59), tzinfo=dt.UTC)

    def now_ts(self) -> int:
        """:meth:`now` as epoch seconds."""
        return int(self.now().timestamp())

    def advance_day(self) -> dict[str, int]:
        """Move the clock one day and play that day's activity.

        Returns how many things of each kind happened; every voucher changes
        in at most one way per day, so the counts equal what a diff of
        :meth:`records` before and after shows.
        """
        with self.lock:
            self.today += dt.timedelta(days=1)
            self.version += 1
            day_rng = random.Random(f"{self.size}:{self.seed}:{self.scale}:{self.today.isoformat()}")
            counts = activity.play_day(self, day_rng)
            self.version += 1
        log.info("advanced to %s: %s", self.today, counts)
        return counts

    # -- serialization -----------------------------------------------------

    def records(self, resource: str) -> list[dict[str, Any]]:
        """Every record of a resource exactly as the API serializes it."""
        fn = self.record_function(resource)
        with self.lock:
            return [fn(i) for i in range(self.count(resource))]

    def count(self, resource: str) -> int:
        """How many records a resource holds."""
        sized: dict[str, Sized] = {"partners": self.partners, "programs": self.programs,
                                   "purchases": self.purchases, "vouchers": self.vouchers}
        return len(sized[resource])

    def record_function(self, resource: str) -> Callable[[int], dict[str, Any]]:
        """The serializer of one record of ``resource`` by position."""
        if resource not in RESOURCES:
            raise ValueError(f"resource must be one of {RESOURCES}, not {resource!r}")
        return {
            "partners": lambda i: self.partners[i].record(),
            "programs": lambda i: self.programs[i].record(self.partners),
            "purchases": self.purchase_record,
            "vouchers": self.voucher_record,
        }[resource]

    def purchase_record(self, i: int) -> dict[str, Any]:
        """Purchase ``i`` as the API serializes it."""
        pu = self.purchases[i]
        # a checkout that never completed has no vouchers to count
        remaining = pu.quantity - pu.used_count if pu.status in VOUCHER_STATUSES else 0
        return {
            "amountPaid": pu.amount,
            "id": pu.id,
            "isArchived": pu.archived,
            "notes": pu.notes,
            "partnerName": self.partners[pu.partner].name,
            "programName": self.programs[pu.program].name,
            "purchaseDateUtc": ids.iso(pu.ts),
            "purchasedByFirstName": pu.first_name,
            "purchasedByLastName": pu.last_name,
            "quantity": pu.quantity,
            "quantityRemaining": remaining,
            "quantityUsed": pu.used_count,
            "status": pu.status,
            "voucherPurchaseCode": pu.code,
        }

    def voucher_record(self, v: int) -> dict[str, Any]:
        """Voucher ``v`` as the API serializes it (null fields omitted)."""
        vs = self.vouchers
        pu = self.purchases[vs.purchase[v]]
        flags = vs.flags[v]
        rec: dict[str, Any] = {}
        if vs.assigned[v]:
            rec["assignedDateUtc"] = ids.iso(vs.assigned[v])
        rec["expirationDateUtc"] = ids.iso(vs.expires[v])
        rec["id"] = ids.uuid_like(self.codes.voucher_id.forward(v))
        rec["isActive"] = bool(flags & ACTIVE)
        rec["isUsed"] = bool(flags & USED)
        p = vs.person[v]
        if p >= 0:
            rec["recipientEmail"] = self.people.email(p)
        if vs.res_attempt[v]:
            rec["reservationCode"] = self.codes.reservation_code_for(v, vs.res_attempt[v])
            rec["reservationStatus"] = RES_NAMES[vs.res_status[v]]
        if vs.exam[v]:
            rec["storeExamCode"] = self.exams[vs.exam[v] - 1].code
        if flags & USED:
            rec["usedBy"] = {
                "clientCandidateId": self.people.candidate_id(p),
                "firstName": self.people.first(p),
                "lastName": self.people.last(p),
                "personId": self.people.person_id(p),
                "usedDateUtc": ids.iso(vs.used_at[v]),
            }
        rec["voucherCode"] = self.voucher_code(v)
        rec["voucherPurchaseCode"] = pu.code
        return rec

    # -- lookups -----------------------------------------------------------

    def voucher_code(self, v: int) -> str:
        """The code of voucher ``v`` (program prefix + random part)."""
        prefix = self.programs[self.purchases[self.vouchers.purchase[v]].program].prefix
        return self.codes.voucher_code_for(prefix, v)

    def voucher_by_code(self, code: str) -> int | None:
        """Position of the voucher with this exact code, if any."""
        v = self.codes.voucher_from_code(code)
        if v is None or v >= len(self.vouchers) or self.voucher_code(v) != code:
            return None
        return v

    def voucher_by_reservation(self, code: str) -> int | None:
        """Position of the voucher whose current reservation has this code."""
        found = self.codes.reservation_from_code(code)
        if found is None:
            return None
        v, attempt = found
        if v >= len(self.vouchers) or attempt == 0 or self.vouchers.res_attempt[v] != attempt:
            return None
        return v

    def vouchers_of_recipient(self, email: str) -> list[int]:
        """Vouchers assigned to an e-mail address, in creation order."""
        p = self.people.parse_email(email)
        if p is None:
            return []
        if self._by_person is None:
            # built on first use: most runs never filter by recipient
            index: dict[int, list[int]] = {}
            for v, person in enumerate(self.vouchers.person):
                if person >= 0:
                    index.setdefault(person, []).append(v)
            self._by_person = index
        return sorted(self._by_person.get(p, ()))

    def note_assignment(self, v: int, person: int) -> None:
        """Keep the recipient index current after an assignment."""
        if self._by_person is not None:
            self._by_person.setdefault(person, []).append(v)

    def exam_by_code(self, code: str) -> Exam | None:
        """The store exam with this exact code."""
        return self._exam_by_code.get(code)

    # -- writes ------------------------------------------------------------

    def create_purchase(self, partner_name: Any, program_name: Any, quantity: Any, notes: Any) -> dict[str, Any]:
        """Create a $0 purchase the way ``POST /api/vouchers/purchases`` does.

        The purchase starts in ``VoucherCreation`` with no vouchers; they are
        generated by the next :meth:`advance_day`, which completes it (the
        reference says generation is queued).
        """
        for field, value in (("notes", notes), ("partnerName", partner_name), ("programName", program_name)):
            if value is None:
                raise ValidationError(f"'{field}' is required")
            if not isinstance(value, str) or not value.strip():
                raise ValidationError(f"'{field}' must be a non-empty string")
        if quantity is None:
            raise ValidationError("'quantity' is required")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 1000:
            raise ValidationError("'quantity' must be an integer from 1 to 1000")
        partner = next((p for p in self.partners if p.name == partner_name and p.status == "Active"), None)
        if partner is None:
            raise ValidationError(f"'partnerName': no active partner named {partner_name!r}")
        prog = next((p for p in self.programs if p.name == program_name and p.status == "Active"), None)
        if prog is None:
            raise ValidationError(f"'programName': no active program named {program_name!r}")
        if prog.cost != 0:
            raise ValidationError(f"'programName': program {program_name!r} is not priced at $0")
        with self.lock:
            first, last, email = API_USER
            pu = history.new_purchase(self, partner, prog, self.now_ts(), first, last, email, notes,
                                      quantity, "VoucherCreation")
            if len(prog.exams) == 1 and self.shape.single_exam_linked:
                pu.exam = prog.exams[0].gidx + 1
            self.pending.add(pu.idx)
            self.version += 1
            return self.purchase_record(pu.idx)


__all__ = ["DAY", "SIZES", "Tenant", "ValidationError"]
