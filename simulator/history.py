"""Generation of a tenant's ~4 years of history.

Everything is drawn from one ``random.Random(seed)`` in a fixed order, so a
(size, seed, scale) triple always gives the same tenant.
"""

from __future__ import annotations

import bisect
import random
from typing import TYPE_CHECKING, Any

from . import ids, names, shape
from .model import (
    ACTIVE,
    DAY,
    RES_CANCELLED,
    RES_COMPLETED,
    RES_SCHEDULED,
    USED,
    CodeBook,
    Exam,
    Partner,
    People,
    Program,
    Purchase,
)

if TYPE_CHECKING:
    from .data import Tenant

ODD_PARTNER_STATE = "Suspended"  # listed, but returned by no documented status filter
RETIRED = "Retired"  # a program the program list no longer shows
HISTORY_DAYS = shape.HISTORY_DAYS  # the default shape's; a tenant's own is t.shape.history_days
# share of purchases per status; Complete takes what is left (~85%)
STATUS_SHARES = {
    "CheckoutCancelled": 0.045,
    "CheckoutExpired": 0.045,
    "CheckoutFailed": 0.035,
    "Refunded": 0.01,
}
# purchases still in flight at generation time, per thousand purchases
TRANSIENT_PER_MILLE = {"CheckoutInProgress": 1.0, "VoucherCreation": 1.0}
LAGGING_SHARE = 0.01


def build(t: Tenant, spec: dict[str, Any], rng: random.Random) -> None:
    """Fill an empty tenant with partners, programs, purchases and vouchers."""
    t.codes = CodeBook(rng)
    n_purchases = max(20, round(spec["purchases"] * t.scale * t.shape.purchase_count))
    t.people = People(max(1200, n_purchases * 12), rng)
    _partners(t, spec["partners"], rng)
    _programs(t, spec["programs"], rng)
    _purchases(t, n_purchases, big_share(t), rng)
    _lagging_counters(t, rng)
    _ensure_deactivated(t, rng)
    _odd_states(t)


def big_share(t: Tenant) -> float:
    """Share of 50-500 purchases: the shape's, else the size's."""
    return t.spec["big_share"] if t.shape.big_share is None else t.shape.big_share


def exam_at_issuance(t: Tenant, prog: Program, rng: random.Random) -> int:
    """The exam (gidx + 1) a new purchase's vouchers carry from issuance, 0 for none."""
    if len(prog.exams) == 1:
        return prog.exams[0].gidx + 1 if t.shape.single_exam_linked else 0
    if t.shape.link_when == "issuance" or rng.random() < t.shape.exam_at_issuance:
        return rng.choice(prog.exams).gidx + 1
    return 0


def _zipf(count: int, s: float) -> list[float]:
    return [1.0 / (rank + 1) ** s for rank in range(count)]


def _statuses(count: int, rng: random.Random, protected: int) -> list[str]:
    """Mostly Active; the last two are Inactive and Archived for certain."""
    out = []
    for i in range(count):
        if i < protected:
            out.append("Active")
        elif i == count - 1:
            out.append("Archived")
        elif i == count - 2:
            out.append("Inactive")
        else:
            x = rng.random()
            out.append("Active" if x < 0.85 else "Inactive" if x < 0.93 else "Archived")
    return out


def _partners(t: Tenant, count: int, rng: random.Random) -> None:
    partner_names = names.partner_names(count, rng)
    statuses = _statuses(count, rng, protected=len(names.SPECIAL_PARTNERS))
    for i, (name, status) in enumerate(zip(partner_names, statuses)):
        users, seen = [], set()
        for k in range(rng.randint(1, 5)):
            first, last = rng.choice(names.FIRST_NAMES), rng.choice(names.LAST_NAMES)
            email = f"{first}.{last}@{names.slug(name)}.com".lower()
            if email in seen:
                email = email.replace("@", f"{k}@")
            seen.add(email)
            user_status = "Active" if k == 0 else rng.choice(names.USER_STATUSES)
            users.append({"email": email, "isActive": user_status == "Active", "status": user_status})
        t.partners.append(Partner(i, ids.random_uuid(rng), name, status, users))
    for p, w in zip(t.partners, _zipf(count, 1.0)):
        p.weight = w


