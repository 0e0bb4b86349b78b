"""When a request may go: the request rate and concurrency learned from the API's answers, and outages.

Words used here and in the client:

- **rate limited**: the API answered 429. The pace (requests a second, and requests in flight
  at once) is cut for every thread of the client, multiplicatively, once per *epoch*; it grows
  again, additively, while the API accepts (AIMD, as TCP does for a congestion window).
- **epoch**: the pace changes at most once per round of requests: answers to requests sent
  before the last change tell about the old pace, not the new one, and change nothing. Without
  this, the 16 refusals of one burst would cut the pace 16 times.
- **unavailable** (an outage): no answer (connection refused or reset, timeout) or 502, 503,
  504, whatever the body (a proxy's or IIS's HTML page). Every thread holds back; one request
  at a time probes, after a pause that doubles each round, until the API answers again.
- **failed**: another retried problem of one request (500, a truncated body): that request
  backs off on its own; the others go on.

Nothing here gives up: the client bounds each request's retries by time (its budget) and
passes the deadline in. ``max_requests_per_second`` is a ceiling the learned rate never passes.

Written here rather than taken from a library: retry libraries (tenacity, stamina,
httpx-retries) retry one call by count or time and share nothing between threads, and rate
limiters (pyrate-limiter, limits, aiolimiter) enforce a rate known in advance; what is needed
is one pace shared by the reader's threads, learned from 429s, with interruptible waits.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import enum
import logging
import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)

# Cut to this share of the pace on a 429 (CUBIC's 0.7: gentler than halving, so a steady
# limit costs fewer requests below it).
DECREASE = 0.7
# After a cut the rate climbs back to the rate the API accepted when it refused (its limit, as
# far as can be told) within this many seconds: the cut gives the limiter time to recover, not
# the run a long stretch below the limit. Beyond that rate it probes, slowly at first: GROWTH of
# that rate a second (at least MIN_STEP), the step doubling every PROBE_DOUBLING seconds without
# a 429, so a steady limit costs one 429 in a while and a limit underestimated (or risen) is
# found within seconds (CUBIC's plateau and convex probe, in a simple form).
REGAIN_SECONDS = 2.0
GROWTH = 0.02
MIN_STEP = 0.1
PROBE_DOUBLING = 4.0
MIN_RATE = 0.2  # requests a second: one request every five seconds at the slowest
RATE_WINDOW = 2.0  # seconds of accepted answers that tell the rate actually reached (less at the start)
MIN_WINDOW = 1.0  # ... but never less: limits are per second, a burst of a few ms says nothing
NOTE_EVERY = 10.0  # seconds between two notes on the same condition (the progress line repeats them)
# Longest single wait on the condition (stop() and every answer notify it; this bounds a wait
# that nobody notifies, such as one for a place in flight whose holder hangs in a request).
POLL = 0.25
# Logged records with this attribute are what the run waits for: the CLI's progress line shows them.
WAIT_NOTE = "certiverse_wait"


class Outcome(enum.Enum):
    """What one attempt's answer tells the pace (see the module docstring)."""

    ACCEPTED = "accepted"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    FAILED = "failed"


class Stopped(Exception):
    """The pacing was stopped (:meth:`Pacing.stop`) while a request waited, or before it went."""


class Expired(Exception):
    """A request's deadline passed (or would pass) before its turn came."""


@dataclass(frozen=True)
class Ticket:
    """One attempt's turn: the epoch it was sent in, requests in flight with it, whether the rate held it back."""

    epoch: int
    in_flight: int
    rate_bound: bool


