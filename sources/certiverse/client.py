"""HTTP access to the Certiverse Voucher Partner API: auth, retries, nextLink paging.

Every request of the project goes through :class:`CertiverseClient`, so respx can
mock it in tests and the request counters see everything.

Paging follows ``nextLink`` for its page number only (``links.py``): every request goes to
the configured origin; a link that loops or repeats a page stops the query.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import html
import json
import logging
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import urlsplit

import httpx
import orjson

from .links import changed_filters, elsewhere, linked_pages
from .pacing import Expired, Outcome, Pacing, Stopped, Ticket, retry_after_seconds

log = logging.getLogger(__name__)

ENDPOINT_PATHS = {
    "partners": "/api/vouchers/partners",
    "programs": "/api/vouchers/programs",
    "purchases": "/api/vouchers/purchases",
    "vouchers": "/api/vouchers",
}


class CertiverseError(Exception):
    """Base class of every error the client raises."""


class AuthError(CertiverseError):
    """The API answered 401, or the token is missing or malformed: nothing was (or will be) retried."""


class ConfigurationError(CertiverseError):
    """The base URL (or another setting) cannot be right; no request was sent."""


class NotTheApiError(CertiverseError):
    """The server answered something that is not the API (an HTML page, a proxy's error): not retried."""


class BadRequestError(CertiverseError):
    """The API answered 400 to a query; ``query`` names it."""

    def __init__(self, query: "Query", detail: str) -> None:
        super().__init__(f"the API refused {query.describe()} (400): {detail}")
        self.query = query
        self.detail = detail


class TooManyRecordsError(CertiverseError):
    """The API answered 422: the query matches more than the API's record cap."""

    def __init__(self, query: "Query", page: int) -> None:
        super().__init__(f"{query.describe()} matches more records than the API serves (422 on page {page})")
        self.query = query
        self.page = page


class PagingError(CertiverseError):
    """A ``nextLink`` that would loop or leave the API's host."""


class ApiUnavailableError(CertiverseError):
    """A request was retried (429, 5xx, timeouts, resets, broken bodies) for its whole retry budget."""


class ClientStopped(CertiverseError):
    """The client was stopped (:meth:`CertiverseClient.stop`): nothing more is sent, no wait goes on."""


# Answers that mean the service is down or being deployed, not that this query is wrong:
# a proxy's or IIS's error page comes with any body.
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Query:
    """One list query: an endpoint and its filters (``page`` excluded)."""

    endpoint: str
    filters: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, endpoint: str, **filters: Any) -> "Query":
        """Build a query, turning booleans into the API's ``true``/``false``."""
        return cls(endpoint, tuple(sorted((k, _param(v)) for k, v in filters.items())))

    def narrowed(self, **filters: Any) -> "Query":
        """This query with more filters (a partition of it)."""
        merged = dict(self.filters)
        merged.update((k, _param(v)) for k, v in filters.items())
        return Query(self.endpoint, tuple(sorted(merged.items())))

    @property
    def params(self) -> dict[str, str]:
        return dict(self.filters)

    def describe(self) -> str:
        shown = "&".join(f"{k}={v}" for k, v in self.filters)
        return f"GET {ENDPOINT_PATHS[self.endpoint]}" + (f"?{shown}" if shown else "")


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class RequestStats:
    """Thread-safe request counters keyed by (endpoint, outcome)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.records: Counter[str] = Counter()

    def add(self, endpoint: str, outcome: str) -> None:
        with self._lock:
            self.counts[(endpoint, outcome)] += 1

    def add_records(self, endpoint: str, n: int) -> None:
        with self._lock:
            self.records[endpoint] += n

    def total(self, endpoint: str | None = None) -> int:
        with self._lock:
            return sum(n for (e, _), n in self.counts.items() if endpoint in (None, e))

    def as_dict(self) -> dict[str, dict[str, int]]:
        """``{endpoint: {outcome: count}}``, e.g. ``{"vouchers": {"200": 612, "422": 3}}``."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for (endpoint, outcome), n in sorted(self.counts.items()):
                out.setdefault(endpoint, {})[outcome] = n
        return out


