"""Unit tests of the reader: SeenIds, and read_all's splitting, de-duplication and errors, over a fake API."""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np
import pytest

from certiverse_warehouse.sources.certiverse.client import Query
from certiverse_warehouse.sources.certiverse.reader import CapExceededError, SeenIds, read_all
from tests.fakes import FakeApi

RECORDS = [{"id": f"r{i}", "kind": "odd" if i % 2 else "even"} for i in range(12)]
ROOT = Query.of("vouchers", isUsed=False)


def by_kind(query: Query) -> list[Query] | None:
    """Split a refused query into its two kinds; nothing below that."""
    return None if "kind" in query.params else [query.narrowed(kind="odd"), query.narrowed(kind="even")]


def read_ids(api: FakeApi, roots=(ROOT,), split=by_kind, **kwargs) -> Counter:
    return Counter(r["id"] for page in read_all(api, list(roots), split, workers=3, **kwargs) for r in page)


def test_seen_ids_keeps_the_first_of_each_key_within_and_across_lists():
    seen = SeenIds()
    first = seen.fresh([{"id": "a"}, {"id": "b"}, {"id": "a"}], "id")
    second = seen.fresh([{"id": "b"}, {"id": "c"}], "id")
    assert [r["id"] for r in first] == ["a", "b"] and [r["id"] for r in second] == ["c"]
    assert len(seen) == 3 and "c" in seen and "d" not in seen


def test_seen_ids_answers_the_same_after_merging_its_recent_keys(monkeypatch):
    monkeypatch.setattr(SeenIds, "_MERGE_AT", 4)
    seen = SeenIds()
    keys = [f"k{i}" for i in range(10)]
    for i in range(0, len(keys), 3):
        seen.fresh([{"id": k} for k in keys[i:i + 3]], "id")
    assert len(seen._recent) < 4  # merged into the sorted array on the way
    assert all(k in seen for k in keys) and "k10" not in seen
    assert seen.fresh([{"id": k} for k in keys], "id") == []
    hashes = np.array([hash(k) for k in ("k0", "k9", "nope")], dtype=np.int64)
    assert seen.known(hashes).tolist() == [True, True, False]
    assert SeenIds().known(hashes).tolist() == [False, False, False]


def test_every_record_is_read_once_when_nothing_is_refused():
    api = FakeApi({"vouchers": RECORDS}, page_size=5)
    assert read_ids(api) == Counter(r["id"] for r in RECORDS)


def test_a_422_on_a_later_page_splits_and_earlier_pages_are_not_yielded_twice():
    page, cap = 5, 8
    api = FakeApi({"vouchers": RECORDS}, page_size=page, cap=cap, cap_mode="late")
    ids = read_ids(api)
    assert ids == Counter(r["id"] for r in RECORDS)
    assert (ROOT, 1) in api.requests and (ROOT, cap // page + 1) in api.requests  # read until refused
    assert api.queries() == {ROOT, ROOT.narrowed(kind="odd"), ROOT.narrowed(kind="even")}


def test_the_summary_counts_queries_answered_and_refused():
    api = FakeApi({"vouchers": RECORDS}, page_size=5, cap=8)
    pages = read_all(api, [ROOT], by_kind, workers=2)
    while True:
        try:
            next(pages)
        except StopIteration as done:
            summary = done.value
            break
    assert (summary.answered, summary.refused) == (2, 1)
    assert summary.filter_sets == {("isUsed", "kind")} and not summary.read_exam_slices


def test_a_query_that_cannot_be_narrowed_stops_the_read_naming_it():
    api = FakeApi({"vouchers": RECORDS}, page_size=5, cap=3)
    with pytest.raises(CapExceededError, match=r"isUsed=false&kind=(odd|even) matches more records"):
        read_ids(api)


def test_an_error_in_one_worker_reaches_the_caller_and_the_other_workers_stop():
    many = [Query.of("vouchers", purchaseCode=f"P{i}") for i in range(40)]
    boom = RuntimeError("worker failed")
    api = FakeApi({"vouchers": RECORDS}, page_size=1, fail={many[3]: boom})
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="worker failed"):
        read_ids(api, roots=many)
    assert len(api.queries()) < len(many)  # queries are handed out a few at a time: the rest never ran
    assert api.stopped  # the client's waits and retries end too
    for thread in reader_threads():  # told to stop, not waited for: each ends after its page
        thread.join(10)
    assert threading.active_count() <= before


def test_seen_shared_between_reads_deduplicates_across_them():
    api = FakeApi({"vouchers": RECORDS}, page_size=5)
    seen = SeenIds()
    first = read_ids(api, seen=seen)
    again = read_ids(api, roots=[Query.of("vouchers", kind="odd")], seen=seen)
    assert sum(first.values()) == len(RECORDS) and again == Counter()