class Pacing:
    """The pace shared by every thread of one client. Thread-safe.

    ``clock`` is monotonic seconds; ``sleep`` (tests) replaces the waits on the condition,
    which ``stop()`` and every finished request wake.
    """

    def __init__(
        self,
        *,
        ceiling: float | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 15.0,
        budget: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.ceiling = ceiling
        self.budget = budget  # the client's retry budget, for the notes only
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self._clock, self._sleep = clock, sleep
        self._cond = threading.Condition()
        self._stopped = threading.Event()
        self._rate: float | None = ceiling  # requests a second; None = as fast as the threads go
        self._limit: float = math.inf  # requests in flight at once
        self._in_flight = 0
        self._next_slot = 0.0
        self._pause_until = 0.0
        self._epoch = 0
        self._grown_at: float | None = None
        self._accepted: deque[float] = deque()  # when recent accepted answers came
        self._first_turn: float | None = None
        self._reached = 0.0  # the rate the API accepted when it last refused: its limit, as far as known
        self._probing_since: float | None = None  # when the rate passed _reached since the last cut
        self._outage_since: float | None = None
        self._outage_epoch = 0  # the first epoch of the current outage: earlier answers say nothing of its end
        self._outage_rounds = 0
        self._limit_before_outage = math.inf
        self._problem = ""
        self._noted: dict[str, float] = {}
        self.rate_limited = 0  # 429s that cut the pace (one per epoch)

    # -- state, for logs and tests ----------------------------------------

    @property
    def rate(self) -> float | None:
        """The learned (or configured) requests a second; None while nothing limits it."""
        with self._cond:
            return self._rate

    @property
    def limit(self) -> float:
        """Requests in flight at once (``math.inf`` until a 429 says otherwise; 1 during an outage)."""
        with self._cond:
            return self._effective_limit()

    @property
    def unavailable_since(self) -> float | None:
        """When the current outage began (clock seconds), or None."""
        with self._cond:
            return self._outage_since

    # -- stopping ----------------------------------------------------------

    def stop(self) -> None:
        """Wake every waiting thread; each raises :class:`Stopped`. Irreversible."""
        self._stopped.set()
        with self._cond:
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    # -- a request's turn --------------------------------------------------

    def turn(self, *, not_before: float = 0.0, deadline: float | None = None) -> Ticket:
        """Wait until a request may go: no pause, a free place in flight, and the rate's next slot.

        ``not_before`` is this request's own backoff; ``deadline`` its retry budget's end
        (:class:`Expired` when it comes before the turn). :class:`Stopped` once :meth:`stop` was called.
        Every granted turn must be followed by :meth:`answered` (or :meth:`cancel`).
        """
        while True:
            ticket, slot, now = self._grant(not_before, deadline)
            try:
                if slot > now:
                    if deadline is not None and slot > deadline:
                        self._wait_until(deadline, now)
                        raise Expired()
                    now = self._wait_until(slot, now)
                with self._cond:
                    if self._pause_until <= now:
                        return ticket
                    # A 429 paused everyone while this one waited for its slot: queue again after the pause.
                    self._release()
            except BaseException:
                with self._cond:
                    self._release()
                raise

    def _grant(self, not_before: float, deadline: float | None) -> tuple[Ticket, float, float]:
        """Take a place in flight and a slot of the rate: (ticket, the slot's time, now)."""
        with self._cond:
            now = self._clock()
            if self._first_turn is None:
                self._first_turn = now
            while True:
                self._check()
                ready = max(self._pause_until, not_before)
                if ready <= now and self._in_flight < self._effective_limit():
                    break
                now = self._wait(ready if ready > now else now + POLL, deadline, now)
            self._in_flight += 1
            slot = now
            if self._rate:
                # Slots are handed out in order, each 1/rate after the last: threads share one
                # rate and nobody bursts when a pause ends.
                slot = max(now, self._next_slot)
                self._next_slot = slot + 1.0 / self._rate
            return Ticket(self._epoch, self._in_flight, rate_bound=slot > now), slot, now

    def cancel(self, ticket: Ticket) -> None:
        """Give a turn back without an answer to learn from (the attempt raised something unexpected)."""
        with self._cond:
            self._release()

    def _release(self) -> None:
        self._in_flight -= 1
        self._cond.notify_all()

    def answered(self, ticket: Ticket, outcome: Outcome, *, retry_after: float | None = None,
                 problem: str = "", failures: int = 1) -> float:
        """Learn from one attempt's answer; returns how long this request waits before its retry.

        ``failures`` counts this request's failed attempts so far (its own backoff doubles with
        them); ``retry_after`` is the answer's ``Retry-After`` in seconds, if it had one.
        """
        with self._cond:
            out_together = max(ticket.in_flight, self._in_flight)  # requests out at once, this one included
            self._in_flight -= 1
            now = self._clock()
            current = ticket.epoch == self._epoch
            delay = 0.0
            if outcome is not Outcome.UNAVAILABLE and self._outage_since is not None \
                    and ticket.epoch >= self._outage_epoch:
                self._end_outage(now)
            if outcome is Outcome.ACCEPTED:
                self._accepted.append(now)
                self._grow(ticket, now)
            elif outcome is Outcome.RATE_LIMITED:
                self._problem = problem
                if current:
                    self._cut(out_together, now)
                if retry_after is not None:
                    # The API said when to come back: every thread waits, not only this one.
                    self._pause_until = max(self._pause_until, now + retry_after)
                    delay = retry_after
                else:
                    delay = self.backoff(failures)
                self._note_rate_limit(now, retry_after)
            elif outcome is Outcome.UNAVAILABLE:
                self._problem = problem
                if current:
                    self._outage_round(now)
            else:
                delay = self.backoff(failures)
            self._cond.notify_all()
            return delay

    def backoff(self, failures: int) -> float:
        """A request's own wait after its ``failures``-th failed attempt: doubles, with jitter, up to the cap."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** max(0, failures - 1))
        return ceiling * random.uniform(0.5, 1.0)

    # -- learning ----------------------------------------------------------

    def _effective_limit(self) -> float:
        return 1 if self._outage_since is not None else self._limit

    def _recent_rate(self, now: float) -> float:
        """Accepted answers a second over the last RATE_WINDOW seconds (or since the first request)."""
        while self._accepted and self._accepted[0] <= now - RATE_WINDOW:
            self._accepted.popleft()
        since = now - (self._first_turn if self._first_turn is not None else now)
        return len(self._accepted) / min(RATE_WINDOW, max(MIN_WINDOW, since))

    def _cut(self, out_together: int, now: float) -> None:
        """Multiplicative decrease of rate and concurrency, once per epoch."""
        self._reached = max(self._recent_rate(now), MIN_RATE)
        base = self._reached if self._rate is None else min(self._rate, self._reached)
        self._rate = max(MIN_RATE, base * DECREASE)
        self._limit = max(1.0, math.floor(min(self._limit, out_together) * DECREASE))
        self._epoch += 1
        self._grown_at, self._probing_since = now, None
        self.rate_limited += 1

    def _grow(self, ticket: Ticket, now: float) -> None:
        """Additive increase while the API accepts: the rate back to what the API accepted before its
        last 429, then slowly beyond; the concurrency by one per window of answers. Each grows only
        where it held this request back: a rate the threads do not reach tells nothing about the API."""
        if self._rate is not None and self._grown_at is not None and self.rate_limited and ticket.rate_bound:
            elapsed = min(1.0, max(0.0, now - self._grown_at))
            if self._rate < self._reached:
                step = self._reached * (1 - DECREASE) / REGAIN_SECONDS
            else:
                if self._probing_since is None:
                    self._probing_since = now
                doublings = min(10.0, (now - self._probing_since) / PROBE_DOUBLING)
                step = max(MIN_STEP, GROWTH * self._reached) * 2 ** doublings
            self._rate += step * elapsed
            if self.ceiling is not None:
                self._rate = min(self.ceiling, self._rate)
        self._grown_at = now
        if self._limit != math.inf and ticket.in_flight >= self._limit:
            self._limit += 1.0 / self._limit

    def _outage_round(self, now: float) -> None:
        """One more round of an outage: everyone pauses, longer each round; then one request probes."""
        self._epoch += 1
        if self._outage_since is None:
            self._outage_since, self._outage_rounds, self._outage_epoch = now, 0, self._epoch
            self._limit_before_outage = self._limit
        self._outage_rounds += 1
        pause = self.backoff(self._outage_rounds)
        self._pause_until = max(self._pause_until, now + pause)
        self._note_outage(now, pause)

    def _end_outage(self, now: float) -> None:
        lasted = now - (self._outage_since or now)
        self._outage_since, self._outage_rounds = None, 0
        self._limit = self._limit_before_outage
        self._epoch += 1
        self._noted.pop("outage", None)
        self._note("outage_end", now, f"the API answers again after {lasted:.0f}s unavailable", force=True)

    # -- notes (logged; the CLI's progress line shows them) ----------------

    def _note_rate_limit(self, now: float, retry_after: float | None) -> None:
        told = "no Retry-After" if retry_after is None else f"Retry-After {_seconds(retry_after)}"
        limit = "" if self._limit == math.inf else f", {self._limit:.0f} at a time"
        self._note("rate", now, f"the API limits the request rate ({self._problem}, {told}): pacing requests "
                                f"at {self._rate:.1f}/s{limit}")

    def _note_outage(self, now: float, pause: float) -> None:
        since = self._outage_since if self._outage_since is not None else now
        budget = "" if self.budget is None else f"; the run gives up after {self.budget:.0f}s without an answer"
        # A long pause gets its note whatever the last one: the progress line shows a note for 15 s.
        self._note("outage", now, f"the API is unavailable ({self._problem}) for {now - since:.0f}s: waiting for "
                                  f"it, next try in {_seconds(pause)}{budget}", force=pause >= NOTE_EVERY / 2)

    def _note(self, key: str, now: float, message: str, force: bool = False) -> None:
        last = self._noted.get(key)
        if force or last is None or now - last >= NOTE_EVERY:
            self._noted[key] = now
            log.warning(message, extra={WAIT_NOTE: True})

    # -- waiting -----------------------------------------------------------

    def _check(self) -> None:
        if self._stopped.is_set():
            raise Stopped()

    def _wait(self, until: float, deadline: float | None, now: float) -> float:
        """Wait (holding the condition's lock) until ``until`` or a notification, never past the
        deadline; returns the time now. An injected ``sleep`` (tests) is taken to have slept its
        whole time, so a clock that only moves when told still gets there."""
        if deadline is not None:
            if now >= deadline:
                raise Expired()
            until = min(until, deadline)
        if self._sleep is not None:
            self._cond.release()
            try:
                self._sleep(max(0.0, until - now))
            finally:
                self._cond.acquire()
            return max(self._clock(), until)
        self._cond.wait(min(max(0.0, until - now), POLL))
        return self._clock()

    def _wait_until(self, until: float, now: float) -> float:
        """Wait until ``until`` (the lock is let go while waiting), ending if stopped; returns the time now."""
        with self._cond:
            while now < until:
                self._check()
                now = self._wait(until, None, now)
            self._check()
            return now


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 10 else f"{value:.0f}s"


def retry_after_seconds(value: str | None, date: str | None = None, now: Callable[[], float] = time.time
                        ) -> float | None:
    """``Retry-After`` in seconds from now, in either of its forms (RFC 9110): delay-seconds or an HTTP date.

    A date is taken relative to the same answer's ``Date`` header when it has one: both come
    from the server's clock, which may be far from this machine's. None when absent or unreadable.
    """
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    when = _http_date(text)
    if when is None:
        log.debug("unreadable Retry-After %r: ignored", text)
        return None
    sent = _http_date(date) if date else None
    reference = sent.timestamp() if sent is not None else now()
    return max(0.0, when.timestamp() - reference)


def _http_date(text: str) -> dt.datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
