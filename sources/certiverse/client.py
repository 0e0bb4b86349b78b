"""HTTP access to the Certiverse Voucher Partner API: auth, retries, nextLink paging.

Every request of the project goes through :class:`CertiverseClient`, so respx can
mock it in tests and the request counters see everything.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson

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
    """Retries exhausted on 5xx, 429, timeouts, resets or broken bodies."""


class ClientStopped(CertiverseError):
    """The client was stopped (:meth:`CertiverseClient.stop`): nothing more is sent, no wait goes on."""


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

    Retries 5xx, 429 (honouring ``Retry-After``, pausing every thread of this client
    so a rate limit slows everything down), timeouts, connection errors and bodies
    that are not valid JSON, with exponential backoff and jitter.

    ``max_requests_per_second`` (default: no limit) spaces the requests of every
    thread of this client, retries included, at least ``1/max_requests_per_second``
    seconds apart. ``sleep`` and ``clock`` exist so tests can check the schedule.

    :meth:`stop` abandons the client's work from any thread: every wait of the client
    (backoff, a 429 pause, the rate's next slot) ends at once, and no request is sent
    after it; both raise :class:`ClientStopped` in the thread that waited or was about
    to send. A request already on the wire is not cut short; nobody waits for it.
    """

    def __init__(
        self,
        base_url: str,
        api_token: str,
        *,
        timeout: float = 30.0,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
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
        self.base_url = f"{base.scheme}://{base.netloc}"
        self._origin = _origin(base)
        self.stats = RequestStats()
        # Not documented: learned from the longest page that had a next page.
        self.page_size: int | None = None
        # The API's clock: the Date header of the first answer that carried one (see api_time).
        self._first_date: dt.datetime | None = None
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep  # None: wait on the stop event (see _wait)
        self._clock = clock
        self._stopped = threading.Event()
        # One lock for both: a request's turn depends on the 429 pause and on the rate's next free slot.
        self._pause_lock = threading.Lock()
        self._pause_until = 0.0
        self._interval = 1.0 / max_requests_per_second if max_requests_per_second else 0.0
        self._next_slot = 0.0
        self._http = httpx.Client(
            headers={"Authorization": f"Bearer {api_token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def stop(self) -> None:
        """Abandon this client's work: waits end at once and nothing more is sent (:class:`ClientStopped`).

        For a reader whose consumer went away (an error, a signal): its workers then end within
        a request, instead of sleeping through backoffs and sending retries nobody reads.
        """
        self._stopped.set()

    def _wait(self, seconds: float) -> None:
        """Every wait of the client: returns after ``seconds``, or raises ClientStopped as soon as it is stopped."""
        if self._sleep is None:
            self._stopped.wait(seconds)
        else:
            self._sleep(seconds)
        self._check_not_stopped()

    def _check_not_stopped(self) -> None:
        if self._stopped.is_set():
            raise ClientStopped("the client was stopped; no more requests are sent")

    def api_time(self) -> dt.datetime | None:
        """When this client's first answer was sent, by the API's own clock (its ``Date`` header).

        The loader's clock may be far from the API's; expiry is judged by the API's. The
        first answer is the run's start: anything after it is judged no earlier than that.
        None until an answer with a readable ``Date`` header arrives.
        """
        return self._first_date

    def _note_date(self, response: httpx.Response) -> None:
        if self._first_date is not None:
            return
        value = response.headers.get("Date")
        try:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            with self._pause_lock:
                if self._first_date is None:
                    self._first_date = parsed.astimezone(dt.timezone.utc)

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
        yield from self.follow(query, next_link)

    def page(self, query: Query, number: int = 1) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``query`` asked for by its number (the reference's ``page`` parameter): its records
        and the ``nextLink`` the API gave (None on the last page)."""
        params = query.params if number == 1 else {**query.params, "page": str(number)}
        return self._records(query, self.base_url + ENDPOINT_PATHS[query.endpoint], params, number)

    def follow(self, query: Query, next_link: str | None) -> Iterator[list[dict[str, Any]]]:
        """Yield the pages ``nextLink`` leads to, one after another, until a page has none."""
        seen_pages: set[tuple] = set()
        while next_link:
            url, params, number = self._follow(query, next_link, seen_pages)
            data, next_link = self._records(query, url, params, number)
            yield data

    def _records(self, query: Query, url: str, params: dict[str, str], number: int
                 ) -> tuple[list[dict[str, Any]], str | None]:
        body = self._get_page(query, url, params, number)
        data = body.get("data")
        if not isinstance(data, list):
            raise CertiverseError(f"{query.describe()} page {number}: body has no 'data' list")
        self.stats.add_records(query.endpoint, len(data))
        next_link = body.get("nextLink") or None
        if next_link and len(data) > (self.page_size or 0):
            # Not documented: learned from the longest page that had a next page.
            self.page_size = len(data)
        return data, next_link

    def _follow(self, query: Query, next_link: str, seen: set[tuple]) -> tuple[str, dict[str, str], int]:
        """Check a nextLink and return the URL, params and page number it asks for."""
        if not isinstance(next_link, str):
            raise PagingError(f"{query.describe()}: nextLink is not a string: {next_link!r}")
        link = urlsplit(next_link)
        if _origin(link) != self._origin:
            # The bearer token goes with every request: never to another origin.
            raise PagingError(
                f"{query.describe()}: nextLink points to {link.scheme}://{link.netloc}, "
                f"not to the API at {self.base_url}; refusing to follow it"
            )
        params = dict(parse_qsl(link.query, keep_blank_values=True))
        for key, value in query.filters:
            if params.get(key) != value:
                log.warning("%s: nextLink dropped or changed filter %s; restoring it", query.describe(), key)
                params[key] = value
        try:
            page = int(params.get("page", "1"))
        except ValueError:
            raise PagingError(f"{query.describe()}: nextLink has a non-numeric page: {next_link}") from None
        key = (link.path, tuple(sorted(params.items())))
        if key in seen or page == 1:
            raise PagingError(f"{query.describe()}: nextLink repeats a page already read (page {page}); stopping")
        seen.add(key)
        return f"{link.scheme}://{link.netloc}{link.path}", params, page

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
        # A POST is not idempotent: never retry it after the request may have arrived.
        response, body = self._send("purchases", "POST", url, json=payload, what="POST purchase", retry=False)
        if response.status_code == 400:
            raise BadRequestError(Query("purchases"), _error_text(response))
        if response.status_code != 200:
            raise NotTheApiError(f"POST purchase: unexpected answer ({describe_response(response)})")
        return body

    def _send(
        self, endpoint: str, method: str, url: str, *, what: str, retry: bool = True, **kwargs: Any
    ) -> tuple[httpx.Response, Any]:
        """Send one request with retries; returns the response and, for a 200, its parsed JSON body."""
        attempts = self.max_attempts if retry else 1
        problem = ""
        for attempt in range(1, attempts + 1):
            self._check_not_stopped()
            self._wait_turn()
            retry_after: float | None = None
            try:
                response = self._http.request(method, url, **kwargs)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                outcome, problem = "network", f"{type(exc).__name__}: {exc}"
            else:
                self._note_date(response)
                outcome = str(response.status_code)
                if response.status_code == 401:
                    self.stats.add(endpoint, outcome)
                    raise AuthError(
                        f"the API refused the token (401) on {what}; check SOURCES__CERTIVERSE__API_TOKEN "
                        "and that its user holds the PartnerManageVouchers function point"
                    )
                if response.status_code == 429 or response.status_code >= 500:
                    problem = describe_response(response)
                    if response.status_code == 429:
                        retry_after = _retry_after(response.headers.get("Retry-After"))
                else:
                    body = _json_or_missing(response) if response.status_code == 200 else None
                    if body is not _MISSING:
                        self.stats.add(endpoint, outcome)
                        return response, body
                    if not _is_json_type(response):
                        self.stats.add(endpoint, "not_api")
                        raise NotTheApiError(
                            f"{what}: the server at {self.base_url} did not answer as the Certiverse API "
                            f"({describe_response(response)}); check the base URL"
                        )
                    outcome, problem = "bad_body", "body is not valid JSON (truncated?)"
            self.stats.add(endpoint, outcome)
            if attempt == attempts:
                break
            delay = self._backoff(attempt, retry_after)
            log.warning("%s: %s; retry %d/%d in %.1fs", what, problem, attempt, attempts - 1, delay)
            if retry_after is not None:
                self._pause_all(delay)
            else:
                self._wait(delay)
        raise ApiUnavailableError(f"{what}: giving up after {attempts} attempt(s); last problem: {problem}")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, 300.0)
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)

    def _pause_all(self, seconds: float) -> None:
        """Hold every request of this client (all threads) for ``seconds``: a 429 is about all of us."""
        with self._pause_lock:
            self._pause_until = max(self._pause_until, self._clock() + seconds)
        self._wait(seconds)

    def _wait_turn(self) -> None:
        """Wait out a 429 pause, then (when rate-limited) until this request's slot comes.

        Slots are handed out in order under the lock, each ``_interval`` after the
        last, so threads share one rate and nobody bursts when a pause ends.
        """
        while True:
            with self._pause_lock:
                now = self._clock()
                paused_until = self._pause_until
                start = max(now, paused_until)
                if self._interval:
                    start = max(start, self._next_slot)
                    self._next_slot = start + self._interval
            if start > now:
                self._wait(start - now)
            with self._pause_lock:
                if self._pause_until <= paused_until:
                    return
            # A 429 paused every thread while this one waited for its slot: take a new one after the pause.


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
    """Status, content type and a short one-line excerpt of a body: enough to tell a proxy page from the API."""
    content_type = response.headers.get("Content-Type") or "no content type"
    excerpt = " ".join(response.content[: limit * 4].decode("utf-8", "replace").split())
    if len(excerpt) > limit:
        excerpt = excerpt[:limit] + "..."
    return f"HTTP {response.status_code}, {content_type}" + (f": {excerpt!r}" if excerpt else ", empty body")


def _is_json_type(response: httpx.Response) -> bool:
    """Whether the server says the body is JSON, or says nothing (a truncated JSON body then)."""
    content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    return not content_type or content_type == "application/json" or content_type.endswith("+json")


def _origin(parts: Any) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), parts.port or default)


_MISSING = object()


def _json_or_missing(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)  # ~2x faster than json; invalid UTF-8 is a decode error too
    except orjson.JSONDecodeError:
        return _MISSING


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:200]
    if isinstance(body, Mapping):
        return str(body.get("message") or body.get("error") or body)[:300]
    return str(body)[:300]
