"""The client's request-rate limit and 429 pause, checked on the schedule through an injected clock and sleep."""

from __future__ import annotations

import threading

import httpx
import pytest
import respx

from certiverse_warehouse.sources.certiverse.client import CertiverseClient, CertiverseError, Query

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
def test_429_holds_every_thread_until_retry_after_then_the_rate_resumes(rate):
    clock = FakeClock(advance=False)
    paused, others_done = threading.Event(), threading.Event()
    others = [f"B{i}" for i in range(THREADS - 1)]
    refused: list[str] = []

    def first_429(request: httpx.Request) -> httpx.Response:
        if request.url.params["purchaseCode"] == "A" and not refused:
            refused.append("A")
            return httpx.Response(429, headers={"Retry-After": str(RETRY_AFTER)})
        return one_page(request)

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if threading.current_thread().name == "A" and not paused.is_set():
            # A sleeps out its 429: the others start now, while the pause holds.
            paused.set()
            assert others_done.wait(5)

    def other(code: str) -> None:
        assert paused.wait(5)
        read(client, code)

    route = respx.get(url__startswith=VOUCHERS).mock(side_effect=first_429)
    client = CertiverseClient(BASE, TOKEN, sleep=sleep, clock=clock, max_requests_per_second=rate)
    threads = [threading.Thread(target=other, args=(c,), name=c) for c in others]
    for t in threads:
        t.start()
    a = threading.Thread(target=read, args=(client, "A"), name="A")
    a.start()
    for t in threads:
        t.join()
    others_done.set()
    a.join()

    assert route.call_count == THREADS + 1
    waits = sorted(s for name in others for s in clock.slept(name))
    if rate is None:
        assert waits == [RETRY_AFTER] * len(others)
    else:
        # After the pause the others go one slot apart, not all at once.
        assert waits == pytest.approx([RETRY_AFTER + i * INTERVAL for i in range(len(others))])
