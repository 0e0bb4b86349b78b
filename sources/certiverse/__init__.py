"""dlt source for the Certiverse Voucher Partner API.

Configuration (dlt's usual way):

    [sources.certiverse]            # .dlt/config.toml
    base_url = "https://yourtenant.certiverse.com"
    workers = 16

    [sources.certiverse]            # .dlt/secrets.toml
    api_token = "..."

or ``SOURCES__CERTIVERSE__BASE_URL`` / ``SOURCES__CERTIVERSE__API_TOKEN``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Iterable, Iterator, Sequence

import dlt
from dlt.sources import DltResource

from .catalog import Catalog
from .client import (
    ApiUnavailableError,
    AuthError,
    BadRequestError,
    CertiverseClient,
    CertiverseError,
    ConfigurationError,
    NotTheApiError,
    PagingError,
    Query,
    RequestStats,
    TooManyRecordsError,
)
from .columnar import voucher_batches
from .planning import plan_voucher_read
from .plans import read_purchases_whole
from .reader import CapExceededError
from .schema import CONTENT_HASH, child_table_hints, record_hints, voucher_hints
from .snapshot import LiveVouchers, Snapshot
from .values import UnreadableValueError

__all__ = [
    "certiverse_source",
    "CertiverseClient",
    "CertiverseError",
    "AuthError",
    "ConfigurationError",
    "NotTheApiError",
    "BadRequestError",
    "TooManyRecordsError",
    "CapExceededError",
    "PagingError",
    "ApiUnavailableError",
    "UnreadableValueError",
    "Query",
    "RequestStats",
    "Snapshot",
    "LiveVouchers",
]

log = logging.getLogger(__name__)


@dlt.source(name="certiverse")
def certiverse_source(
    base_url: str = dlt.config.value,
    api_token: str = dlt.secrets.value,
    workers: int = 16,
    record_cap: int = 10_000,
    timeout: float = 30.0,
    max_attempts: int = 6,
    retry_backoff: float = 0.5,
    max_requests_per_second: float | None = None,
    recheck_nights: int = 7,
    full_refresh: bool = False,
    previous: Snapshot | None = None,
    as_of: dt.datetime | None = None,
    stats: RequestStats | None = None,
    reread_purchases: Sequence[str] | None = None,
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
        retry_backoff: seconds before the first retry; doubles each time, with jitter.
        max_requests_per_second: a ceiling on the request rate of all workers together
            (default: none; a 429 pauses every worker whatever this says).
        recheck_nights: nightly runs re-read every settled voucher at least once
            in this many nights.
        full_refresh: read every voucher, not only what can have changed.
        previous: what the warehouse held after the last load; None (or
            ``full_refresh``) reads everything.
        as_of: "now", to tell open vouchers from expired ones (default: the API's
            own clock, from its ``Date`` header; tests set it).
        stats: request counters to fill (the CLI prints them).
        reread_purchases: read only these purchases' vouchers, whole (the counter check's
            repair; the nightly plan and its state are left alone).
    """
    client = CertiverseClient(
        base_url,
        api_token,
        timeout=timeout,
        max_attempts=max_attempts,
        backoff_base=retry_backoff,
        max_requests_per_second=max_requests_per_second,
        max_connections=max(16, workers * 2),
    )
    if stats is not None:
        client.stats = stats
    catalog = Catalog(client, workers=workers, record_cap=record_cap)
    return (
        partners(catalog),
        programs(catalog),
        purchases(catalog),
        vouchers(catalog, None if full_refresh else previous, recheck_nights, as_of, reread_purchases),
    )


def _nested_hints(endpoint: str) -> dict[tuple[str, ...], Any]:
    return {path: dlt.mark.make_nested_hints(**hints) for path, hints in child_table_hints(endpoint).items()}


def _or_empty_table(pages: Iterable[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
    """The pages; none at all (an empty tenant) still creates the table, with its declared columns."""
    empty = True
    for page in pages:
        empty = empty and not page
        yield page
    if empty:
        yield dlt.mark.materialize_table_schema()


@dlt.resource(name="partners", primary_key="id", write_disposition="merge", columns=record_hints("partners"),
              nested_hints=_nested_hints("partners"))
def partners(catalog: Catalog) -> Iterator[list[dict[str, Any]]]:
    """Every partner the token can see, with its users (child table ``partners__users``)."""
    yield from _or_empty_table([catalog.partners()])


@dlt.resource(name="programs", primary_key="id", write_disposition="merge", columns=record_hints("programs"),
              nested_hints=_nested_hints("programs"))
def programs(catalog: Catalog) -> Iterator[list[dict[str, Any]]]:
    """Every program, with discounts, store exams and assigned partners as child tables."""
    yield from _or_empty_table([catalog.programs()])


@dlt.resource(name="purchases", primary_key="id", write_disposition="merge", columns=record_hints("purchases"))
def purchases(catalog: Catalog) -> Iterator[list[dict[str, Any]]]:
    """Every purchase of every partner and program, in any status."""
    yield from _or_empty_table(catalog.purchase_pages())


@dlt.resource(
    name="vouchers",
    # scd2 keeps each voucher's earlier versions with their validity; merge_key
    # scopes retirement to the vouchers this run read, so partial nightly reads
    # retire nothing they did not see. Rows are Arrow tables (see columnar.py), so the
    # row version is a hash of the API's record computed here, not dlt's _dlt_id.
    write_disposition={"disposition": "merge", "strategy": "scd2", "row_version_column_name": CONTENT_HASH},
    merge_key="id",
    columns=voucher_hints(),
)
def vouchers(
    catalog: Catalog,
    previous: Snapshot | None = None,
    recheck_nights: int = 7,
    as_of: dt.datetime | None = None,
    reread_purchases: Sequence[str] | None = None,
) -> Iterator[Any]:
    """Every voucher (first run, full refresh) or what can have changed since the last run, as Arrow tables."""
    if reread_purchases is not None:
        yield from voucher_batches(read_purchases_whole(catalog.client, reread_purchases, catalog.workers))
        return
    state = dlt.current.resource_state()
    read = plan_voucher_read(catalog, previous, state, recheck_nights, as_of)
    # A full read of a tenant without vouchers still creates the table (an empty tenant).
    yield from voucher_batches(read.pages(catalog.workers), empty=read.mode == "full")
    state.update(read.next_state())
