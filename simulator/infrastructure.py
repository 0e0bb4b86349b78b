"""What stands in front of the API in production and answers for it: a rate limiter, outage windows.

The reference documents neither; a real tenant sits behind proxies, load balancers and
deploys. These knobs play them, before the API itself looks at a request (even a request
with a bad token is limited or meets the outage):

- :class:`RateLimit`: a token bucket of ``per_second`` requests a second (``burst`` at once);
  a request finding it empty gets 429 with ``Retry-After`` in seconds, as an HTTP date, or
  without it. Refused requests take no token.
- :class:`Outage`: from a moment (seconds after the first request, or after so many
  requests) for ``seconds``, every request gets 503 (or 502, 504) with an HTML error page as
  IIS sends it, or its connection is dropped without an answer.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

RETRY_AFTER_FORMS = ("seconds", "date", "absent")
OUTAGE_ANSWERS = ("503", "502", "504", "drop")
Response = tuple[int, dict[str, str], bytes]

# What IIS (http.sys) answers while an application pool is stopped or recycling.
IIS_ERROR_PAGE = """<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">
<HTML><HEAD><TITLE>{title}</TITLE>
<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii"></HEAD>
<BODY><h2>{title}</h2>
<hr><p>HTTP Error {status}. {text}</p>
</BODY></HTML>
"""
ERROR_TEXTS = {
    502: ("Bad Gateway", "The server received an invalid response from an upstream server."),
    503: ("Service Unavailable", "The service is unavailable."),
    504: ("Gateway Timeout", "The server did not receive a timely response from an upstream server."),
}


class DroppedConnection(Exception):
    """The request's connection is closed without an answer (the transports turn this into a reset)."""


@dataclass
class RateLimit:
    """A token bucket: ``per_second`` tokens a second, ``burst`` at most (default: one second's worth)."""

    per_second: float
    retry_after: str = "seconds"
    burst: float | None = None
    clock: Callable[[], float] = time.monotonic
    refused: int = field(default=0, init=False)
    _tokens: float | None = field(default=None, init=False, repr=False)
    _at: float = field(default=0.0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.per_second <= 0:
            raise ValueError(f"per_second must be positive, not {self.per_second!r}")
        if self.retry_after not in RETRY_AFTER_FORMS:
            raise ValueError(f"retry_after must be one of {RETRY_AFTER_FORMS}, not {self.retry_after!r}")
        if self.burst is None:
            self.burst = max(1.0, float(math.ceil(self.per_second)))

    def refuse(self, api_now: dt.datetime) -> Response | None:
        """Take a token, or the 429 to answer when there is none (``api_now``: the API's clock, for a date)."""
        with self._lock:
            now = self.clock()
            if self._tokens is None:
                self._tokens, self._at = self.burst, now
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            self.refused += 1
            wait = (1.0 - self._tokens) / self.per_second
        # Servers say whole seconds (an HTTP date has no finer grain): at least one.
        seconds = max(1, math.ceil(wait))
        headers = {"Content-Type": "application/json"}
        if self.retry_after == "seconds":
            headers["Retry-After"] = str(seconds)
        elif self.retry_after == "date":
            headers["Retry-After"] = email.utils.format_datetime(api_now + dt.timedelta(seconds=seconds), usegmt=True)
        body = b'{"error":"rate_limited","message":"Too many requests"}'
        return 429, headers, body


@dataclass
class Outage:
    """``seconds`` of outage, starting ``at_seconds`` after the first request, or once ``after_requests``
    requests were answered (whichever is given; neither: at the first request)."""

    seconds: float
    at_seconds: float | None = None
    after_requests: int | None = None
    answer: str = "503"
    clock: Callable[[], float] = time.monotonic
    met: int = field(default=0, init=False)  # requests that met the outage
    _first: float | None = field(default=None, init=False, repr=False)
    _began: float | None = field(default=None, init=False, repr=False)
    _requests: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.answer not in OUTAGE_ANSWERS:
            raise ValueError(f"answer must be one of {OUTAGE_ANSWERS}, not {self.answer!r}")
        if self.at_seconds is not None and self.after_requests is not None:
            raise ValueError("give at_seconds or after_requests, not both")

    def meets(self) -> Response | None:
        """The answer for a request arriving now: None outside the outage; raises
        :class:`DroppedConnection` inside it when connections are dropped."""
        with self._lock:
            now = self.clock()
            if self._first is None:
                self._first = now
            self._requests += 1
            if self._began is None:
                if self.after_requests is not None:
                    started = self._requests > self.after_requests
                else:
                    started = now - self._first >= (self.at_seconds or 0.0)
                if started:
                    self._began = now
            if self._began is None or now - self._began >= self.seconds:
                return None
            self.met += 1
        if self.answer == "drop":
            raise DroppedConnection()
        status = int(self.answer)
        title, text = ERROR_TEXTS[status]
        page = IIS_ERROR_PAGE.format(title=title, status=status, text=text).encode("ascii")
        return status, {"Content-Type": "text/html; charset=us-ascii"}, page

    @property
    def over(self) -> bool:
        """Whether the outage has begun and ended."""
        with self._lock:
            return self._began is not None and self.clock() - self._began >= self.seconds
