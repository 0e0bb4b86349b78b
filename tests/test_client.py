"""The httpx client: paging safety, errors and retries, against respx routes."""

from __future__ import annotations

import httpx
import pytest
import respx

from certiverse_warehouse.sources.certiverse.client import (
    ApiUnavailableError,
    AuthError,
    BadRequestError,
    CertiverseClient,
    PagingError,
    Query,
    TooManyRecordsError,
)

BASE = "https://tenant.example.test"
TOKEN = "s3cret-token-value"
PURCHASES = BASE + "/api/vouchers/purchases"
QUERY = Query.of("purchases", programName="Cloud")


def make_client(sleeps: list[float] | None = None, **kwargs) -> CertiverseClient:
    sink = sleeps if sleeps is not None else []
    return CertiverseClient(BASE, TOKEN, sleep=sink.append, backoff_base=0.01, **kwargs)


def page(ids: list[int], next_link=...) -> httpx.Response:
    body: dict = {"data": [{"id": str(i)} for i in ids]}
    if next_link is not ...:
        body["nextLink"] = next_link
    return httpx.Response(200, json=body)


def read_ids(client: CertiverseClient, query: Query = QUERY) -> list[str]:
    return [r["id"] for p in client.pages(query) for r in p]


@respx.mock
def test_follows_next_link_until_the_last_page_whatever_the_parameter_order():
    route = respx.get(url__startswith=PURCHASES).mock(
        side_effect=[
            page([1, 2], f"{PURCHASES}?page=2&programName=Cloud"),
            page([3, 4], f"{PURCHASES}?programName=Cloud&page=3"),
            page([5]),
        ]
    )
    assert read_ids(make_client()) == ["1", "2", "3", "4", "5"]
    assert [dict(c.request.url.params) for c in route.calls] == [
        {"programName": "Cloud"},
        {"page": "2", "programName": "Cloud"},
        {"programName": "Cloud", "page": "3"},
    ]


@pytest.mark.parametrize("last", [..., None, ""], ids=["absent", "null", "empty"])
@respx.mock
def test_absent_null_or_empty_next_link_ends_paging(last):
    route = respx.get(url__startswith=PURCHASES).mock(side_effect=[page([1], f"{PURCHASES}?programName=Cloud&page=2"), page([2], last)])
    assert read_ids(make_client()) == ["1", "2"]
    assert route.call_count == 2


@respx.mock
def test_next_link_that_dropped_a_filter_gets_it_back():
    route = respx.get(url__startswith=PURCHASES).mock(side_effect=[page([1], f"{PURCHASES}?page=2"), page([2])])
    read_ids(make_client())
    assert route.calls[1].request.url.params["programName"] == "Cloud"


@respx.mock
def test_next_link_repeating_a_page_is_an_error_not_a_loop():
    again = f"{PURCHASES}?programName=Cloud&page=2"
    respx.get(url__startswith=PURCHASES).mock(side_effect=[page([1], again), page([2], again), page([3], again)])
    with pytest.raises(PagingError, match="repeats"):
        read_ids(make_client())


@respx.mock
def test_401_fails_at_once_without_showing_the_token():
    route = respx.get(url__startswith=PURCHASES).mock(return_value=httpx.Response(401, json={"error": "unauthorized"}))
    with pytest.raises(AuthError) as caught:
        read_ids(make_client())
    assert route.call_count == 1
    assert "token" in str(caught.value) and TOKEN not in str(caught.value)


@respx.mock
def test_400_names_the_query_that_caused_it():
    respx.get(url__startswith=PURCHASES).mock(return_value=httpx.Response(400, json={"message": "status is invalid"}))
    with pytest.raises(BadRequestError) as caught:
        read_ids(make_client(), Query.of("purchases", status="Bogus"))
    assert "status=Bogus" in str(caught.value) and "status is invalid" in str(caught.value)


@respx.mock
def test_422_on_a_later_page_reports_the_page():
    respx.get(url__startswith=PURCHASES).mock(
        side_effect=[page([1], f"{PURCHASES}?programName=Cloud&page=2"), httpx.Response(422, json={})]
    )
    client = make_client()
    pages = client.pages(QUERY)
    assert [r["id"] for r in next(pages)] == ["1"]
    with pytest.raises(TooManyRecordsError) as caught:
        next(pages)
    assert caught.value.page == 2


@respx.mock
def test_5xx_timeouts_resets_and_truncated_bodies_are_retried_and_counted():
    respx.get(url__startswith=PURCHASES).mock(
        side_effect=[
            httpx.Response(500),
            httpx.ConnectTimeout("slow"),
            httpx.ReadError("connection reset"),
            httpx.Response(200, content=b'{"data": [{"id": "1"}'),
            httpx.Response(503),
            page([1]),
        ]
    )
    client = make_client()
    assert read_ids(client) == ["1"]
    assert client.stats.as_dict() == {"purchases": {"200": 1, "500": 1, "503": 1, "bad_body": 1, "network": 2}}


@respx.mock
def test_429_waits_as_long_as_retry_after_says():
    respx.get(url__startswith=PURCHASES).mock(side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), page([1])])
    sleeps: list[float] = []
    assert read_ids(make_client(sleeps)) == ["1"]
    assert sleeps and 6.5 <= sleeps[0] <= 7.0


@respx.mock
def test_retries_are_bounded_by_time_not_by_a_count():
    budget = 60.0
    route = respx.get(url__startswith=PURCHASES).mock(return_value=httpx.Response(500))
    clock = MovingClock()
    client = CertiverseClient(BASE, TOKEN, sleep=clock.sleep, clock=clock, backoff_base=0.5, backoff_max=4.0,
                              retry_budget=budget)
    with pytest.raises(ApiUnavailableError, match=f"giving up after {budget:g}s of retries"):
        read_ids(client)
    assert budget <= clock.now < budget + 4.0
    assert route.call_count > 6  # the old count of attempts; time decides now


class MovingClock:
    """Monotonic seconds that move only when the client sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_missing_token_is_a_clear_error():
    with pytest.raises(AuthError, match="API_TOKEN"):
        CertiverseClient(BASE, "")


# -- stopping: what a reader whose consumer went away relies on ------------------------------------


@respx.mock
def test_stop_ends_a_backoff_at_once_and_nothing_more_is_sent():
    import threading

    from certiverse_warehouse.sources.certiverse.client import ClientStopped

    route = respx.get(url__startswith=PURCHASES).mock(return_value=httpx.Response(503))
    # The real wait (no sleep= given): a backoff of at least 60 s after the first 503.
    client = CertiverseClient(BASE, TOKEN, backoff_base=120.0, backoff_max=120.0)
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            client.page(QUERY)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    for _ in range(500):  # the first answer arrives, then the backoff begins
        if route.call_count:
            break
        worker.join(0.01)
    client.stop()
    worker.join(10)  # far below the backoff: the stop woke the wait
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ClientStopped)
    assert route.call_count == 1
    with pytest.raises(ClientStopped):
        client.page(QUERY)
    assert route.call_count == 1