# -- pages asked for by number, side by side -------------------------------------------------------

PAGE = 2
PAGES = len(RECORDS) // PAGE  # 6 full pages


class BarrierApi(FakeApi):
    """Holds every numbered page (2 and on) until ``parties`` of them are asked for at once: a reader that
    asked for them one after another would never get past the first."""

    def __init__(self, *args, parties: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.barrier = threading.Barrier(parties, timeout=5)

    def page(self, query, number=1):
        if number > 1:
            self.barrier.wait()
        return super().page(query, number)


def summary_of(pages):
    while True:
        try:
            next(pages)
        except StopIteration as done:
            return done.value


def test_pages_of_a_query_expected_to_be_long_are_asked_for_side_by_side():
    api = BarrierApi({"vouchers": RECORDS}, page_size=PAGE, parties=PAGES - 1)
    ids = Counter(r["id"] for page in read_all(api, [ROOT], workers=PAGES, expected=lambda q: len(RECORDS))
                  for r in page)
    assert ids == Counter(r["id"] for r in RECORDS)
    assert sorted(n for _, n in api.requests) == list(range(1, PAGES + 1))  # not one request more


def test_a_guess_too_high_costs_empty_pages_and_loses_nothing():
    api = FakeApi({"vouchers": RECORDS}, page_size=PAGE)
    ids = read_ids(api, expected=lambda q: 2 * len(RECORDS))
    assert ids == Counter(r["id"] for r in RECORDS)
    assert sorted(n for _, n in api.requests) == list(range(1, 2 * PAGES + 1))


def test_a_guess_too_low_follows_next_link_past_it():
    api = FakeApi({"vouchers": RECORDS}, page_size=PAGE)
    ids = read_ids(api, expected=lambda q: len(RECORDS) // 2)
    assert ids == Counter(r["id"] for r in RECORDS)
    assert sorted(n for _, n in api.requests) == list(range(1, PAGES + 1))


def test_a_numbered_page_the_api_refuses_makes_the_query_read_page_after_page():
    from certiverse_warehouse.sources.certiverse.client import BadRequestError

    class RefusesNumbers(FakeApi):
        def page(self, query, number=1):
            if number > 1 and not self.following:
                raise BadRequestError(query, "page is out of range")
            return super().page(query, number)

        def follow(self, query, next_link, after=1):
            self.following = True
            yield from super().follow(query, next_link, after)

    api = RefusesNumbers({"vouchers": RECORDS}, page_size=PAGE)
    api.following = False
    pages = read_all(api, [ROOT], workers=3, expected=lambda q: len(RECORDS))
    ids = Counter()
    summary = None
    while summary is None:
        try:
            ids.update(r["id"] for r in next(pages))
        except StopIteration as done:
            summary = done.value
    assert ids == Counter(r["id"] for r in RECORDS) and summary.answered == 1


def test_a_422_on_a_numbered_page_splits_the_query_once():
    api = FakeApi({"vouchers": RECORDS}, page_size=PAGE, cap=8, cap_mode="late")
    summary = summary_of(read_all(api, [ROOT], by_kind, workers=4, expected=lambda q: len(RECORDS)))
    assert (summary.answered, summary.refused) == (2, 1)
    assert read_ids(FakeApi({"vouchers": RECORDS}, page_size=PAGE, cap=8, cap_mode="late"),
                    expected=lambda q: len(RECORDS)) == Counter(r["id"] for r in RECORDS)


class HangingApi(FakeApi):
    """One query's request never answers until ``release`` is set: a request in flight on a hung API."""

    def __init__(self, *args, hang: Query, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.hang, self.hanging, self.release = hang, threading.Event(), threading.Event()

    def page(self, query: Query, number: int = 1):
        if query == self.hang:
            self.hanging.set()
            self.release.wait(60)
        return super().page(query, number)


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("certiverse-reader")]


def test_a_consumer_that_goes_away_abandons_the_request_in_flight_and_stops_the_client():
    roots = [Query.of("vouchers", kind="odd"), Query.of("vouchers", kind="even")]
    api = HangingApi({"vouchers": RECORDS}, page_size=1, hang=roots[1])
    pages = read_all(api, roots, by_kind, workers=2)
    assert next(pages)  # both queries are under way: the odd one answered, the even one hangs
    assert api.hanging.wait(10)
    pages.close()  # what dlt does to a resource when the run fails or is interrupted
    # Closing did not wait for the request in flight: it is still hanging, in a daemon thread that
    # the interpreter's exit does not wait for either.
    assert not api.release.is_set() and api.stopped
    assert reader_threads() and all(t.daemon for t in reader_threads())
    api.release.set()
    for thread in reader_threads():
        thread.join(10)
    assert not reader_threads()  # once answered, the abandoned worker ended
