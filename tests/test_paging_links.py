"""nextLink in any form: the page it names is read from the configured origin, with the query's own filters
(respx routes: every request must match a route, and routes elsewhere must never be called)."""

from __future__ import annotations

import httpx
import pytest
import respx

from certiverse_warehouse.sources.certiverse.client import CertiverseClient, PagingError, Query

BASE = "https://tenant.example.test"
TOKEN = "s3cret-token-value"
VOUCHERS = BASE + "/api/vouchers"
NAME = "Spring & Fall #1 Drive"  # characters a link may leave unencoded
QUERY = Query.of("vouchers", purchaseCode=NAME, isUsed=False)
PAGES = 4
ELSEWHERE = ("https://internal.example.test", "http://tenant.example.test", "https://tenant.example.test:8443",
             "http://10.0.0.7:8080")


@pytest.fixture
def router():
    """Every request must match a route (assert_all_mocked); routes elsewhere exist to be shown uncalled."""
    with respx.mock(assert_all_called=False) as mock:
        yield mock


def link_to(page: int, form: str) -> str:
    """A nextLink to ``page`` of QUERY in one of the forms a service behind proxies sends."""
    encoded = str(httpx.QueryParams({"purchaseCode": NAME, "isUsed": "false", "page": str(page)}))
    forms = {
        "absolute": f"{VOUCHERS}?{encoded}",
        "relative": f"/api/vouchers?{encoded}",
        "query": f"?{encoded}",
        "unencoded": f"{VOUCHERS}?purchaseCode={NAME}&isUsed=false&page={page}",
        "page_case": f"{VOUCHERS}?isUsed=false&Page={page}&" + str(httpx.QueryParams({"purchaseCode": NAME})),
        "padded": f"  {VOUCHERS}?{encoded}\n",
        "proxy_path": f"https://internal.example.test/certiverse/api/vouchers?{encoded}",
        "scheme_relative": f"//internal.example.test:9000/api/vouchers?{encoded}",
    }
    for i, origin in enumerate(ELSEWHERE):
        forms[f"elsewhere{i}"] = f"{origin}/api/vouchers?{encoded}"
    return forms[form]


def serve(form: str, pages: int = PAGES):
    """A route answering page N of QUERY with record N and a link to N+1 (none on the last)."""

    def answer(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("page", "1"))
        body: dict = {"data": [{"id": f"v{number}"}]}
        if number < pages:
            body["nextLink"] = link_to(number + 1, form)
        return httpx.Response(200, json=body)

    return answer


def read(client: CertiverseClient, query: Query = QUERY) -> list[str]:
    return [r["id"] for page in client.pages(query) for r in page]


@pytest.mark.parametrize("form", ["absolute", "relative", "query", "unencoded", "page_case", "padded", "proxy_path",
                                  "scheme_relative", *(f"elsewhere{i}" for i in range(len(ELSEWHERE)))])
def test_every_page_is_read_from_the_configured_origin_with_the_querys_filters(form, router):
    route = router.get(url__startswith=VOUCHERS).mock(side_effect=serve(form))
    elsewhere = [router.route(url__startswith=origin).mock(return_value=httpx.Response(599))
                 for origin in (*ELSEWHERE, "https://internal.example.test:9000")]
    client = CertiverseClient(BASE, TOKEN)
    assert read(client) == [f"v{n}" for n in range(1, PAGES + 1)]
    assert [c.request.url.params.get("page", "1") for c in route.calls] == [str(n) for n in range(1, PAGES + 1)]
    for call in route.calls:
        assert str(call.request.url).startswith(VOUCHERS + "?")
        assert call.request.url.params["purchaseCode"] == NAME and call.request.url.params["isUsed"] == "false"
        assert set(call.request.url.params) <= {"purchaseCode", "isUsed", "page"}
    assert not any(r.called for r in elsewhere)


def test_links_pointing_elsewhere_are_said_once_in_the_log(caplog, router):
    router.get(url__startswith=VOUCHERS).mock(side_effect=serve("elsewhere0"))
    client = CertiverseClient(BASE, TOKEN)
    caplog.set_level("WARNING")
    for _ in range(3):
        assert len(read(client)) == PAGES
    said = [r for r in caplog.records if "points elsewhere" in r.getMessage()]
    assert len(said) == 1
    assert ELSEWHERE[0] in said[0].getMessage() and BASE in said[0].getMessage()
    assert TOKEN not in caplog.text


def test_links_on_the_configured_origin_are_not_reported(caplog, router):
    router.get(url__startswith=VOUCHERS).mock(side_effect=serve("absolute"))
    caplog.set_level("WARNING")
    assert len(read(CertiverseClient(BASE, TOKEN))) == PAGES
    assert caplog.records == []


@pytest.mark.parametrize("links", [
    {1: 2, 2: 2},  # the same page again
    {1: 3, 3: 2},  # backwards
    {1: 2, 2: 1},  # back to the first
], ids=["repeat", "backwards", "first"])
def test_a_link_that_loops_is_an_error_not_a_loop(links, router):
    def answer(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("page", "1"))
        return httpx.Response(200, json={"data": [{"id": f"v{number}"}],
                                         "nextLink": f"/api/vouchers?isUsed=false&page={links[number]}"})

    router.get(url__startswith=VOUCHERS).mock(side_effect=answer)
    with pytest.raises(PagingError, match="repeats a page"):
        read(CertiverseClient(BASE, TOKEN))


