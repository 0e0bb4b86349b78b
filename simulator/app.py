"""The simulated API's HTTP behaviour, independent of any transport.

``SimulatorApp.handle`` takes a method, an absolute URL, headers and a body
and returns (status, headers, body). ``transport()`` wraps it for in-process
httpx clients; ``simulator.server`` puts it on a loopback socket.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import random
import re
import threading
import time
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from . import activity, query
from .data import RESOURCES, Tenant, ValidationError
from .habits import Habits
from .infrastructure import DroppedConnection, Outage, RateLimit
from .model import DOCUMENTED_PURCHASE_STATUSES
from .shape import ORDERS

log = logging.getLogger(__name__)

EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
PARTNER_STATUSES = ("Active", "Archived", "Inactive")
NEXTLINK_STYLES = ("absent", "null", "empty")
# How nextLink names the next page: a full URL (the reference), a path, a query alone, scheme-relative,
# a full URL with the query's characters left unencoded, "Page" spelt as ASP.NET binds it; "mixed" draws
# one per query.
NEXTLINK_FORMS = ("absolute", "relative", "query", "scheme_relative", "unencoded", "page_case")
CACHE_SIZE = 64
Response = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Endpoint:
    resource: str
    params: dict[str, str]  # parameter -> kind: text | exact | email | bool | enum name
    filter_required: bool
    matcher: Callable[[Tenant, dict[str, Any]], Sequence[int]]


ENDPOINTS = {
    "/api/vouchers/partners": Endpoint(
        "partners", {"partnerName": "text", "status": "partner_status"}, False, query.partners),
    "/api/vouchers/programs": Endpoint("programs", {"programName": "text"}, False, query.programs),
    "/api/vouchers/purchases": Endpoint(
        "purchases",
        {"partnerName": "text", "programName": "text", "purchaseCode": "exact",
         "purchasedByEmail": "email", "status": "purchase_status"},
        True, query.purchases),
    "/api/vouchers": Endpoint(
        "vouchers",
        {"isActive": "bool", "isUsed": "bool", "purchaseCode": "exact", "recipientEmail": "email",
         "reservationCode": "exact", "storeExamCode": "exact", "voucherCode": "exact"},
        True, query.vouchers),
}
ENUMS = {"partner_status": PARTNER_STATUSES, "purchase_status": DOCUMENTED_PURCHASE_STATUSES}


class BadRequest(Exception):
    """A 400 answer; the message names the parameter at fault."""


def _json(status: int, payload: Any, extra: dict[str, str] | None = None) -> Response:
    headers = {"Content-Type": "application/json", **(extra or {})}
    return status, headers, json.dumps(payload, separators=(",", ":")).encode()


def _error(status: int, error: str, message: str, extra: dict[str, str] | None = None) -> Response:
    return _json(status, {"error": error, "message": message}, extra)


class SimulatorApp:
    """The fake Certiverse API over one tenant; every knob is an attribute."""

    def __init__(self, tenant: Tenant, *, token: str = "sim-token", page_size: int | None = None,
                 cap: int | None = None, cap_mode: str = "first", nextlink_last: str = "absent",
                 shuffle_params: bool = True, fault_rate_500: float = 0.0, fault_rate_429: float = 0.0,
                 retry_after: int = 1, fault_rate_truncate: float = 0.0, latency_ms: float = 0.0, seed: int = 0,
                 order: str | None = None, activity_every_pages: int | None = None,
                 nextlink_form: str = "absolute", nextlink_origin: str | None = None,
                 date_offset: dt.timedelta = dt.timedelta(0), habits: Iterable[str] = (),
                 empty_resources: Iterable[str] = (),
                 rate_limit: RateLimit | None = None, outage: Outage | None = None) -> None:
        """API knobs left None come from the tenant's shape (``simulator.shape``).

        Habits the reference leaves open: ``nextlink_form`` (``NEXTLINK_FORMS`` or ``"mixed"``) and
        ``nextlink_origin`` (another ``scheme://host:port`` the links name, as a proxy that forgot to
        rewrite them; None: the request's own); ``date_offset``, added to the ``Date`` header (a wrong
        clock; the data keeps the tenant's); ``habits`` (``simulator.habits.HABITS``: values in other
        JSON forms, byte-order marks, whitespace, nulls, unknown enum values, new fields);
        ``empty_resources``, resources served as if the tenant had none (all four: a new organisation).
        ``rate_limit`` and ``outage`` play what stands in front of the API (``simulator.infrastructure``).
        """
        shape = tenant.shape
        page_size = shape.page_size if page_size is None else page_size
        cap = shape.cap if cap is None else cap
        self.order = shape.order if order is None else order
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, not {self.order!r}")
        # A moment of activity after every N voucher pages served (0: none), drawn from its own seed.
        self.activity_every_pages = shape.activity_every_pages if activity_every_pages is None else activity_every_pages
        self.activity: Counter[str] = Counter()  # what the moments did, by kind (activity.MOMENT_KEYS)
        self._activity_rng = random.Random(f"activity:{seed}")
        self._voucher_pages = 0
        if cap_mode not in ("first", "late"):
            raise ValueError(f"cap_mode must be 'first' or 'late', not {cap_mode!r}")
        if nextlink_last not in (*NEXTLINK_STYLES, "mixed"):
            raise ValueError(f"nextlink_last must be one of {NEXTLINK_STYLES + ('mixed',)}, not {nextlink_last!r}")
        self.tenant = tenant
        self.token, self.page_size, self.cap, self.cap_mode = token, page_size, cap, cap_mode
        # Tests only: a lower cap for one resource, so that every partition level can be made to bite.
        self.endpoint_caps: dict[str, int] = {}
        self.nextlink_last, self.shuffle_params = nextlink_last, shuffle_params
        self.fault_rate_500, self.fault_rate_429, self.retry_after = fault_rate_500, fault_rate_429, retry_after
        self.fault_rate_truncate, self.latency_ms, self.seed = fault_rate_truncate, latency_ms, seed
        self.max_consecutive_faults = 2  # per URL, so bounded retries always get through
        self.rate_limit, self.outage = rate_limit, outage
        self.stats: Counter[tuple[str, int]] = Counter()
        self.faults: Counter[str] = Counter()  # injected faults by kind: 500, 429, truncate
        self._lock = threading.Lock()
        self._fault_rng = random.Random(seed)
        self._streaks: dict[str, int] = {}
        self._cache: OrderedDict[tuple[Any, ...], tuple[int, Sequence[int]]] = OrderedDict()
        if nextlink_form not in (*NEXTLINK_FORMS, "mixed"):
            raise ValueError(f"nextlink_form must be one of {NEXTLINK_FORMS + ('mixed',)}, not {nextlink_form!r}")
        self.nextlink_form, self.nextlink_origin = nextlink_form, nextlink_origin
        self.date_offset = date_offset
        self.habits = Habits(habits, seed)
        self.empty_resources = frozenset(empty_resources)
        if self.empty_resources - set(RESOURCES):
            raise ValueError(f"empty_resources must be among {RESOURCES}, not {sorted(self.empty_resources)}")

    # -- entry points ------------------------------------------------------

    def handle(self, method: str, url: str, headers: Mapping[str, str], body: bytes = b"") -> Response:
        """Answer one request: (status, headers, body). Raises :class:`DroppedConnection` when an
        outage drops connections: the transport then closes the connection without an answer."""
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000)
        parts = urlsplit(url)
        path = parts.path.rstrip("/") or "/"
        try:
            answer = self._front()
        except DroppedConnection:
            with self._lock:
                self.stats[(path, 0)] += 1
            log.debug("%s %s -> connection dropped", method, url)
            raise
        status, out_headers, out_body = answer or self._dispatch(method.upper(), url, parts, path, headers, body)
        # The API's clock, on every answer as HTTP servers do: the simulated now, not the host's.
        out_headers["Date"] = email.utils.format_datetime(self.tenant.now() + self.date_offset, usegmt=True)
        with self._lock:
            self.stats[(path, status)] += 1
        log.debug("%s %s -> %d", method, url, status)
        return status, out_headers, out_body

    def transport(self) -> httpx.MockTransport:
        """An httpx transport that serves requests from this app in process."""

        def handler(request: httpx.Request) -> httpx.Response:
            try:
                status, headers, body = self.handle(request.method, str(request.url), request.headers, request.read())
            except DroppedConnection:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                                request=request) from None
            return httpx.Response(status, headers=headers, content=body)

        return httpx.MockTransport(handler)

    # -- request pipeline --------------------------------------------------

    def _front(self) -> Response | None:
        """The rate limiter's or the outage's answer, if either answers instead of the API."""
        if self.rate_limit is not None:
            refused = self.rate_limit.refuse(self.tenant.now())
            if refused is not None:
                return refused
        if self.outage is not None:
            return self.outage.meets()
        return None

    def _dispatch(self, method: str, url: str, parts: Any, path: str, headers: Mapping[str, str],
                  body: bytes) -> Response:
        if not self._authorized(headers):
            return _error(401, "unauthorized", "Missing or invalid bearer token",
                          {"WWW-Authenticate": 'Bearer realm="certiverse"'})
        endpoint = ENDPOINTS.get(path)
        if endpoint is None:
            return _error(404, "not_found", f"No endpoint at {path}")
        allowed = "GET, POST" if endpoint.resource == "purchases" else "GET"
        if method not in allowed.split(", "):
            return _error(405, "method_not_allowed", f"{method} is not supported on {path}", {"Allow": allowed})
        fault = self._draw_fault(url, method)
        if fault == "500":
            return _error(500, "internal_error", "An unexpected error occurred")
        if fault == "429":
            return _error(429, "rate_limited", "Too many requests", {"Retry-After": str(self.retry_after)})
        try:
            if method == "POST":
                return self._create_purchase(headers, body)
            status, out_headers, out_body = self._list(endpoint, parts, path)
        except BadRequest as exc:
            return _error(400, "bad_request", str(exc))
        if fault == "truncate" and status == 200:
            # a connection dropped mid-body: valid HTTP, broken JSON
            with self._lock:
                self.faults["truncate"] += 1
            return status, out_headers, out_body[: max(1, len(out_body) // 2)]
        return status, out_headers, out_body

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, token = value.partition(" ")
        return scheme.lower() == "bearer" and token.strip() == self.token

    def _draw_fault(self, url: str, method: str) -> str | None:
        with self._lock:
            x = self._fault_rng.random()
            kind = None
            if x < self.fault_rate_500:
                kind = "500"
            elif x < self.fault_rate_500 + self.fault_rate_429:
                kind = "429"
            elif x < self.fault_rate_500 + self.fault_rate_429 + self.fault_rate_truncate and method == "GET":
                kind = "truncate"
            if kind is None or self._streaks.get(url, 0) >= self.max_consecutive_faults:
                self._streaks.pop(url, None)
                return None
            self._streaks[url] = self._streaks.get(url, 0) + 1
            if kind != "truncate":  # counted once applied: it only hits 200 answers
                self.faults[kind] += 1
            return kind

    # -- GET lists ---------------------------------------------------------

    def _list(self, endpoint: Endpoint, parts: Any, path: str) -> Response:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        page, filters = self._parse(endpoint, pairs)
        tenant = self.tenant
        with tenant.lock:
            matches = self._matches(endpoint, path, filters)
            start = (page - 1) * self.page_size
            total = len(matches)
            cap = self.endpoint_caps.get(endpoint.resource, self.cap)
            if total > cap and (self.cap_mode == "first" or start >= cap):
                return _error(422, "too_many_records",
                              f"The query matches more than {cap:,} records; narrow the filters")
            serialize = tenant.record_function(endpoint.resource)
            data = [serialize(i) for i in matches[start:start + self.page_size]]
            if self.habits:
                data = self.habits.records(endpoint.resource, data)
            if endpoint.resource == "vouchers" and self.activity_every_pages:
                self._maybe_play_moment()
        payload: dict[str, Any] = {"data": data}
        if start + self.page_size < total:
            payload["nextLink"] = self._next_link(parts, path, pairs, page)
        else:
            style = self.nextlink_last
            if style == "mixed":
                style = NEXTLINK_STYLES[zlib.crc32(repr((path, sorted(filters.items()))).encode()) % 3]
            if style != "absent":
                payload["nextLink"] = None if style == "null" else ""
        status, headers, body = _json(200, payload)
        return status, headers, self.habits.body(body)

    def _parse(self, endpoint: Endpoint, pairs: list[tuple[str, str]]) -> tuple[int, dict[str, Any]]:
        page = 1
        filters: dict[str, Any] = {}
        for name, raw in pairs:
            if name.lower() == "page":  # ASP.NET binds parameters whatever their case
                if not raw.isdigit() or int(raw) < 1:
                    raise BadRequest(f"Parameter 'page' must be a positive integer, got {raw!r}")
                page = int(raw)
                continue
            kind = endpoint.params.get(name)
            # unknown parameters are ignored; empty ones count as absent (ASP.NET binding)
            if kind is None or raw == "":
                continue
            filters[name] = self._normalize(name, kind, raw)
        if endpoint.filter_required and not filters:
            raise BadRequest("At least one filter besides 'page' is required: " + ", ".join(endpoint.params))
        return page, filters

    @staticmethod
    def _normalize(name: str, kind: str, raw: str) -> Any:
        if kind == "text":
            return raw.casefold()
        if kind == "exact":
            return raw
        if kind == "email":
            if not EMAIL.match(raw):
                raise BadRequest(f"Parameter '{name}' must be a valid e-mail address, got {raw!r}")
            return raw.lower()
        if kind == "bool":
            if raw.lower() not in ("true", "false"):
                raise BadRequest(f"Parameter '{name}' must be 'true' or 'false', got {raw!r}")
            return raw.lower() == "true"
        allowed = ENUMS[kind]
        for value in allowed:
            if raw.lower() == value.lower():
                return value
        raise BadRequest(f"Parameter '{name}' must be one of {', '.join(allowed)}, got {raw!r}")

    def _maybe_play_moment(self) -> None:
        """Activity between pages (the caller holds the tenant's lock): later pages see a changed tenant."""
        self._voucher_pages += 1
        if self._voucher_pages % self.activity_every_pages == 0:
            self.activity.update(activity.play_moment(self.tenant, self._activity_rng))

    def _matches(self, endpoint: Endpoint, path: str, filters: dict[str, Any]) -> Sequence[int]:
        if endpoint.resource in self.empty_resources:
            return []
        key = (path, tuple(sorted(filters.items())))
        hit = self._cache.get(key)
        if hit is not None and hit[0] == self.tenant.version:
            self._cache.move_to_end(key)
            return hit[1]
        matches = self._ordered(endpoint.matcher(self.tenant, filters))
        self._cache[key] = (self.tenant.version, matches)
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return matches

    def _ordered(self, matches: Sequence[int]) -> Sequence[int]:
        """Matches (creation order) in the order the API returns them; a record's place depends only on
        the record, so a record that leaves a query moves every record behind it one place up."""
        if self.order == "newest_first":
            return matches[::-1]
        if self.order == "shuffled":
            return sorted(matches, key=lambda i: ((i * 2654435761) ^ 0x5BD1E995) & 0xFFFFFFFF)
        return matches

    def _next_link(self, parts: Any, path: str, pairs: list[tuple[str, str]], page: int) -> str:
        params = [(k, v) for k, v in pairs if k.lower() != "page"] + [("page", str(page + 1))]
        if self.shuffle_params:
            random.Random(f"{self.seed}|{path}|{params}").shuffle(params)
        form = self.nextlink_form
        if form == "mixed":
            filters = sorted((k, v) for k, v in pairs if k.lower() != "page")
            form = NEXTLINK_FORMS[zlib.crc32(repr((path, filters)).encode()) % len(NEXTLINK_FORMS)]
        origin = (self.nextlink_origin or f"{parts.scheme}://{parts.netloc}").rstrip("/")
        query = urlencode(params)
        if form == "unencoded":
            query = "&".join(f"{k}={v}" for k, v in params)
        elif form == "page_case":
            query = urlencode([("Page" if k == "page" else k, v) for k, v in params])
        if form == "relative":
            return f"{parts.path}?{query}"
        if form == "query":
            return f"?{query}"
        if form == "scheme_relative":
            return f"//{urlsplit(origin).netloc}{parts.path}?{query}"
        return f"{origin}{parts.path}?{query}"

    # -- POST --------------------------------------------------------------

    def _create_purchase(self, headers: Mapping[str, str], body: bytes) -> Response:
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if not content_type.lower().startswith("application/json"):
            raise BadRequest("Content-Type must be application/json")
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("The request body is not valid JSON") from None
        if not isinstance(doc, dict):
            raise BadRequest("The request body must be a JSON object")
        try:
            created = self.tenant.create_purchase(
                doc.get("partnerName"), doc.get("programName"), doc.get("quantity"), doc.get("notes"))
        except ValidationError as exc:
            raise BadRequest(str(exc)) from None
        return _json(200, created)
