"""The API's clock: the client keeps the Date header of the run's first answer (respx routes)."""

from __future__ import annotations

import datetime as dt
import email.utils

import httpx
import respx

from certiverse_warehouse.sources.certiverse.client import CertiverseClient, Query

BASE = "https://tenant.example.test"
PARTNERS = BASE + "/api/vouchers/partners"
FIRST = dt.datetime(2026, 3, 9, 8, 30, tzinfo=dt.timezone.utc)


def answer(when: dt.datetime | None, header: str | None = None) -> httpx.Response:
    headers = {"Date": header if header is not None else email.utils.format_datetime(when, usegmt=True)}
    return httpx.Response(200, json={"data": []}, headers=headers)


@respx.mock
def test_the_api_time_is_the_date_header_of_the_first_answer():
    respx.get(PARTNERS).mock(side_effect=[answer(FIRST), answer(FIRST + dt.timedelta(hours=5))])
    client = CertiverseClient(BASE, "token")
    assert client.api_time() is None
    for _ in range(2):
        list(client.pages(Query("partners")))
    assert client.api_time() == FIRST


@respx.mock
def test_an_unreadable_date_header_is_skipped_until_a_readable_one_comes():
    respx.get(PARTNERS).mock(side_effect=[answer(None, "yesterday-ish"), answer(None, ""), answer(FIRST)])
    client = CertiverseClient(BASE, "token")
    for _ in range(3):
        list(client.pages(Query("partners")))
    assert client.api_time() == FIRST


@respx.mock
def test_the_clock_offset_is_the_apis_date_against_this_machines_clock_on_the_same_answer():
    ahead = dt.timedelta(days=40)
    respx.get(PARTNERS).mock(side_effect=lambda request: answer(dt.datetime.now(dt.timezone.utc) + ahead))
    client = CertiverseClient(BASE, "token")
    assert client.clock_offset() is None
    list(client.pages(Query("partners")))
    assert abs(client.clock_offset() - ahead) < dt.timedelta(seconds=5)


def test_now_is_the_earlier_of_the_two_clocks_and_clocks_a_day_apart_are_noted():
    from certiverse_warehouse.sources.certiverse.planning import api_now, clock_note
    from tests.fakes import FakeApi, catalog

    machine = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.timezone.utc)
    for api_clock in (machine + dt.timedelta(days=400), machine - dt.timedelta(days=200), machine):
        assert api_now(catalog(FakeApi({}, date=api_clock, local=machine)), None) == min(api_clock, machine)
    assert clock_note({"api_clock_ahead_s": 400 * 86_400}) == (
        "Clocks: the API's clock is 400.0 days ahead of this machine's; expiry was judged by the earlier of the two.")
    assert "behind" in clock_note({"api_clock_ahead_s": -2 * 86_400})
    assert clock_note({"api_clock_ahead_s": 3_600}) is None and clock_note({}) is None
