"""The client's request rate: the configured ceiling, what a 429 teaches, Retry-After in both forms and the
retry budget, checked on the schedule through an injected clock and sleep."""

from __future__ import annotations

import datetime as dt
import email.utils
import threading

import httpx
import pytest
import respx

from certiverse_warehouse.sources.certiverse import pacing
from certiverse_warehouse.sources.certiverse.client import (
    ApiUnavailableError,
    CertiverseClient,
    CertiverseError,
    Query,
)

BASE = "https://tenant.example.test"
TOKEN = "rate-token"
VOUCHERS = BASE + "/api/vouchers"
RATE = 5.0  # requests per second
INTERVAL = 1 / RATE
THREADS = 6
RETRY_AFTER = 3


class FakeClock:
    """A monotonic clock that moves only when someone sleeps (``advance``) or never (frozen)."""

    def __init__(self, advance: bool = True) -> None:
        self.now = 0.0
        self.advance = advance
        self.lock = threading.Lock()
        self.sleeps: list[tuple[str, float]] = []  # (thread name, seconds)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append((threading.current_thread().name, seconds))
            if self.advance:
                self.now += seconds

    def slept(self, thread: str | None = None) -> list[float]:
        return [s for name, s in self.sleeps if thread in (None, name)]


def make_client(clock: FakeClock, rate: float | None = RATE) -> CertiverseClient:
    return CertiverseClient(BASE, TOKEN, sleep=clock.sleep, clock=clock, max_requests_per_second=rate)


def one_page(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"data": [{"id": request.url.params.get("purchaseCode", "x")}]})


def read(client: CertiverseClient, code: str) -> list[dict]:
    return [r for page in client.pages(Query.of("vouchers", purchaseCode=code)) for r in page]