def test_a_link_that_changes_the_filters_keeps_the_querys_and_says_so_once(caplog, router):
    def answer(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("page", "1"))
        body: dict = {"data": [{"id": f"v{number}"}]}
        if number < PAGES:
            body["nextLink"] = f"{VOUCHERS}?purchaseCode=OTHER&isUsed=true&extra=1&page={number + 1}"
        return httpx.Response(200, json=body)

    route = router.get(url__startswith=VOUCHERS).mock(side_effect=answer)
    caplog.set_level("WARNING")
    assert len(read(CertiverseClient(BASE, TOKEN))) == PAGES
    assert {c.request.url.params["purchaseCode"] for c in route.calls} == {NAME}
    assert all("extra" not in c.request.url.params for c in route.calls)
    assert len([r for r in caplog.records if "changed filter" in r.getMessage()]) == 1


def test_a_link_naming_no_page_asks_for_the_page_after_the_one_read(caplog, router):
    def answer(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("page", "1"))
        body: dict = {"data": [{"id": f"v{number}"}]}
        if number < PAGES:
            body["nextLink"] = f"{VOUCHERS}?purchaseCode={NAME}&isUsed=false&skipToken=abc{number}"
        return httpx.Response(200, json=body)

    route = router.get(url__startswith=VOUCHERS).mock(side_effect=answer)
    assert read(CertiverseClient(BASE, TOKEN)) == [f"v{n}" for n in range(1, PAGES + 1)]
    assert [c.request.url.params.get("page", "1") for c in route.calls] == [str(n) for n in range(1, PAGES + 1)]


@pytest.mark.parametrize("link", [f"{VOUCHERS}?page=2&page=3", f"{VOUCHERS}?page=two", 42],
                         ids=["two_pages", "not_a_number", "not_a_string"])
def test_a_link_with_no_single_page_number_is_an_error(link, router):
    router.get(url__startswith=VOUCHERS).mock(return_value=httpx.Response(200, json={"data": [{"id": "v1"}],
                                                                                     "nextLink": link}))
    with pytest.raises(PagingError):
        read(CertiverseClient(BASE, TOKEN))


def test_a_page_asked_for_by_number_follows_links_from_that_page_on(router):
    route = router.get(url__startswith=VOUCHERS).mock(side_effect=serve("relative", pages=6))
    client = CertiverseClient(BASE, TOKEN)
    data, link = client.page(QUERY, 4)
    assert [r["id"] for p in [data, *client.follow(QUERY, link, 4)] for r in p] == ["v4", "v5", "v6"]
    assert [c.request.url.params["page"] for c in route.calls] == ["4", "5", "6"]


def test_a_body_with_a_byte_order_mark_and_whitespace_around_it_is_read(router):
    body = b'\xef\xbb\xbf\r\n  {"data": [{"id": "v1"}]}\n\t '
    router.get(url__startswith=VOUCHERS).mock(return_value=httpx.Response(200, content=body,
                                                                          headers={"Content-Type": "application/json"}))
    client = CertiverseClient(BASE, TOKEN)
    assert read(client) == ["v1"]
    assert client.stats.as_dict() == {"vouchers": {"200": 1}}


def test_links_without_page_numbers_end_at_the_first_empty_page(router):
    def answer(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("page", "1"))
        data = [{"id": f"v{number}"}] if number <= 2 else []
        return httpx.Response(200, json={"data": data, "nextLink": f"{VOUCHERS}?isUsed=false"})

    route = router.get(url__startswith=VOUCHERS).mock(side_effect=answer)
    assert read(CertiverseClient(BASE, TOKEN)) == ["v1", "v2"]
    assert route.call_count == 3


@pytest.mark.parametrize("last", [" ", "\n\t"], ids=["space", "whitespace"])
def test_a_blank_link_ends_paging_like_an_empty_one(last, router):
    route = router.get(url__startswith=VOUCHERS).mock(side_effect=[
        httpx.Response(200, json={"data": [{"id": "v1"}], "nextLink": "/api/vouchers?isUsed=false&page=2"}),
        httpx.Response(200, json={"data": [{"id": "v2"}], "nextLink": last})])
    assert read(CertiverseClient(BASE, TOKEN)) == ["v1", "v2"]
    assert route.call_count == 2


def test_a_link_with_a_port_that_is_no_number_is_read_for_its_page_only(router, caplog):
    route = router.get(url__startswith=VOUCHERS).mock(side_effect=serve("absolute", pages=2))
    route.side_effect = [httpx.Response(200, json={"data": [{"id": "v1"}],
                                                   "nextLink": "http://internal:port/api/vouchers?page=2"}),
                         httpx.Response(200, json={"data": [{"id": "v2"}]})]
    caplog.set_level("WARNING")
    assert read(CertiverseClient(BASE, TOKEN)) == ["v1", "v2"]
    assert "points elsewhere (http://internal:port" in caplog.text