def _programs(t: Tenant, count: int, rng: random.Random) -> None:
    program_names = names.program_names(count, rng)
    zero = [i for i, n in enumerate(program_names) if n in names.ZERO_PRICE_PROGRAMS]
    # the $0 programs and the nested pair of big ones stay active
    others = [i for i in range(count) if i not in zero and i not in (0, 2)]
    statuses = dict(zip(others, _statuses(len(others), rng, protected=0)))
    prefixes: set[str] = set()
    exam_codes: set[str] = set()
    partner_weights = [p.weight for p in t.partners]
    for i, (name, weight) in enumerate(zip(program_names, _zipf(count, 1.0))):
        prog = Program(i, ids.random_uuid(rng), name)
        prog.weight = weight
        prog.status = statuses.get(i, "Active")
        prog.allow_ach = rng.random() < 0.4
        prog.period = rng.choices((365, 180, 730), weights=(70, 15, 15))[0]
        if i in zero:
            prog.cost, prog.zero_price_ok, prog.open_to_all = 0.0, True, True
        else:
            list_price = rng.choice((45, 60, 75, 95, 120, 150, 180, 225, 250, 300))
            prog.cost = float(list_price - rng.choice((0, 0, 0.01, 0.5)))
            prog.zero_price_ok = rng.random() < 0.2
            prog.open_to_all = i < max(3, count // 3) or rng.random() < 0.5
        if not prog.open_to_all:
            wanted = min(len(t.partners), rng.randint(2, 12))
            chosen: set[int] = set()
            while len(chosen) < wanted:
                chosen.add(rng.choices(range(len(t.partners)), weights=partner_weights)[0])
            prog.assigned = sorted(chosen)
        tiers = sorted(rng.sample((10, 25, 50, 100, 250, 500), rng.randint(0, 3)))
        percents = sorted(rng.sample((5.0, 7.5, 10.0, 12.5, 15.0, 20.0, 25.0), len(tiers)))
        prog.discounts = [{"id": ids.random_uuid(rng), "percent": p, "quantity": q} for q, p in zip(tiers, percents)]
        if rng.random() < 0.2:
            prog.domains = sorted(rng.sample(range(len(names.RECIPIENT_DOMAINS)), rng.randint(1, 3)))
        prog.enforce_email = rng.random() < 0.3
        prefix = names.initials(name)[:4]
        while prefix in prefixes:
            prefix = prefix[:3] + str(len(prefixes) % 10)
        prefixes.add(prefix)
        prog.prefix = prefix
        counts = t.shape.exam_counts
        n_exams = 3 if i == 1 and 3 in counts else rng.choices(counts, weights=t.shape.exam_weights)[0]
        for k in range(n_exams):
            number = 100 + 10 * k + rng.randrange(10)
            while f"{prefix}-{number}" in exam_codes:
                number += 1
            code = f"{prefix}-{number}"
            exam_codes.add(code)
            price = round(max(prog.cost, 80) * rng.uniform(1.1, 1.6)) - 0.01
            title = f"{name} Exam {k + 1}" if n_exams > 1 else f"{name} Exam"
            exam = Exam(len(t.exams), code, ids.random_uuid(rng), title, price, i)
            prog.exams.append(exam)
            t.exams.append(exam)
        t.programs.append(prog)
    if len(t.exams) > 255:
        raise ValueError("the voucher store keeps exam links in one byte: at most 255 exams")


def quantity(rng: random.Random, big_share: float, big_range: tuple[int, int] = (50, 500)) -> int:
    """Skewed purchase size: mostly 1-25, some big (50-500 by default), rarely up to 1000 (before the shape's
    scale)."""
    x = rng.random()
    if x < 0.004:
        return rng.randint(500, 1000)
    if x < 0.004 + big_share:
        low, high = big_range
        return int(low * (high / low) ** rng.random())
    return 1 + int(24 * rng.random() ** 1.8)


def _status_list(n: int, shares: dict[str, float], rng: random.Random, rest: str | None) -> list[str]:
    out: list[str] = []
    for status, share in shares.items():
        out += [status] * max(1, round(share * n))
    if rest:
        out += [rest] * (n - len(out))
    rng.shuffle(out)
    return out


def _purchases(t: Tenant, n: int, big_share: float, rng: random.Random) -> None:
    transient = [s for s, rate in TRANSIENT_PER_MILLE.items() for _ in range(max(2, round(rate * n / 1000)))]
    n_transient = len(transient)
    now_ts = t.now_ts()
    drafts = []
    for status in _status_list(n - n_transient, STATUS_SHARES, rng, "Complete"):
        # half uniform, half growing towards today: the business grows
        u = rng.random()
        age = u if rng.random() < 0.5 else 1 - (1 - u) ** 0.5
        drafts.append((now_ts - int(age * t.shape.history_days * DAY) - 1, status))
    for status in transient:
        drafts.append((now_ts - rng.randrange(36 * 3600), status))
    drafts.sort()
    cum_programs = _cumulative([p.weight for p in t.programs])
    cum_partners = _cumulative([p.weight for p in t.partners])
    for ts, status in drafts:
        prog = t.programs[bisect.bisect(cum_programs, rng.random() * cum_programs[-1])]
        if prog.open_to_all:
            partner = t.partners[bisect.bisect(cum_partners, rng.random() * cum_partners[-1])]
        else:
            partner = t.partners[rng.choices(prog.assigned, weights=[t.partners[i].weight for i in prog.assigned])[0]]
        # argument order is draw order: purchaser, note, then quantity
        pu = new_purchase(t, partner, prog, ts, *purchaser(partner, rng), note(rng),
                          t.shape.quantity(quantity(rng, big_share, t.shape.big_range)), status)
        pu.archived = rng.random() < 0.03 * (now_ts - ts) / (t.shape.history_days * DAY) * 2
        pu.exam = exam_at_issuance(t, prog, rng)
        if status == "Complete":
            issue_history(t, pu, prog, ts + rng.randrange(5, 600), now_ts, rng)
        elif status == "Refunded":
            issue_fresh(t, pu, pu.quantity, ts + rng.randrange(5, 600), active=False)
        elif status == "VoucherCreation":
            issue_fresh(t, pu, rng.randint(1, pu.quantity - 1) if pu.quantity > 1 else 0, ts + 60)
        if status in ("CheckoutInProgress", "VoucherCreation"):
            t.pending.add(pu.idx)


def _cumulative(weights: list[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def purchaser(partner: Partner, rng: random.Random) -> tuple[str, str, str]:
    """(first name, last name, e-mail) of one of the partner's users."""
    email = rng.choice(partner.users)["email"]
    first, last = email.split("@")[0].split(".")[:2]
    return first.capitalize(), last.rstrip("0123456789").capitalize(), email


def note(rng: random.Random) -> str:
    """Purchase notes as partners type them (sometimes empty)."""
    text = rng.choice(names.NOTES)
    return f"{text} {rng.randint(1, 40)}" if text and rng.random() < 0.4 else text


def new_purchase(t: Tenant, partner: Partner, prog: Program, ts: int, first: str, last: str, email: str,
                 notes: str, qty: int, status: str) -> Purchase:
    """Append a purchase with the next serial's id and code."""
    pu = Purchase()
    pu.idx = len(t.purchases)
    pu.id, pu.code = t.codes.purchase_ids(pu.idx)
    pu.partner, pu.program, pu.ts = partner.idx, prog.idx, ts
    pu.first_name, pu.last_name, pu.email, pu.notes = first, last, email, notes
    pu.quantity, pu.status = qty, status
    if status in ("Complete", "VoucherCreation", "Refunded"):
        pu.amount = round(qty * prog.unit_price(qty), 2)
    t.purchases.append(pu)
    t.purchase_by_code[pu.code] = pu.idx
    partner.purchases.append(pu.idx)
    prog.purchases.append(pu.idx)
    return pu


def issue_fresh(t: Tenant, pu: Purchase, n: int, issue: int, active: bool = True) -> None:
    """Create ``n`` untouched vouchers for a purchase."""
    if n <= 0:
        return
    vs = t.vouchers
    expires = issue + t.programs[pu.program].period * DAY
    start = len(vs)
    shape = t.shape
    for j in range(n):
        exam = shape.issued_exam(pu.exam, pu.quantity, start + j) if shape.drops_exams else pu.exam
        vs.add(pu.idx, expires, exam, ACTIVE if active else 0)
    pu.chunks.append((start, len(vs)))


def issue_history(t: Tenant, pu: Purchase, prog: Program, issue: int, now_ts: int, rng: random.Random) -> None:
    """Create a Complete purchase's vouchers and live their lives up to today."""
    vs, n = t.vouchers, pu.quantity
    start = len(vs)
    period = prog.period * DAY
    exams, domains, draw = prog.exams, prog.domains, t.people.draw
    engage = rng.random()
    p_assign = (0.25 + 0.7 * engage) * t.shape.engagement
    link_when = t.shape.link_when
    assign_rate = 1 / (DAY * (3 + 40 * (1 - engage)))
    reserve_rate, exam_rate, walkin_rate = 1 / (25 * DAY), 1 / (12 * DAY), 1 / (15 * DAY)
    ext = ext_lo = ext_hi = deact_lo = deact_hi = 0
    if rng.random() < 0.04:  # a partner moved the expiry of part of the batch
        ext = rng.choice((30, 90, 180, 365)) * DAY
        ext_lo = rng.randrange(n)
        ext_hi = rng.randint(ext_lo + 1, n)
    if rng.random() < 0.02:  # a partner bulk-deactivated part of the batch
        deact_lo = rng.randrange(n)
        deact_hi = rng.randint(deact_lo + 1, n)
    random, expo = rng.random, rng.expovariate
    drops, issued_exam = t.shape.drops_exams, t.shape.issued_exam
    for j in range(n):
        exp = issue + period + (ext if ext_lo <= j < ext_hi else 0)
        horizon = exp if exp < now_ts else now_ts
        flags, assigned, person, used, ra, rs, exam = ACTIVE, 0, -1, 0, 0, 0, pu.exam
        if drops:
            exam = issued_exam(exam, n, start + j)
        if random() < p_assign:
            a = issue + int(expo(assign_rate))
            if a < horizon:
                assigned, person = a, draw(rng, domains)
                x = random()
                if x < 0.8:
                    r = a + int(expo(reserve_rate))
                    if r < horizon:
                        ra = 1
                        if not exam and link_when == "reserved":
                            exam = exams[int(random() * len(exams))].gidx + 1
                        if random() < 0.07:
                            rs = RES_CANCELLED
                        else:
                            u = r + DAY + int(expo(exam_rate))
                            if u < horizon:
                                used, rs, flags = u, RES_COMPLETED, ACTIVE | USED
                                if not exam and link_when == "used":
                                    exam = exams[int(random() * len(exams))].gidx + 1
                            else:
                                rs = RES_CANCELLED if u >= exp else RES_SCHEDULED
                elif x < 0.9:  # taken without a reservation (walk-in, online)
                    u = a + DAY + int(expo(walkin_rate))
                    if u < horizon:
                        used, flags = u, ACTIVE | USED
                        if not exam and link_when != "never":
                            exam = exams[int(random() * len(exams))].gidx + 1
        if deact_lo <= j < deact_hi and not used and rs != RES_SCHEDULED:
            flags = 0
        v = vs.add(pu.idx, exp, exam, flags, assigned, person, used, ra, rs)
        if rs == RES_SCHEDULED:
            t.scheduled.add(v)
        elif not flags:
            t.deactivated.add(v)
        if used:
            pu.used_count += 1
    pu.chunks.append((start, len(vs)))


def _lagging_counters(t: Tenant, rng: random.Random) -> None:
    """Make ~1% of Complete purchases report a quantityUsed one or two behind."""
    complete = [pu for pu in t.purchases if pu.status == "Complete"]
    candidates = [pu for pu in complete if pu.used_count >= 2]
    for pu in rng.sample(candidates, min(len(candidates), max(1, round(LAGGING_SHARE * len(complete))))):
        pu.used_count -= rng.randint(1, 2)


def _odd_states(t: Tenant) -> None:
    """The shape's partners in an undocumented state (active ones) and retired programs, those with the fewest
    purchases (the $0 programs, which the API's writes need, and the nested pair of big ones stay)."""
    partners = sorted((p for p in t.partners if p.status == "Active"), key=lambda p: (len(p.purchases), p.idx))
    for partner in partners[:t.shape.odd_partner_states]:
        partner.status = ODD_PARTNER_STATE
    programs = sorted((p for p in t.programs if not p.zero_price_ok and p.purchases and p.idx not in (0, 2)),
                      key=lambda p: (len(p.purchases), p.idx))
    for prog in programs[:t.shape.retired_programs]:
        prog.status = RETIRED


def _ensure_deactivated(t: Tenant, rng: random.Random, minimum: int = 3) -> None:
    """Even the small tenant needs partner-deactivated vouchers to re-activate."""
    vs = t.vouchers
    candidates = [v for v in range(len(vs)) if vs.flags[v] == ACTIVE and vs.res_status[v] != RES_SCHEDULED
                  and t.purchases[vs.purchase[v]].status == "Complete"] if len(t.deactivated) < minimum else []
    for v in rng.sample(candidates, max(0, min(len(candidates), minimum - len(t.deactivated)))):
        vs.flags[v] = 0
        t.deactivated.add(v)
