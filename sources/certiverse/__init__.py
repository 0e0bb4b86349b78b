"""dlt source for the Certiverse Voucher Partner API.

Configuration (dlt's usual way):

    [sources.certiverse]            # .dlt/config.toml
    base_url = "https://yourtenant.certiverse.com"
    workers = 4

    [sources.certiverse]            # .dlt/secrets.toml
    api_token = "..."

or ``SOURCES__CERTIVERSE__BASE_URL`` / ``SOURCES__CERTIVERSE__API_TOKEN``.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import dlt
from dlt.sources import DltResource

from .client import (
    ApiUnavailableError,
    AuthError,
    BadRequestError,
    CertiverseClient,
    CertiverseError,
    PagingError,
    Query,
    RequestStats,
    TooManyRecordsError,
)
from .plans import Catalog, VoucherPlan
from .reader import CapExceededError

__all__ = [
    "certiverse_source",
    "CertiverseClient",
    "CertiverseError",
    "AuthError",
    "BadRequestError",
    "TooManyRecordsError",
    "CapExceededError",
    "PagingError",
    "ApiUnavailableError",
    "Query",
    "RequestStats",
]

_TIMESTAMP = {"data_type": "timestamp", "timezone": True}


@dlt.source(name="certiverse")
def certiverse_source(
    base_url: str = dlt.config.value,
    api_token: str = dlt.secrets.value,
    workers: int = 4,
    record_cap: int = 10_000,
    timeout: float = 30.0,
    max_attempts: int = 6,
    stats: RequestStats | None = None,
) -> Sequence[DltResource]:
    """Partners, programs, purchases and vouchers of one Certiverse tenant.

    Args:
        base_url: the tenant's API root, e.g. ``https://acme.certiverse.com``.
        api_token: bearer token of a user holding ``PartnerManageVouchers``.
        workers: queries fetched at once.
        record_cap: the API's per-query record cap (10,000 per the reference);
            queries expected to exceed it are split before they are sent.
        timeout: seconds per request.
        max_attempts: tries per request on 5xx, 429, timeouts and broken bodies.
        stats: request counters to fill (the CLI prints them).
    """
    client = CertiverseClient(base_url, api_token, timeout=timeout, max_attempts=max_attempts)
    if stats is not None:
        client.stats = stats
    catalog = Catalog(client, workers=workers, record_cap=record_cap)
    return (
        partners(catalog),
        programs(catalog),
        purchases(catalog),
        vouchers(catalog),
    )


@dlt.resource(name="partners", primary_key="id", write_disposition="merge")
def partners(catalog: Catalog) -> Iterator[list[dict[str, Any]]]:
    """Every partner the token can see, with its users (child table ``partners__users``)."""
    yield catalog.partners()


@dlt.resource(name="programs", primary_key="id", write_disposition="merge")
def programs(catalog: Catalog) -> Iterator[list[dict[str, Any]]]:
    """Every program, with discounts, store exams and assigned partners as child tables."""
    yield catalog.programs()


@dlt.resource(
    name="purchases",
    primary_key="id",
    write_disposition="merge",
    columns={"purchase_date_utc": _TIMESTAMP, "amount_paid": {"data_type": "decimal"}},
)
def purchases(catalog: Catalog) -> Iterator[list[dict[str, Any]]]:
    """Every purchase of every partner and program, in any status."""
    yield catalog.purchases()


@dlt.resource(
    name="vouchers",
    primary_key="id",
    write_disposition="merge",
    columns={
        "expiration_date_utc": _TIMESTAMP,
        "assigned_date_utc": _TIMESTAMP,
        "used_by__used_date_utc": _TIMESTAMP,
    },
)
def vouchers(catalog: Catalog) -> Iterator[list[dict[str, Any]]]:
    """Every voucher, read through the cheapest plan that covers them all."""
    yield from VoucherPlan(catalog).read(catalog.workers)