def read_in_threads(client: CertiverseClient, codes: list[str]) -> None:
    threads = [threading.Thread(target=read, args=(client, c), name=c) for c in codes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@respx.mock
def test_requests_of_one_thread_are_spaced_at_the_rate():
    clock = FakeClock()
    pages = 4
    sent_at: list[float] = []

    def paged(request: httpx.Request) -> httpx.Response:
        sent_at.append(clock())
        n = int(request.url.params.get("page", "1"))
        body: dict = {"data": [{"id": str(n)}]}
        if n < pages:
            body["nextLink"] = f"{VOUCHERS}?purchaseCode=P&page={n + 1}"
        return httpx.Response(200, json=body)

    respx.get(url__startswith=VOUCHERS).mock(side_effect=paged)
    assert len(read(make_client(clock), "P")) == pages
    assert sent_at == pytest.approx([i * INTERVAL for i in range(pages)])


@respx.mock
def test_threads_share_one_rate_each_taking_its_own_slot():
    clock = FakeClock(advance=False)
    respx.get(url__startswith=VOUCHERS).mock(side_effect=one_page)
    read_in_threads(make_client(clock), [f"P{i}" for i in range(THREADS)])
    # The clock stands still: the first request goes at once, each other one waits one slot more.
    assert sorted(clock.slept()) == pytest.approx([i * INTERVAL for i in range(1, THREADS)])


@respx.mock
def test_no_rate_limit_by_default():
    clock = FakeClock(advance=False)
    route = respx.get(url__startswith=VOUCHERS).mock(side_effect=one_page)
    read_in_threads(make_client(clock, rate=None), [f"P{i}" for i in range(THREADS)])
    assert route.call_count == THREADS
    assert clock.slept() == []


def test_rate_must_be_positive():
    with pytest.raises(CertiverseError, match="max_requests_per_second"):
        CertiverseClient(BASE, TOKEN, max_requests_per_second=0)


@pytest.mark.parametrize("rate", [None, RATE])
@respx.mock
def test_a_429_holds_every_thread_until_retry_after_and_lowers_the_rate_for_all(rate):
    clock = FakeClock(advance=False)
    refused: list[str] = []

    def first_429(request: httpx.Request) -> httpx.Response:
        if not refused:
            refused.append(request.url.params["purchaseCode"])
            return httpx.Response(429, headers={"Retry-After": str(RETRY_AFTER)})
        return one_page(request)

    route = respx.get(url__startswith=VOUCHERS).mock(side_effect=first_429)
    client = make_client(clock, rate=rate)
    read(client, "A")
    assert clock.slept() == [RETRY_AFTER]
    learned = client.pacing.rate
    assert learned is not None and learned < (rate or float("inf"))
    clock.sleeps.clear()
    others = [f"B{i}" for i in range(THREADS - 1)]
    read_in_threads(client, others)
    assert route.call_count == THREADS + 1
    # Every other thread waited for the pause, then for its own slot of the learned rate (the clock
    # stands still: what each waited adds up to when it went).
    waits = sorted(sum(clock.slept(name)) for name in others)
    assert waits[0] >= RETRY_AFTER - 1e-9
    assert all(b - a >= 1 / learned * 0.99 for a, b in zip(waits, waits[1:]))


@respx.mock
def test_429s_are_ridden_out_however_many_while_the_budget_lasts():
    clock = FakeClock()
    refusals = 40  # far past the old six attempts
    answers = [httpx.Response(429, headers={"Retry-After": "1"})] * refusals + [one_page_of("A")]
    route = respx.get(url__startswith=VOUCHERS).mock(side_effect=answers)
    assert read(make_client(clock, rate=None), "A") == [{"id": "A"}]
    assert route.call_count == refusals + 1
    assert clock() >= refusals


@respx.mock
def test_a_retry_after_date_is_read_against_the_answers_own_clock():
    clock = FakeClock()
    api_now = dt.datetime(2031, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)  # years from this machine's clock
    headers = {"Date": email.utils.format_datetime(api_now, usegmt=True),
               "Retry-After": email.utils.format_datetime(api_now + dt.timedelta(seconds=RETRY_AFTER), usegmt=True)}
    respx.get(url__startswith=VOUCHERS).mock(side_effect=[httpx.Response(429, headers=headers), one_page_of("A")])
    read(make_client(clock, rate=None), "A")
    assert clock.slept() == [RETRY_AFTER]


@respx.mock
def test_a_429_without_retry_after_is_retried_after_a_backoff():
    clock = FakeClock()
    route = respx.get(url__startswith=VOUCHERS).mock(side_effect=[httpx.Response(429)] * 3 + [one_page_of("A")])
    client = CertiverseClient(BASE, TOKEN, sleep=clock.sleep, clock=clock, backoff_base=0.5)
    assert read(client, "A") == [{"id": "A"}]
    assert route.call_count == 4
    # Its own backoff (0.5, 1, 2 s with jitter), and the slots of the rate it learned (nothing was
    # accepted before the first 429: the slowest rate).
    assert 0.5 * (0.5 + 1 + 2) <= clock() <= 0.5 + 1 + 2 + 3 / pacing.MIN_RATE
    assert pacing.MIN_RATE <= client.pacing.rate < 1


@respx.mock
def test_429s_for_the_whole_budget_end_the_run_as_the_api_unavailable():
    clock = FakeClock()
    budget = 30.0
    respx.get(url__startswith=VOUCHERS).mock(return_value=httpx.Response(429, headers={"Retry-After": "1"}))
    client = CertiverseClient(BASE, TOKEN, sleep=clock.sleep, clock=clock, retry_budget=budget)
    with pytest.raises(ApiUnavailableError, match="giving up after 30s of retries.*HTTP 429"):
        read(client, "A")
    assert budget <= clock() <= budget + 1


@respx.mock
def test_a_retry_after_longer_than_the_budget_left_gives_up_at_once():
    clock = FakeClock()
    route = respx.get(url__startswith=VOUCHERS).mock(
        return_value=httpx.Response(429, headers={"Retry-After": "3600"}))
    client = CertiverseClient(BASE, TOKEN, sleep=clock.sleep, clock=clock, retry_budget=600)
    with pytest.raises(ApiUnavailableError, match="asks to wait 3600s"):
        read(client, "A")
    assert route.call_count == 1 and clock() == 0


@respx.mock
def test_the_learned_rate_never_passes_max_requests_per_second():
    clock = FakeClock()
    sent_at: list[float] = []

    def limited(request: httpx.Request) -> httpx.Response:
        sent_at.append(clock())
        if len(sent_at) == 2:
            return httpx.Response(429, headers={"Retry-After": "1"})
        return one_page(request)

    respx.get(url__startswith=VOUCHERS).mock(side_effect=limited)
    client = make_client(clock)
    for i in range(60):  # ~12 s of accepted requests after the cut: the rate climbs back to the ceiling
        read(client, f"P{i}")
    gaps = [b - a for a, b in zip(sent_at, sent_at[1:])]
    assert min(gaps) >= INTERVAL - 1e-9
    assert client.pacing.rate == RATE


def one_page_of(code: str) -> httpx.Response:
    return httpx.Response(200, json={"data": [{"id": code}]})
