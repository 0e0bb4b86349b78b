"""Evaluation of list-endpoint filters against a tenant.

Each function takes filters already validated and normalized by the app and
returns the matching record positions in creation order. Voucher queries
never walk a million records in Python: exact-code filters resolve through
the tenant's lookups, flag and exam filters through C-speed byte masks.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterable, Sequence
from itertools import compress
from typing import TYPE_CHECKING, Any

from .model import ACTIVE, USED

if TYPE_CHECKING:
    from .data import Tenant


def partners(t: Tenant, f: dict[str, Any]) -> list[int]:
    """Partners matching ``partnerName`` (partial) and ``status``."""
    name, status = f.get("partnerName"), f.get("status")
    return [
        p.idx for p in t.partners
        if (name is None or name in p.name.casefold()) and (status is None or p.status == status)
    ]


def programs(t: Tenant, f: dict[str, Any]) -> list[int]:
    """Programs matching ``programName`` (partial); a retired program is not listed (its purchases are)."""
    name = f.get("programName")
    return [p.idx for p in t.programs if (name is None or name in p.name.casefold()) and p.status != "Retired"]


def _merge(lists: Iterable[list[int]]) -> list[int]:
    return list(heapq.merge(*lists))


def purchases(t: Tenant, f: dict[str, Any]) -> list[int]:
    """Purchases matching every given filter (names partial, the rest exact)."""
    partner_name, program_name = f.get("partnerName"), f.get("programName")
    code, email, status = f.get("purchaseCode"), f.get("purchasedByEmail"), f.get("status")
    partner_ok = {p.idx for p in t.partners if partner_name in p.name.casefold()} if partner_name else None
    program_ok = {p.idx for p in t.programs if program_name in p.name.casefold()} if program_name else None
    candidates: Iterable[int]
    if code is not None:
        found = t.purchase_by_code.get(code)
        candidates = [] if found is None else [found]
    elif partner_ok is not None:
        candidates = _merge(t.partners[i].purchases for i in sorted(partner_ok))
    elif program_ok is not None:
        candidates = _merge(t.programs[i].purchases for i in sorted(program_ok))
    else:
        candidates = range(len(t.purchases))
    out = []
    for i in candidates:
        pu = t.purchases[i]
        if ((partner_ok is None or pu.partner in partner_ok)
                and (program_ok is None or pu.program in program_ok)
                and (status is None or pu.status == status)
                and (email is None or pu.email == email)):
            out.append(i)
    return out


def vouchers(t: Tenant, f: dict[str, Any]) -> Sequence[int]:
    """Vouchers matching every given filter."""
    vs = t.vouchers
    exam_code = f.get("storeExamCode")
    exam = 0
    if exam_code is not None:
        found = t.exam_by_code(exam_code)
        if found is None:
            return []
        exam = found.gidx + 1
    lists = _candidate_lists(t, f)
    if lists is None:
        return _by_masks(t, f.get("isActive"), f.get("isUsed"), exam)
    want_active, want_used = f.get("isActive"), f.get("isUsed")
    person = t.people.parse_email(f["recipientEmail"]) if "recipientEmail" in f else None
    purchase = t.purchase_by_code.get(f["purchaseCode"]) if "purchaseCode" in f else None
    sets = [set(c) for c in lists]
    out = []
    for v in min(lists, key=len):
        flags = vs.flags[v]
        if ((want_active is None or bool(flags & ACTIVE) == want_active)
                and (want_used is None or bool(flags & USED) == want_used)
                and (not exam or vs.exam[v] == exam)
                and (person is None or vs.person[v] == person)
                and (purchase is None or vs.purchase[v] == purchase)
                and all(v in s for s in sets)):
            out.append(v)
    return out


def _candidate_lists(t: Tenant, f: dict[str, Any]) -> list[list[int]] | None:
    """Candidates from each exact-key filter; None when there is none."""
    lists = []
    if "voucherCode" in f:
        v = t.voucher_by_code(f["voucherCode"])
        lists.append([] if v is None else [v])
    if "reservationCode" in f:
        v = t.voucher_by_reservation(f["reservationCode"])
        lists.append([] if v is None else [v])
    if "purchaseCode" in f:
        i = t.purchase_by_code.get(f["purchaseCode"])
        lists.append([] if i is None else t.purchases[i].voucher_indexes())
    if "recipientEmail" in f:
        lists.append(t.vouchers_of_recipient(f["recipientEmail"]))
    return lists or None


def _by_masks(t: Tenant, want_active: bool | None, want_used: bool | None, exam: int) -> array:
    vs = t.vouchers
    n = len(vs)
    masks = []
    if want_active is not None or want_used is not None:
        table = bytes(
            1 if ((want_active is None or bool(b & ACTIVE) == want_active)
                  and (want_used is None or bool(b & USED) == want_used)) else 0
            for b in range(256)
        )
        masks.append(vs.flags.translate(table))
    if exam:
        masks.append(vs.exam.translate(bytes(1 if b == exam else 0 for b in range(256))))
    if not masks:
        return array("i", range(n))
    mask: bytes | bytearray = masks[0]
    if len(masks) == 2:
        # a bitwise AND of two million-byte masks, done by big-int arithmetic in C
        both = int.from_bytes(masks[0], "little") & int.from_bytes(masks[1], "little")
        mask = both.to_bytes(n, "little")
    return array("i", compress(range(n), mask))
