"""Outages at the client: no answer, 502, 503, 504 with any body are waited out for the retry budget (a time,
not a count), a 500 is retried alone, a wrong host still fails at once; against respx routes."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import respx

from certiverse_warehouse.sources.certiverse.client import (
    ApiUnavailableError,
    CertiverseClient,
    ClientStopped,
    ConfigurationError,
    Query,
)

BASE = "https://tenant.example.test"
TOKEN = "outage-token"
PARTNERS = BASE + "/api/vouchers/partners"
QUERY = Query("partners")
IIS_503 = httpx.Response(503, headers={"Content-Type": "text/html; charset=us-ascii"},
                         text="<HTML><HEAD><TITLE>Service Unavailable</TITLE></HEAD><BODY><h2>Service Unavailable</h2>"
                              "<hr><p>HTTP Error 503. The service is unavailable.</p></BODY></HTML>")
OK = httpx.Response(200, json={"data": [{"id": "p-1"}]})


class Clock:
    """Monotonic seconds that move only when the client waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def make_client(clock: Clock, **kwargs) -> CertiverseClient:
    return CertiverseClient(BASE, TOKEN, sleep=clock.sleep, clock=clock, **kwargs)


def read(client: CertiverseClient) -> list[dict]:
    return [r for page in client.pages(QUERY) for r in page]


@respx.mock
def test_an_outage_of_503_pages_is_waited_out_however_many_tries_it_takes():
    clock = Clock()
    tries = 20  # the old count of attempts was 6
    route = respx.get(url__startswith=PARTNERS).mock(side_effect=[IIS_503] * tries + [OK])
    client = make_client(clock, backoff_max=15.0)
    assert read(client) == [{"id": "p-1"}]
    assert route.call_count == tries + 1
    assert client.pacing.unavailable_since is None  # over, once the API answered
    assert max(clock.waits) <= 15.0  # the pauses grow to the cap, no further: the end is seen soon


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"),
     httpx.Response(502, text="<html><body><h1>502 Bad Gateway</h1></body></html>",
                    headers={"Content-Type": "text/html"}),
     httpx.Response(504)],
    ids=["refused", "timeout", "dropped", "502", "504"],
)
@respx.mock
def test_no_answer_502_and_504_are_an_outage_too(failure):
    clock = Clock()
    seen: list[float | None] = []

    def answer(request: httpx.Request):
        seen.append(client.pacing.unavailable_since)
        if len(seen) <= 3:
            if isinstance(failure, Exception):
                raise failure
            return failure
        return OK

    respx.get(url__startswith=PARTNERS).mock(side_effect=answer)
    client = make_client(clock)
    assert read(client) == [{"id": "p-1"}]
    assert seen[0] is None and all(s is not None for s in seen[1:])  # held as an outage from the first failure


@respx.mock
def test_a_500_is_retried_alone_not_held_as_an_outage():
    clock = Clock()
    seen: list[float | None] = []

    def answer(request: httpx.Request):
        seen.append(client.pacing.unavailable_since)
        return httpx.Response(500) if len(seen) <= 3 else OK

    respx.get(url__startswith=PARTNERS).mock(side_effect=answer)
    client = make_client(clock)
    assert read(client) == [{"id": "p-1"}]
    assert seen == [None] * 4


@respx.mock
def test_an_outage_longer_than_the_budget_gives_up_naming_the_last_answer():
    clock = Clock()
    budget = 120.0
    respx.get(url__startswith=PARTNERS).mock(return_value=IIS_503)
    client = make_client(clock, retry_budget=budget)
    with pytest.raises(ApiUnavailableError) as raised:
        read(client)
    assert budget <= clock.now <= budget + 1
    assert ("giving up after 120s of retries (retry_budget); last problem: HTTP 503, text/html; charset=us-ascii: "
            "'Service Unavailable HTTP Error 503. The service is unavailable.'") in str(raised.value)


def resolver_says(code: int, message: str) -> httpx.MockTransport:
    """A transport failing as httpx does when name resolution fails (respx would replace the cause)."""
    calls: list[httpx.Request] = []

    def fail(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) > 2:
            return httpx.Response(200, json={"data": [{"id": "p-1"}]})
        raise httpx.ConnectError(f"[Errno {code}] {message}", request=request) from socket.gaierror(code, message)

    transport = httpx.MockTransport(fail)
    transport.calls = calls  # type: ignore[attr-defined]
    return transport


def test_a_host_dns_does_not_know_fails_at_once_as_a_wrong_base_url():
    transport = resolver_says(socket.EAI_NONAME, "Name or service not known")
    with pytest.raises(ConfigurationError, match="host of https://tenant.example.test is unknown.*base URL"):
        read(make_client(Clock(), transport=transport))
    assert len(transport.calls) == 1


def test_a_temporary_dns_failure_is_an_outage():
    transport = resolver_says(socket.EAI_AGAIN, "Temporary failure in name resolution")
    assert read(make_client(Clock(), transport=transport)) == [{"id": "p-1"}]
    assert len(transport.calls) == 3


@respx.mock
def test_stop_ends_the_wait_for_an_outage_at_once():
    route = respx.get(url__startswith=PARTNERS).mock(return_value=IIS_503)
    client = CertiverseClient(BASE, TOKEN, backoff_base=120.0, backoff_max=120.0)  # real waits of a minute or more
    raised: list[BaseException] = []

    def reader() -> None:
        try:
            read(client)
        except BaseException as exc:  # noqa: BLE001 - the test looks at what it was
            raised.append(exc)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not route.called and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    client.stop()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert len(raised) == 1 and isinstance(raised[0], ClientStopped)
    assert route.call_count == 1


@respx.mock
def test_a_purchase_is_sent_again_after_a_429_but_never_after_an_outage():
    purchases = BASE + "/api/vouchers/purchases"
    created = {"voucherPurchaseCode": "VP-1", "quantity": 1}
    route = respx.post(purchases).mock(side_effect=[httpx.Response(429, headers={"Retry-After": "1"}),
                                                    httpx.Response(200, json=created)])
    client = make_client(Clock())
    assert client.create_purchase("Acme", "Free", 1, "notes") == created
    assert route.call_count == 2
    route.reset()
    route.mock(side_effect=[IIS_503, httpx.Response(200, json=created)])
    with pytest.raises(ApiUnavailableError, match="not retried"):
        client.create_purchase("Acme", "Free", 1, "notes")
    assert route.call_count == 1  # it may have arrived: sending it again could buy twice
