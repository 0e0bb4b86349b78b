"""Every run checks itself against the API's own counters, and repairs what disagrees.

The API has no "changed since" filter, so the nightly plan reasons about what can
have changed; if it reasons wrong (a settled voucher re-activated and used on the
same day, a record that slipped past a page while the tenant was busy), nothing
would tell. Each purchase, though, reports ``quantity``, ``quantityUsed`` and
``quantityRemaining``, and the purchases are read whole every run. After the load
each purchase's counters are compared with its current vouchers in the warehouse.
A purchase **agrees** when

* ``quantityUsed`` = its vouchers that are used,
* ``quantityRemaining`` = its vouchers that are not used, and
* for a ``Complete`` purchase, ``quantity`` = its vouchers.

Purchases that disagree are re-read whole in the same run. One that still
disagrees after a fresh read disagrees **by the API's own accounting** (the
simulator, like real systems, lets some counters lag): it is remembered in the
warehouse (``_certiverse_api_accounting``) with its counters and not re-read
again until they move. Each run's figures go to ``_certiverse_counter_checks``,
which ``certiverse status`` reads.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .warehouse import tables

log = logging.getLogger(__name__)

ACCOUNTING = "_certiverse_api_accounting"
CHECKS = "_certiverse_counter_checks"


class Counters(NamedTuple):
    """A purchase's counters as the API reports them."""

    quantity: int
    used: int
    remaining: int


@dataclass(frozen=True)
class Disagreement:
    """A purchase whose counters and current vouchers in the warehouse do not add up."""

    code: str
    counters: Counters
    vouchers: int
    vouchers_used: int


@dataclass
class CounterCheck:
    """One run's check: purchases compared, re-read, repaired, and left to the API's accounting."""

    checked: int = 0
    reread: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    api_accounting: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "purchases_checked": self.checked,
            "purchases_reread": len(self.reread),
            "purchases_repaired": len(self.repaired),
            "purchases_api_accounting": len(self.api_accounting),
        }

    def sentence(self) -> str:
        return (f"Counter check: {self.checked:,} purchases checked against the API's counters; "
                f"{len(self.reread):,} re-read, {len(self.repaired):,} of them repaired; "
                f"{len(self.api_accounting):,} differ by the API's own accounting.")


def agrees(status: str | None, counters: Counters, vouchers: int, used: int) -> bool:
    """Whether a purchase's counters match its current vouchers (the rules in the module docstring)."""
    if counters.used != used or counters.remaining != vouchers - used:
        return False
    return status != "Complete" or counters.quantity == vouchers


def disagreements(client: Any) -> tuple[int, dict[str, Disagreement]]:
    """How many purchases the warehouse holds, and those that disagree with their current vouchers."""
    purchases = client.make_qualified_table_name("purchases")
    vouchers = client.make_qualified_table_name("vouchers")
    rows = client.execute_sql(
        f"""
        with current_vouchers as (
            select
                voucher_purchase_code,
                count(*) as vouchers,
                sum(case when is_used then 1 else 0 end) as vouchers_used
            from {vouchers}
            where _dlt_valid_to is null
            group by voucher_purchase_code
        )
        select
            p.voucher_purchase_code,
            p.status,
            p.quantity,
            p.quantity_used,
            p.quantity_remaining,
            coalesce(v.vouchers, 0),
            coalesce(v.vouchers_used, 0)
        from {purchases} as p
        left join current_vouchers as v on v.voucher_purchase_code = p.voucher_purchase_code
        """
    )
    out: dict[str, Disagreement] = {}
    for code, status, quantity, used, remaining, n, n_used in rows:
        counters = Counters(int(quantity or 0), int(used or 0), int(remaining or 0))
        if not agrees(status, counters, int(n), int(n_used)):
            out[code] = Disagreement(code, counters, int(n), int(n_used))
    return len(rows), out


def known_accounting(client: Any) -> dict[str, tuple[Counters, dt.datetime]]:
    """Disagreements earlier runs confirmed by a fresh read: code -> (counters then, when confirmed)."""
    if ACCOUNTING not in tables(client):
        return {}
    rows = client.execute_sql(
        f"select voucher_purchase_code, quantity, quantity_used, quantity_remaining, confirmed_at "
        f"from {client.make_qualified_table_name(ACCOUNTING)}"
    )
    return {code: (Counters(int(q), int(u), int(r)), at) for code, q, u, r, at in rows}


def to_reread(client: Any) -> tuple[int, dict[str, Disagreement], list[str]]:
    """Purchases checked, those that disagree, and those of them to re-read (not known with these counters)."""
    checked, found = disagreements(client)
    known = known_accounting(client)
    fresh = sorted(code for code, d in found.items() if code not in known or known[code][0] != d.counters)
    return checked, found, fresh


def record(client: Any, check: CounterCheck, remaining: dict[str, Disagreement]) -> None:
    """Store the disagreements left after this run's re-reads, and the run's figures, in the warehouse."""
    now = dt.datetime.now(dt.timezone.utc)
    known = known_accounting(client)
    accounting = client.make_qualified_table_name(ACCOUNTING)
    checks = client.make_qualified_table_name(CHECKS)
    with client.begin_transaction():
        client.execute_sql(
            f"create table if not exists {accounting} (voucher_purchase_code varchar not null, "
            "quantity bigint, quantity_used bigint, quantity_remaining bigint, vouchers bigint, "
            "vouchers_used bigint, confirmed_at timestamp with time zone)"
        )
        client.execute_sql(
            f"create table if not exists {checks} (checked_at timestamp with time zone, "
            "purchases_checked bigint, purchases_reread bigint, purchases_repaired bigint, "
            "purchases_api_accounting bigint)"
        )
        client.execute_sql(f"delete from {accounting}")
        rows = sorted(remaining.values(), key=lambda d: d.code)
        for start in range(0, len(rows), 500):
            batch = rows[start:start + 500]
            params: list[Any] = []
            for d in batch:
                before = known.get(d.code)
                confirmed = before[1] if before and before[0] == d.counters else now
                params += [d.code, *d.counters, d.vouchers, d.vouchers_used, confirmed]
            values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(batch))
            client.execute_sql(f"insert into {accounting} values {values}", *params)
        figures = check.as_dict()
        client.execute_sql(
            f"insert into {checks} values (%s, %s, %s, %s, %s)",
            now, figures["purchases_checked"], figures["purchases_reread"], figures["purchases_repaired"],
            figures["purchases_api_accounting"],
        )


def last_check(client: Any) -> dict[str, Any] | None:
    """The newest run's figures, for ``certiverse status``; None before the first check."""
    if CHECKS not in tables(client):
        return None
    rows = client.execute_sql(
        f"select checked_at, purchases_checked, purchases_reread, purchases_repaired, purchases_api_accounting "
        f"from {client.make_qualified_table_name(CHECKS)} order by checked_at desc limit 1"
    )
    if not rows:
        return None
    at, checked, reread, repaired, accounting = rows[0]
    return {"checked_at": at.isoformat() if at else None, "purchases_checked": checked,
            "purchases_reread": reread, "purchases_repaired": repaired, "purchases_api_accounting": accounting}
