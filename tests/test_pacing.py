"""The pace shared by a client's threads: what 429s, acceptance and outages teach it, on a clock the test moves."""

from __future__ import annotations

import email.utils
import math
import threading
import time

import pytest

from certiverse_warehouse.sources.certiverse import pacing
from certiverse_warehouse.sources.certiverse.pacing import (
    Expired,
    Outcome,
    Pacing,
    Stopped,
    retry_after_seconds,
)

WORKERS = 16
LIMIT = 5.0  # what the fake API accepts a second before it refuses


class Clock:
    """Monotonic seconds that move only when a waiter sleeps (``sleep``) or the test says (``advance``)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(clock: Clock, **kwargs) -> Pacing:
    return Pacing(clock=clock, sleep=clock.sleep, **kwargs)


def accept_at(p: Pacing, clock: Clock, rate: float, seconds: float) -> None:
    """Requests one after another, each accepted, ``rate`` a second for ``seconds`` (the clock moves)."""
    for _ in range(int(rate * seconds)):
        ticket = p.turn()
        clock.advance(1 / rate)
        p.answered(ticket, Outcome.ACCEPTED)


def accept_paced(p: Pacing, clock: Clock, seconds: float) -> None:
    """Requests back to back as fast as the pace lets them go, each accepted at once, for ``seconds``."""
    end = clock.now + seconds
    while clock.now < end:
        p.answered(p.turn(), Outcome.ACCEPTED)


def burst_refused(p: Pacing, clock: Clock, accepted: int, in_flight: int, retry_after: float | None = 1.0) -> None:
    """``accepted`` requests accepted within a second, then ``in_flight`` sent together, all refused."""
    accept_at(p, clock, accepted, 1.0)
    tickets = [p.turn() for _ in range(in_flight)]
    for ticket in tickets:
        p.answered(ticket, Outcome.RATE_LIMITED, retry_after=retry_after)


def test_nothing_is_paced_until_the_api_refuses():
    clock = Clock()
    p = make(clock)
    tickets = [p.turn() for _ in range(WORKERS)]
    assert clock.slept == [] and p.rate is None and p.limit == math.inf
    for ticket in tickets:
        p.answered(ticket, Outcome.ACCEPTED)
    assert p.rate is None


def test_a_429_cuts_rate_and_concurrency_once_for_a_whole_burst():
    clock = Clock()
    p = make(clock)
    burst_refused(p, clock, accepted=int(LIMIT), in_flight=WORKERS)
    # The rate accepted over the last second, cut once; the 15 other refusals were sent before the cut.
    assert p.rate == pytest.approx(LIMIT * pacing.DECREASE)
    assert p.limit == math.floor(WORKERS * pacing.DECREASE)
    assert p.rate_limited == 1


def test_a_refusal_of_a_request_sent_after_the_cut_cuts_again():
    clock = Clock()
    p = make(clock)
    burst_refused(p, clock, accepted=int(LIMIT), in_flight=2, retry_after=None)
    first = p.rate
    ticket = p.turn()
    p.answered(ticket, Outcome.RATE_LIMITED)
    assert p.rate_limited == 2 and p.rate == pytest.approx(first * pacing.DECREASE)


def test_the_rate_regains_what_the_api_accepted_quickly_then_probes_slowly_at_first():
    clock = Clock()
    p = make(clock)
    burst_refused(p, clock, accepted=int(LIMIT), in_flight=1, retry_after=None)
    accept_paced(p, clock, pacing.REGAIN_SECONDS + 0.2)
    regained = p.rate
    assert LIMIT <= regained <= LIMIT * 1.05
    accept_paced(p, clock, pacing.PROBE_DOUBLING)
    assert p.rate - regained <= 2 * pacing.MIN_STEP * pacing.PROBE_DOUBLING  # a few tenths a second at first
    accept_paced(p, clock, 4 * pacing.PROBE_DOUBLING)
    assert p.rate > 2 * LIMIT  # ... but a limit that is not there any more is found within seconds


def test_the_rate_does_not_grow_where_the_threads_do_not_reach_it():
    clock = Clock()
    p = make(clock)
    burst_refused(p, clock, accepted=int(LIMIT), in_flight=1, retry_after=None)
    accept_paced(p, clock, pacing.REGAIN_SECONDS + 0.2)
    reached = p.rate
    accept_at(p, clock, LIMIT / 2, 30)  # the reader sends slower than the pace allows
    assert p.rate == pytest.approx(reached, abs=pacing.MIN_STEP)


def test_requests_are_spaced_at_the_learned_rate():
    clock = Clock()
    p = make(clock)
    burst_refused(p, clock, accepted=int(LIMIT), in_flight=1, retry_after=None)
    rates, waits = [], []
    for _ in range(5):  # answered at once: the clock moves only by the waits for each slot
        rates.append(p.rate)
        clock.slept.clear()
        p.answered(p.turn(), Outcome.ACCEPTED)
        waits.append(sum(clock.slept))
    # Each request waits the interval of the rate when the one before it took its slot.
    assert waits[1:] == pytest.approx([1 / r for r in rates[:-1]])
    assert all(r < LIMIT for r in rates)


def test_the_configured_rate_is_a_ceiling_the_learned_rate_never_passes():
    clock = Clock()
    ceiling = 3.0
    p = make(clock, ceiling=ceiling)
    assert p.rate == ceiling
    burst_refused(p, clock, accepted=int(LIMIT), in_flight=1, retry_after=None)
    assert p.rate < ceiling
    accept_paced(p, clock, 60)
    assert p.rate == ceiling


def test_retry_after_pauses_every_thread_not_only_the_refused_one():
    clock = Clock()
    p = make(clock)
    refused = p.turn()
    assert p.answered(refused, Outcome.RATE_LIMITED, retry_after=3.0) == 3.0
    started = clock.now
    p.turn()  # another thread's first request
    assert clock.now - started == pytest.approx(3.0)


def test_without_retry_after_only_the_refused_request_backs_off():
    clock = Clock()
    p = make(clock, backoff_base=0.5)
    delay = p.answered(p.turn(), Outcome.RATE_LIMITED, failures=3)
    assert 0.5 * 4 * 0.5 <= delay <= 0.5 * 4
    clock.slept.clear()
    p.turn()
    assert sum(clock.slept) < delay


def test_concurrency_is_held_to_the_learned_limit():
    clock = Clock()
    p = make(clock)
    burst_refused(p, clock, accepted=int(LIMIT), in_flight=4, retry_after=None)
    limit = p.limit
    assert limit == math.floor(4 * pacing.DECREASE)
    held = [p.turn() for _ in range(int(limit))]
    with pytest.raises(Expired):  # one more would have to wait for a place in flight
        p.turn(deadline=clock.now + 1)
    p.answered(held.pop(), Outcome.ACCEPTED)
    p.turn(deadline=clock.now + 1)


def test_an_outage_holds_everyone_while_one_request_probes_with_growing_pauses():
    clock = Clock()
    p = make(clock, backoff_base=1.0, backoff_max=8.0)
    tickets = [p.turn() for _ in range(WORKERS)]
    for ticket in tickets:  # all in flight when the API went away: one round, not sixteen
        p.answered(ticket, Outcome.UNAVAILABLE, problem="HTTP 503")
    assert p.unavailable_since == clock.now and p.limit == 1
    pauses = []
    for _ in range(6):
        before = clock.now
        probe = p.turn()
        pauses.append(clock.now - before)
        with pytest.raises(Expired):
            p.turn(deadline=clock.now + 0.5)  # a second request does not go while the probe is out
        p.answered(probe, Outcome.UNAVAILABLE, problem="HTTP 503")
    # Each round's pause at most doubles the one before (with jitter), up to the cap.
    ceilings = [min(8.0, 1.0 * 2 ** i) for i in range(6)]
    assert all(c * 0.5 <= got <= c for got, c in zip(pauses, ceilings)), pauses
    p.answered(p.turn(), Outcome.ACCEPTED)
    assert p.unavailable_since is None and p.limit == math.inf


def test_an_answer_to_a_request_sent_before_the_outage_does_not_end_it():
    clock = Clock()
    p = make(clock)
    early, failing = p.turn(), p.turn()
    p.answered(failing, Outcome.UNAVAILABLE)
    p.answered(early, Outcome.ACCEPTED)  # it was answered before the API went away
    assert p.unavailable_since is not None
    p.answered(p.turn(), Outcome.ACCEPTED)
    assert p.unavailable_since is None


def test_an_outage_ends_with_the_concurrency_learned_before_it():
    clock = Clock()
    p = make(clock)
    burst_refused(p, clock, accepted=int(LIMIT), in_flight=8, retry_after=None)
    learned = p.limit
    p.answered(p.turn(), Outcome.UNAVAILABLE)
    assert p.limit == 1
    p.answered(p.turn(), Outcome.ACCEPTED)
    assert p.limit == pytest.approx(learned, abs=1)


def test_a_failed_request_backs_off_alone():
    clock = Clock()
    p = make(clock, backoff_base=0.5)
    delay = p.answered(p.turn(), Outcome.FAILED, failures=1)
    assert 0.25 <= delay <= 0.5
    assert p.unavailable_since is None and p.rate is None
    clock.slept.clear()
    p.turn()
    assert clock.slept == []


def test_a_turn_that_cannot_come_before_the_deadline_expires_at_the_deadline():
    clock = Clock()
    p = make(clock)
    p.answered(p.turn(), Outcome.RATE_LIMITED, retry_after=30.0)
    start = clock.now
    with pytest.raises(Expired):
        p.turn(deadline=start + 10)
    assert clock.now == start + 10


def test_stop_wakes_a_thread_waiting_out_an_outage():
    p = Pacing(backoff_base=60.0, backoff_max=60.0)  # real clock and waits
    p.answered(p.turn(), Outcome.UNAVAILABLE)
    raised: list[BaseException] = []

    def waiter() -> None:
        try:
            p.turn()
        except BaseException as exc:  # noqa: BLE001 - the test looks at what it was
            raised.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    p.stop()
    thread.join(5)
    assert not thread.is_alive() and isinstance(raised[0], Stopped)
    assert time.monotonic() - started < 2


def test_after_stop_no_turn_is_given():
    clock = Clock()
    p = make(clock)
    p.stop()
    with pytest.raises(Stopped):
        p.turn()


def test_notes_say_what_the_run_waits_for(caplog):
    clock = Clock()
    p = make(clock)
    caplog.set_level("WARNING")
    p.answered(p.turn(), Outcome.UNAVAILABLE, problem="HTTP 503, text/html")
    p.answered(p.turn(), Outcome.ACCEPTED)
    burst_refused(p, clock, accepted=int(LIMIT), in_flight=1)
    notes = [r.getMessage() for r in caplog.records if getattr(r, pacing.WAIT_NOTE, False)]
    assert any("unavailable (HTTP 503, text/html)" in n for n in notes)
    assert any("answers again" in n for n in notes)
    assert any("limits the request rate" in n and f"{p.rate:.1f}/s" in n for n in notes)


@pytest.mark.parametrize(
    ("value", "date", "expected"),
    [
        ("7", None, 7.0),
        (" 2.5 ", None, 2.5),
        ("-3", None, 0.0),
        ("Wed, 21 Oct 2026 07:28:05 GMT", "Wed, 21 Oct 2026 07:28:00 GMT", 5.0),
        ("Wed, 21 Oct 2026 07:27:00 GMT", "Wed, 21 Oct 2026 07:28:00 GMT", 0.0),
        ("soon", None, None),
        ("", None, None),
        (None, None, None),
    ],
    ids=["seconds", "fraction", "negative", "date", "date-past", "garbage", "empty", "absent"],
)
def test_retry_after_in_both_forms(value, date, expected):
    assert retry_after_seconds(value, date) == expected


def test_a_retry_after_date_without_a_date_header_is_taken_against_this_machines_clock():
    now = time.time()
    value = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds(value, None, now=lambda: now) == pytest.approx(30, abs=1)
