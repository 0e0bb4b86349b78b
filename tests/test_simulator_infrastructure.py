"""The simulator's rate limiter and outage window (simulator/infrastructure.py), on a clock the test moves."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from certiverse_warehouse.simulator import Outage, RateLimit, SimulatorApp, serve

PER_SECOND = 5
PARTNERS = "/api/vouchers/partners"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(app: SimulatorApp, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    return app.handle("GET", "http://sim.test" + PARTNERS, {"Authorization": f"Bearer {token or app.token}"})


def test_the_limiter_lets_a_second_s_worth_through_then_answers_429(small_tenant_template):
    clock = Clock()
    limit = RateLimit(PER_SECOND, clock=clock)
    app = SimulatorApp(small_tenant_template, rate_limit=limit)
    statuses = [get(app)[0] for _ in range(PER_SECOND + 3)]
    assert statuses == [200] * PER_SECOND + [429] * 3 and limit.refused == 3
    clock.now += 1 / PER_SECOND  # one token back
    assert [get(app)[0] for _ in range(2)] == [200, 429]


@pytest.mark.parametrize("form", ["seconds", "date", "absent"])
def test_a_429_says_when_to_come_back_in_the_form_asked_for(small_tenant_template, form):
    clock = Clock()
    app = SimulatorApp(small_tenant_template, rate_limit=RateLimit(PER_SECOND, retry_after=form, clock=clock))
    for _ in range(PER_SECOND):
        get(app)
    status, headers, _ = get(app)
    assert status == 429
    if form == "seconds":
        assert headers["Retry-After"] == "1"  # whole seconds, at least one
    elif form == "date":
        told = email.utils.parsedate_to_datetime(headers["Retry-After"])
        assert (told - email.utils.parsedate_to_datetime(headers["Date"])).total_seconds() == 1
    else:
        assert "Retry-After" not in headers


def test_the_limiter_stands_before_the_api_a_bad_token_is_limited_too(small_tenant_template):
    app = SimulatorApp(small_tenant_template, rate_limit=RateLimit(1, clock=Clock()))
    assert get(app, token="wrong")[0] == 401
    assert get(app, token="wrong")[0] == 429


def test_an_outage_after_n_requests_answers_iis_503_pages_for_its_duration(small_tenant_template):
    clock = Clock()
    outage = Outage(60, after_requests=2, clock=clock)
    app = SimulatorApp(small_tenant_template, outage=outage)
    assert [get(app)[0] for _ in range(2)] == [200, 200]
    status, headers, body = get(app)
    assert status == 503 and headers["Content-Type"].startswith("text/html")
    assert b"HTTP Error 503. The service is unavailable." in body
    clock.now += 59.9
    assert get(app)[0] == 503 and not outage.over
    clock.now += 0.1
    assert get(app)[0] == 200 and outage.over and outage.met == 2


def test_an_outage_can_start_some_seconds_after_the_first_request(small_tenant_template):
    clock = Clock()
    app = SimulatorApp(small_tenant_template, outage=Outage(5, at_seconds=10, answer="504", clock=clock))
    assert get(app)[0] == 200
    clock.now += 10
    assert get(app)[0] == 504
    clock.now += 5
    assert get(app)[0] == 200


@pytest.mark.parametrize("through", ["transport", "socket"])
def test_an_outage_that_drops_connections_leaves_the_client_without_an_answer(small_tenant_template, through):
    outage = Outage(3600, answer="drop")
    app = SimulatorApp(small_tenant_template, outage=outage)
    headers = {"Authorization": f"Bearer {app.token}"}
    if through == "transport":
        with pytest.raises(httpx.RemoteProtocolError), httpx.Client(transport=app.transport()) as client:
            client.get("http://sim.test" + PARTNERS, headers=headers)
    else:
        with serve(app) as url, pytest.raises(httpx.RemoteProtocolError), httpx.Client() as client:
            client.get(url + PARTNERS, headers=headers)
    assert outage.met == 1 and app.stats[(PARTNERS, 0)] == 1


def test_knobs_refuse_what_they_cannot_play():
    with pytest.raises(ValueError, match="retry_after"):
        RateLimit(5, retry_after="minutes")
    with pytest.raises(ValueError, match="answer"):
        Outage(60, answer="500")
    with pytest.raises(ValueError, match="not both"):
        Outage(60, at_seconds=1, after_requests=1)
