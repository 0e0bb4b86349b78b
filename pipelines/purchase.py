"""`certiverse purchase create`: buy $0 vouchers through the API, checked before anything is sent."""

from __future__ import annotations

from typing import Any

from ..sources.certiverse import BadRequestError, CertiverseClient, Query


class PurchaseRefused(Exception):
    """The purchase would be (or was) refused; the message says why in plain words."""


def _exact(client: CertiverseClient, endpoint: str, param: str, name: str) -> dict[str, Any] | None:
    # Name filters match partially: "Acme" also returns "Acme Europe".
    for page in client.pages(Query.of(endpoint, **{param: name})):
        for record in page:
            if record.get("name") == name:
                return record
    return None


def check_purchase(client: CertiverseClient, partner: str, program: str, quantity: int, notes: str) -> list[str]:
    """Every reason the API would refuse this purchase, found before sending it (empty: good to go)."""
    problems = []
    if not notes.strip():
        problems.append("notes must not be empty")
    if not 1 <= quantity <= 1000:
        problems.append(f"quantity must be between 1 and 1000, got {quantity}")
    if not partner.strip() or not program.strip():
        problems.append("partner and program names must not be empty")
        return problems
    found_partner = _exact(client, "partners", "partnerName", partner)
    if found_partner is None:
        problems.append(f"no partner is named exactly {partner!r}")
    elif not found_partner.get("isActive") or found_partner.get("isArchived"):
        problems.append(f"partner {partner!r} is not active")
    found_program = _exact(client, "programs", "programName", program)
    if found_program is None:
        problems.append(f"no program is named exactly {program!r}")
        return problems
    if not found_program.get("isActive") or found_program.get("isArchived"):
        problems.append(f"program {program!r} is not active")
    price = (found_program.get("partners") or {}).get("partnerCostPerVoucher")
    if price:
        problems.append(f"program {program!r} costs {price:g} per voucher; the API sells only $0 programs")
    return problems


def create_purchase(client: CertiverseClient, partner: str, program: str, quantity: int, notes: str) -> dict[str, Any]:
    """Check, then POST the purchase; returns the created purchase."""
    problems = check_purchase(client, partner, program, quantity, notes)
    if problems:
        raise PurchaseRefused("not sent: " + "; ".join(problems))
    try:
        return client.create_purchase(partner, program, quantity, notes)
    except BadRequestError as exc:
        raise PurchaseRefused(f"the API refused the purchase (400): {exc.detail}") from exc
