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

import logging
from typing import Any, Iterable, Iterator, Sequence

import dlt
import pyarrow as pa
from dlt.common.storages.exceptions import CurrentLoadPackageStateNotAvailable
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
from .inputs import FULL_READ, RunInputs
from .planning import plan_voucher_read
from .plans import read_purchases_whole
from .reader import CapExceededError
from .schema import CONTENT_HASH, child_table_hints, record_hints, voucher_hints
from .snapshot import LiveVouchers, Snapshot
from .values import UnreadableValueError

# dlt's column of the load that wrote a row (rows_written() and analysts tell loads apart by it)
LOAD_ID = "_dlt_load_id"

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
    "RunInputs",
    "requests_of",
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
    retry_budget: float = 600.0,
    retry_backoff: float = 0.5,
    max_requests_per_second: float | None = None,
    recheck_nights: int = 7,
) -> Sequence[DltResource]:
    """Partners, programs, purchases and vouchers of one Certiverse tenant.

    The signature is the configuration (``[sources.certiverse]``). The run's inputs
    (the warehouse's snapshot, "now", a repair list) are bound to the ``vouchers``
    resource as one :class:`RunInputs` (``source.vouchers.bind(inputs)``); unbound,
    it reads every voucher. The ``purchases`` resource takes the same value
    (``source.purchases.bind(inputs)``): the purchases the warehouse holds are what
    its listing is checked against. Each resource reports the requests it sent to its
    endpoint into dlt's trace (``dlt.current.resource_metrics()``): read them back
    with :func:`requests_of`.

    Args:
        base_url: the tenant's API root, e.g. ``https://acme.certiverse.com``.
        api_token: bearer token of a user holding ``PartnerManageVouchers``.
        workers: queries fetched at once.
        record_cap: the API's per-query record cap (10,000 per the reference);
            queries expected to exceed it are split before they are sent.
        timeout: seconds per request.
        retry_budget: seconds a request is retried (429, 5xx, connection errors, timeouts,
            broken bodies) before the run gives up with :class:`ApiUnavailableError`.
        retry_backoff: seconds before the first retry; doubles each time, with jitter.
        max_requests_per_second: a ceiling on the request rate of all workers together
            (default: none; the rate a 429 teaches stays below it).
        recheck_nights: nightly runs re-read every settled voucher at least once
            in this many nights.
    """
    client = CertiverseClient(
        base_url,
        api_token,
        timeout=timeout,
        retry_budget=retry_budget,
        backoff_base=retry_backoff,
        max_requests_per_second=max_requests_per_second,
        max_connections=max(16, workers * 2),
    )
    catalog = Catalog(client, workers=workers, record_cap=record_cap)
    return (
        partners(catalog),
        programs(catalog),
        purchases_resource(catalog),
        vouchers_resource(catalog, recheck_nights),
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
    _report_requests(catalog.client, "partners")


@dlt.resource(name="programs", primary_key="id", write_disposition="merge", columns=record_hints("programs"),
              nested_hints=_nested_hints("programs"))
def programs(catalog: Catalog) -> Iterator[list[dict[str, Any]]]:
    """Every program, with discounts, store exams and assigned partners as child tables."""
    yield from _or_empty_table([catalog.programs()])
    _report_requests(catalog.client, "programs")


def purchases_resource(catalog: Catalog) -> DltResource:
    """The purchases resource of one run's catalog, parametrized by the run's inputs: the purchases the
    warehouse holds are a total the listing is checked against (``Catalog.purchase_pages``)."""

    @dlt.resource(name="purchases", primary_key="id", write_disposition="merge", columns=record_hints("purchases"))
    def purchases(inputs: RunInputs = FULL_READ) -> Iterator[list[dict[str, Any]]]:
        """Every purchase of every partner and program, in any status."""
        known = inputs.snapshot.purchase_codes() if inputs.snapshot is not None else frozenset()
        yield from _or_empty_table(catalog.purchase_pages(known))
        _report_requests(catalog.client, "purchases")

    return purchases


def vouchers_resource(catalog: Catalog, recheck_nights: int) -> DltResource:
    """The vouchers resource of one run's catalog, parametrized by the run's inputs (see :class:`RunInputs`).

    Made per source because it shares the source's catalog; left unbound so that the
    caller binds the run's inputs (``source.vouchers.bind(inputs)``).
    """

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
    def vouchers(inputs: RunInputs = FULL_READ) -> Iterator[Any]:
        """Every voucher (first run, full refresh), what can have changed since the last run, or the
        purchases of a repair, as Arrow tables."""
        if inputs.reread_purchases:
            pages = read_purchases_whole(catalog.client, list(inputs.reread_purchases), catalog.workers)
            yield from map(_with_load_id, voucher_batches(pages))
        else:
            state = dlt.current.resource_state()
            read = plan_voucher_read(catalog, inputs.plan_snapshot, state, recheck_nights, inputs.as_of)
            # A full read of a tenant without vouchers still creates the table (an empty tenant).
            yield from map(_with_load_id, voucher_batches(read.pages(catalog.workers), empty=read.mode == "full"))
            state.update(read.next_state())
        _report_requests(catalog.client, "vouchers")

    return vouchers


def _with_load_id(table: pa.Table) -> pa.Table:
    """The batch with dlt's ``_dlt_load_id`` column: the id of the load package it is extracted into.

    dlt's JSON normalizer gives every row its load id; Arrow tables get one only when the
    parquet normalizer is configured to add it, which no configuration of this project's users
    should have to carry. Outside a pipeline (a source iterated by hand) there is no package.
    """
    try:
        load_id = dlt.current.load_package_state()["load_id"]
    except CurrentLoadPackageStateNotAvailable:
        return table
    column = pa.array([load_id] * table.num_rows, type=pa.string())
    return table.append_column(pa.field(LOAD_ID, pa.string(), nullable=False), column)


def _report_requests(client: CertiverseClient, endpoint: str) -> None:
    """Put the requests sent to ``endpoint`` and the records they brought into the resource's metrics
    (dlt keeps them in the extract step of the trace; :func:`requests_of` reads them back)."""
    metrics = dlt.current.resource_metrics()
    metrics["requests"] = {endpoint: client.stats.as_dict().get(endpoint, {})}
    metrics["records"] = {endpoint: client.stats.records.get(endpoint, 0)}


def requests_of(*extracts: Any) -> RequestStats:
    """Requests by endpoint and outcome, and records by endpoint, as the resources reported them into
    the extract steps of the given traces' ``ExtractInfo`` (``pipeline.last_trace.last_extract_info``;
    None is skipped: a run that only finished pending packages extracted nothing)."""
    counted = RequestStats()
    for extract in extracts:
        for metrics in (extract.metrics.values() if extract is not None else ()):
            for step in metrics:
                for resource in step["resource_metrics"].values():
                    custom = resource.custom_metrics
                    for endpoint, outcomes in custom.get("requests", {}).items():
                        for outcome, n in outcomes.items():
                            counted.counts[(endpoint, outcome)] += n
                    for endpoint, n in custom.get("records", {}).items():
                        counted.records[endpoint] += n
    return counted
