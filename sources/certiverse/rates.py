"""What is known of unlinked vouchers: from the warehouse, or learnt from the purchases read so far.

Words as defined in ``facts.py`` (side, part, stratum, cell). On a first run the
full read learns from a small **sample**: ``SAMPLE_FIRST`` purchases of each stratum
read on their own (their vouchers are part of the read), up to ``SAMPLE_MAX`` where
the first ones disagree; then from each program read by exam (``fullread.py``).
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable, NamedTuple

from .facts import Cell, VoucherFacts

SAMPLE_FIRST = 4  # purchases per stratum read whole to learn how often they hold unlinked vouchers
SAMPLE_MAX = 12  # ... and up to this many when the first ones disagree


class PurchaseSeen(NamedTuple):
    """What one purchase read told about unlinked vouchers."""

    code: str
    pages: int  # what reading it costs: the weight of what it tells
    held: bool  # it held unlinked vouchers (an exam slice would have missed some)
    vouchers: dict[bool, int]  # vouchers looked at, per isUsed side
    unlinked: dict[bool, int]  # ... of them not linked (or missed by the exam slices)


@dataclass(frozen=True)
class LinkRates:
    """What is known of unlinked vouchers: per purchase (the warehouse), or from the purchases seen so far
    (the sample, then each program read by exam), per stratum and, within it, for bulk purchases apart
    (``BULK`` vouchers or more: they are often linked differently, and weigh most in what a read costs).

    ``likelihood`` weighs purchases by their pages: the share of pages in purchases that held unlinked
    vouchers, so that a few large purchases holding them count for what re-reading them costs.
    ``unlinked_share`` is the share of vouchers on one side that are not linked: the exam slices return
    the others, which is what decides whether a slice stays under the cap.
    """

    known: frozenset[str] | None = None  # purchases that hold some (from the warehouse)
    pages: Counter[Cell] = field(default_factory=Counter)
    held: Counter[Cell] = field(default_factory=Counter)
    vouchers: Counter[tuple[Cell, bool]] = field(default_factory=Counter)
    unlinked: Counter[tuple[Cell, bool]] = field(default_factory=Counter)

    def likelihood(self, facts: VoucherFacts, code: str) -> float:
        if self.known is not None:
            return 1.0 if code in self.known else 0.0
        cells = _cells(facts, code, self.pages)
        if not cells:
            return 1.0
        return (sum(self.held[c] for c in cells) + 0.5) / (sum(self.pages[c] for c in cells) + 1)

    def unlinked_share(self, facts: VoucherFacts, code: str, used: bool, strict: bool = False) -> float:
        """``strict``: a purchase whose own cell nothing was seen of counts as all unlinked (for guesses that
        cost a request when too high), not as its stratum's other cells say."""
        if self.known is not None:
            return 0.0
        if strict and not self.vouchers[(facts.cell(code), used)]:
            return 1.0
        cells = _cells(facts, code, self._vouchers_by_side[used])
        seen = sum(self.vouchers[(c, used)] for c in cells)
        return sum(self.unlinked[(c, used)] for c in cells) / seen if seen else 0.0

    @cached_property
    def _vouchers_by_side(self) -> dict[bool, Counter[Cell]]:
        """``vouchers`` per side, built once: the planners ask ``unlinked_share`` for every purchase of every
        program after every wave, and building it per question was ~5% of a large tenant's CPU. The
        counters are not changed once the rates are made (``observed`` makes new ones)."""
        by_side: dict[bool, Counter[Cell]] = {True: Counter(), False: Counter()}
        for (cell, side), n in self.vouchers.items():
            by_side[side][cell] = n
        return by_side

    def observed(self, facts: VoucherFacts, seen: Iterable[PurchaseSeen]) -> LinkRates:
        """These rates with more purchases seen."""
        if self.known is not None:
            return self
        pages_, held = Counter(self.pages), Counter(self.held)
        vouchers, unlinked = Counter(self.vouchers), Counter(self.unlinked)
        for one in seen:
            cell = facts.cell(one.code)
            pages_[cell] += one.pages
            held[cell] += one.pages if one.held else 0
            for used, n in one.vouchers.items():
                vouchers[(cell, used)] += n
                unlinked[(cell, used)] += one.unlinked.get(used, 0)
        return LinkRates(None, pages_, held, vouchers, unlinked)


def _cells(facts: VoucherFacts, code: str, observed: Counter[Cell]) -> list[Cell]:
    """The purchase's own cell if anything was seen there, else its stratum's cells seen (none: nothing)."""
    cell = facts.cell(code)
    if observed[cell]:
        return [cell]
    return [c for c in observed if c[:2] == cell[:2] and observed[c]]


def sample_order(codes: Iterable[str]) -> list[str]:
    """A fixed pseudo-random order (the same every run, unrelated to purchase age or size)."""
    return sorted(codes, key=lambda c: (zlib.crc32(c.encode()), c))
