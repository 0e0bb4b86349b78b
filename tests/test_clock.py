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