class CertiverseClient:
    """A small httpx client for the list endpoints and the purchase POST.

    Retries 429, 5xx, timeouts, connection errors and bodies that are not valid JSON until
    the request has been failing for ``retry_budget`` seconds (then
    :class:`ApiUnavailableError`). The pace of every thread of this client is one
    :class:`~.pacing.Pacing`: a 429 lowers the request rate and concurrency for the rest of the
    run (honouring ``Retry-After``, pausing every thread), acceptance raises them again slowly,
    and an outage (no answer, 502, 503, 504) holds every thread while one request probes.

    ``max_requests_per_second`` (default: no limit) is a ceiling on that rate, retries
    included. ``sleep`` and ``clock`` exist so tests can check the schedule; without
    ``sleep`` every wait is on a condition that :meth:`stop` wakes.
    """

    def __init__(
        self,
        base_url: str,
        api_token: str,
        *,
        timeout: float = 30.0,
        retry_budget: float = 600.0,
        backoff_base: float = 0.5,
        backoff_max: float = 15.0,
        max_connections: int = 16,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        max_requests_per_second: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        base = check_base_url(base_url)
        api_token = check_token(api_token)
        if max_requests_per_second is not None and max_requests_per_second <= 0:
            raise ConfigurationError(f"max_requests_per_second must be positive, got {max_requests_per_second!r}")
        if retry_budget < 0:
            raise ConfigurationError(f"retry_budget must be zero or more seconds, got {retry_budget!r}")
        self.base_url = f"{base.scheme}://{base.netloc}"
        self.stats = RequestStats()
        # Not documented: learned from the longest page that had a next page.
        self.page_size: int | None = None
        # The API's clock: the Date header of the first answer that carried one (see api_time), and this
        # machine's clock when that answer came (see clock_offset).
        self._first_date: dt.datetime | None = None
        self._first_local: dt.datetime | None = None
        # Said once per client: the API's links point elsewhere, or change the query's filters.
        self._links_noted: set[str] = set()
        self._date_lock = threading.Lock()
        self._answered = False  # whether any HTTP answer came back in this client's life
        self.retry_budget = retry_budget
        self._clock = clock
        self.pacing = Pacing(ceiling=max_requests_per_second, backoff_base=backoff_base, backoff_max=backoff_max,
                             budget=retry_budget, clock=clock, sleep=sleep)
        self._http = httpx.Client(
            headers={"Authorization": f"Bearer {api_token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
        )

    def stop(self) -> None:
        """Abandon this client's work, from any thread: every wait (a backoff, a pause, the rate's
        next slot, an outage) ends at once and nothing more is sent; both raise :class:`ClientStopped`.
        A request already on the wire is not cut short."""
        self.pacing.stop()

    def close(self) -> None:
        self.stop()
        self._http.close()

    def api_time(self) -> dt.datetime | None:
        """When this client's first answer was sent, by the API's own clock (its ``Date`` header).

        The loader's clock may be far from the API's; expiry is judged by the API's. The
        first answer is the run's start: anything after it is judged no earlier than that.
        None until an answer with a readable ``Date`` header arrives.
        """
        return self._first_date

    def clock_offset(self) -> dt.timedelta | None:
        """How far the API's clock (``api_time``) is ahead of this machine's (negative: behind), measured on
        the same answer; None until an answer with a readable ``Date`` header arrives."""
        if self._first_date is None or self._first_local is None:
            return None
        return self._first_date - self._first_local

    def _note_date(self, response: httpx.Response) -> None:
        if self._first_date is not None:
            return
        value = response.headers.get("Date")
        try:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            local = dt.datetime.now(dt.timezone.utc)
            with self._date_lock:
                if self._first_date is None:
                    self._first_date = parsed.astimezone(dt.timezone.utc)
                    self._first_local = local

    def __enter__(self) -> "CertiverseClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pages(self, query: Query, start: int = 1) -> Iterator[list[dict[str, Any]]]:
        """Yield the records of ``query`` page by page from page ``start``, following ``nextLink``.

        Raises :class:`TooManyRecordsError` when the API refuses the query (on its
        first page or a later one); pages already yielded are real records.
        """
        data, next_link = self.page(query, start)
        yield data
        yield from self.follow(query, next_link, start)

    def page(self, query: Query, number: int = 1) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``query`` asked for by its number (the reference's ``page`` parameter): its records
        and the ``nextLink`` the API gave (None on the last page)."""
        params = query.params if number == 1 else {**query.params, "page": str(number)}
        return self._records(query, self.base_url + ENDPOINT_PATHS[query.endpoint], params, number)

    def follow(self, query: Query, next_link: str | None, after: int = 1) -> Iterator[list[dict[str, Any]]]:
        """Yield the pages ``nextLink`` leads to, one after another, until a page has none; ``after`` is the
        number of the page that gave the first link."""
        number = after
        while next_link:
            url, params, number, guessed = self._follow(query, next_link, number)
            data, next_link = self._records(query, url, params, number)
            yield data
            if guessed and not data:
                # Links without page numbers give no end of their own: an empty page is the end.
                return

    def _records(self, query: Query, url: str, params: dict[str, str], number: int
                 ) -> tuple[list[dict[str, Any]], str | None]:
        body = self._get_page(query, url, params, number)
        data = body.get("data")
        if not isinstance(data, list):
            raise CertiverseError(f"{query.describe()} page {number}: body has no 'data' list")
        self.stats.add_records(query.endpoint, len(data))
        next_link = body.get("nextLink")
        if not next_link or (isinstance(next_link, str) and not next_link.strip()):
            next_link = None  # absent, null, empty or blank: the last page
        if next_link and len(data) > (self.page_size or 0):
            # Not documented: learned from the longest page that had a next page.
            self.page_size = len(data)
        return data, next_link

    def _follow(self, query: Query, next_link: Any, current: int) -> tuple[str, dict[str, str], int, bool]:
        """The request for the page a nextLink names after page ``current``: the configured origin, the query's
        endpoint and filters, and the link's page number (the page after ``current`` if the link names none:
        then True, guessed)."""
        if not isinstance(next_link, str):
            raise PagingError(f"{query.describe()}: nextLink is not a string: {next_link!r}")
        link = next_link.strip()
        path = ENDPOINT_PATHS[query.endpoint]
        if where := elsewhere(link, self.base_url, path):
            # The bearer token goes with every request: never to where a link points, only to the base URL.
            self._note_once("target", "the API's nextLink points elsewhere (%s, for %s); following its paging on "
                            "%s: the token is sent nowhere else", where, query.describe(), self.base_url)
        if changed := changed_filters(query.filters, link):
            self._note_once("filters", "%s: nextLink dropped or changed filter %s; keeping the query's own filters "
                            "(said once)", query.describe(), ", ".join(changed))
        numbers = linked_pages(link)
        guessed = numbers is None
        if guessed:
            self._note_once("no_page", "%s: nextLink names no page (%s); taking the page after each page read",
                            query.describe(), next_link)
            numbers = {current + 1}
        if len(numbers) != 1:
            raise PagingError(f"{query.describe()}: nextLink names no single page number: {next_link}")
        page = numbers.pop()
        if page <= current or page == 1:
            raise PagingError(f"{query.describe()}: nextLink repeats a page already read (page {page} after page "
                              f"{current}); stopping")
        return self.base_url + path, {**query.params, "page": str(page)}, page, guessed

    def _note_once(self, what: str, message: str, *args: Any) -> None:
        with self._date_lock:
            if what in self._links_noted:
                return
            self._links_noted.add(what)
        log.warning(message, *args)

    def _get_page(self, query: Query, url: str, params: dict[str, str] | None, page: int) -> dict[str, Any]:
        response, body = self._send(query.endpoint, "GET", url, params=params, what=f"{query.describe()} page {page}")
        status = response.status_code
        if status == 400:
            raise BadRequestError(query, _error_text(response))
        if status == 422:
            raise TooManyRecordsError(query, page)
        if status != 200:
            raise NotTheApiError(f"{query.describe()} page {page}: unexpected answer ({describe_response(response)}); "
                                 "check the base URL")
        if not isinstance(body, dict):
            raise CertiverseError(f"{query.describe()} page {page}: body is not a JSON object")
        return body

    def create_purchase(self, partner_name: str, program_name: str, quantity: int, notes: str) -> dict[str, Any]:
        """POST a $0 purchase; returns the created purchase. 400 → :class:`BadRequestError`."""
        payload = {"notes": notes, "partnerName": partner_name, "programName": program_name, "quantity": quantity}
        url = self.base_url + ENDPOINT_PATHS["purchases"]
        # A POST is not idempotent: never retry it after the request may have arrived (a 429 says it
        # was refused unprocessed, so that one is retried).
        response, body = self._send("purchases", "POST", url, json=payload, what="POST purchase", retry=False)
        if response.status_code == 400:
            raise BadRequestError(Query("purchases"), _error_text(response))
        if response.status_code != 200:
            raise NotTheApiError(f"POST purchase: unexpected answer ({describe_response(response)})")
        return body

    def _send(
        self, endpoint: str, method: str, url: str, *, what: str, retry: bool = True, **kwargs: Any
    ) -> tuple[httpx.Response, Any]:
        """Send one request, retrying until it has failed for ``retry_budget`` seconds; returns the
        response and, for a 200, its parsed JSON body. Every wait is the pacing's (see its module).
        ``retry=False`` retries only 429s (refused before anything was done)."""
        failures, problem = 0, ""
        deadline: float | None = None
        not_before = 0.0
        while True:
            try:
                ticket = self.pacing.turn(not_before=not_before, deadline=deadline)
            except Expired:
                raise self._gave_up(what, problem) from None
            except Stopped:
                raise ClientStopped("the client was stopped; no more requests are sent") from None
            outcome, retry_after, result, problem = self._attempt(endpoint, method, url, what, ticket, **kwargs)
            if result is not None:
                return result
            failures += 1
            delay = self.pacing.answered(ticket, outcome, retry_after=retry_after, problem=problem, failures=failures)
            now = self._clock()
            if deadline is None:
                deadline = now + self.retry_budget
            retried = retry or outcome is Outcome.RATE_LIMITED
            if not retried or now >= deadline:
                raise self._gave_up(what, problem, retried=retried)
            if retry_after is not None and now + retry_after > deadline:
                raise ApiUnavailableError(
                    f"{what}: the API asks to wait {retry_after:.0f}s (Retry-After), longer than what is left of "
                    f"the retry budget ({deadline - now:.0f}s of retry_budget {self.retry_budget:.0f}s); "
                    f"last problem: {problem}")
            not_before = min(now + delay, deadline)  # the last try at the budget's end, not before it
            log.info("%s: %s; retrying (giving up in %.0fs)", what, problem, deadline - now)

    def _attempt(self, endpoint: str, method: str, url: str, what: str, ticket: Ticket, **kwargs: Any
                 ) -> tuple[Outcome, float | None, tuple[httpx.Response, Any] | None, str]:
        """One attempt: (outcome, Retry-After seconds, (response, body) when done, problem). Tells the
        pacing about every answer that ends the request; a retried one is told by the caller."""
        try:
            response = self._http.request(method, url, **kwargs)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            self.stats.add(endpoint, "network")
            if not self._answered and _unknown_host(exc):
                self.pacing.cancel(ticket)
                raise ConfigurationError(
                    f"{what}: the host of {self.base_url} is unknown ({exc}); check the base URL") from exc
            return Outcome.UNAVAILABLE, None, None, f"{type(exc).__name__}: {exc}"
        except BaseException:
            self.pacing.cancel(ticket)
            raise
        self._answered = True
        self._note_date(response)
        status = response.status_code
        outcome_label = str(status)
        if status == 429:
            self.stats.add(endpoint, outcome_label)
            retry_after = retry_after_seconds(response.headers.get("Retry-After"), response.headers.get("Date"))
            return Outcome.RATE_LIMITED, retry_after, None, describe_response(response)
        if status >= 500:
            self.stats.add(endpoint, outcome_label)
            outcome = Outcome.UNAVAILABLE if status in UNAVAILABLE_STATUSES else Outcome.FAILED
            return outcome, None, None, describe_response(response)
        body = _json_or_missing(response) if status == 200 else None
        if body is _MISSING and _is_json_type(response):
            self.stats.add(endpoint, "bad_body")
            return Outcome.FAILED, None, None, "body is not valid JSON (truncated?)"
        # The API answered: whatever comes of it now (an error to raise, a page), the pace may grow.
        self.pacing.answered(ticket, Outcome.ACCEPTED)
        if status == 401:
            self.stats.add(endpoint, outcome_label)
            raise AuthError(
                f"the API refused the token (401) on {what}; check SOURCES__CERTIVERSE__API_TOKEN "
                "and that its user holds the PartnerManageVouchers function point"
            )
        if body is _MISSING:
            self.stats.add(endpoint, "not_api")
            raise NotTheApiError(
                f"{what}: the server at {self.base_url} did not answer as the Certiverse API "
                f"({describe_response(response)}); check the base URL"
            )
        self.stats.add(endpoint, outcome_label)
        return Outcome.ACCEPTED, None, (response, body), ""

    def _gave_up(self, what: str, problem: str, retried: bool = True) -> ApiUnavailableError:
        if not retried:
            return ApiUnavailableError(f"{what}: not retried; problem: {problem}")
        return ApiUnavailableError(
            f"{what}: giving up after {self.retry_budget:g}s of retries (retry_budget); last problem: {problem}")


def check_base_url(base_url: str | None) -> Any:
    """The base URL split into parts, if it is an API root (``scheme://host[:port]``); else a clear error.

    Paths are refused rather than guessed at: ``https://host/api/vouchers`` (a copied endpoint URL)
    would otherwise become ``https://host/api/vouchers/api/vouchers/partners`` and a 404 page.
    """
    if not base_url or not str(base_url).strip():
        raise ConfigurationError(
            "no base URL: set [sources.certiverse] base_url in .dlt/config.toml, SOURCES__CERTIVERSE__BASE_URL, "
            "or --base-url (e.g. https://yourtenant.certiverse.com)"
        )
    text = str(base_url).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"the base URL must look like https://host[:port], got {text!r}")
    if parts.username or parts.password:
        raise ConfigurationError("the base URL must not carry a user or password; the token goes in api_token")
    if parts.path.rstrip("/") or parts.query or parts.fragment:
        root = f"{parts.scheme}://{parts.netloc}"
        raise ConfigurationError(
            f"the base URL is the API root without a path: use {root}, not {text} "
            "(the client adds /api/vouchers/... itself)"
        )
    return parts


def check_token(api_token: str | None) -> str:
    """The token without the whitespace a file or a paste adds around it; refuses one that is still not a token.

    A newline inside an HTTP header is a protocol error that looks like a network fault, and
    would be retried; refusing it here says what is wrong, once.
    """
    token = (api_token or "").strip()
    if not token:
        raise AuthError("no API token: set SOURCES__CERTIVERSE__API_TOKEN or api_token in .dlt/secrets.toml")
    if token.lower().startswith("bearer "):
        raise AuthError("the API token starts with 'Bearer ': give the token alone, the client adds the scheme")
    if any(c.isspace() or not c.isprintable() for c in token):
        raise AuthError("the API token has whitespace or control characters inside it: copy it again "
                        "(SOURCES__CERTIVERSE__API_TOKEN or api_token in .dlt/secrets.toml)")
    return token


def describe_response(response: httpx.Response, limit: int = 80) -> str:
    """Status, content type and a short one-line excerpt of a body: enough to tell a proxy page from the API.

    Of an HTML page (a sign-in page, IIS's or a proxy's error page) the excerpt is the text a
    person would read, without the markup: ``'Service Unavailable HTTP Error 503. ...'``.
    """
    content_type = response.headers.get("Content-Type") or "no content type"
    text = response.content[: limit * 40].decode("utf-8", "replace")
    if "html" in content_type.lower():
        title = _TITLE.search(text)
        text = " ".join(html.unescape(_TAG.sub(" ", _SCRIPT.sub(" ", text))).split())
        name = " ".join(html.unescape(title.group(1)).split()) if title else ""
        if name and not text.startswith(name):
            text = f"{name} - {text}" if text else name
    excerpt = " ".join(text.split())
    if len(excerpt) > limit:
        excerpt = excerpt[:limit] + "..."
    return f"HTTP {response.status_code}, {content_type}" + (f": {excerpt!r}" if excerpt else ", empty body")


_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.I | re.S)
_SCRIPT = re.compile(r"<(script|style|head)\b.*?</\1\s*>|<!--.*?-->|<!DOCTYPE[^>]*>", re.I | re.S)
_TAG = re.compile(r"<[^>]*>")


def _is_json_type(response: httpx.Response) -> bool:
    """Whether the server says the body is JSON, or says nothing (a truncated JSON body then)."""
    content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    return not content_type or content_type == "application/json" or content_type.endswith("+json")


_MISSING = object()


def _json_or_missing(response: httpx.Response) -> Any:
    content = response.content
    if content.startswith(b"\xef\xbb\xbf"):  # a byte-order mark (orjson refuses it; it means nothing here)
        content = content[3:]
    try:
        return orjson.loads(content)  # ~2x faster than json; invalid UTF-8 is a decode error too
    except orjson.JSONDecodeError:
        return _MISSING


def _unknown_host(exc: BaseException) -> bool:
    """Whether DNS said the host does not exist (not a temporary failure): a wrong base URL, not an outage."""
    seen: BaseException | None = exc
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:  # a re-raised exception can be its own context
        visited.add(id(seen))
        if isinstance(seen, socket.gaierror) and seen.errno == socket.EAI_NONAME:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:200]
    if isinstance(body, Mapping):
        return str(body.get("message") or body.get("error") or body)[:300]
    return str(body)[:300]
