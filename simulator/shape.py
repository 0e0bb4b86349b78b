"""World shapes: what varies between real tenants, as named, seeded knobs.

``WorldShape()`` is the simulator as it always was: every knob at its default
leaves a generated tenant and the API's answers exactly as before (other tests
depend on the default tenant's contents). Tenant knobs go to
``Tenant.generate(shape=...)``, API knobs to ``SimulatorApp(shape=...)``.

Tenant knobs:

* ``exam_at_issuance``: share of multi-exam purchases whose vouchers carry an
  exam code from issuance (single-exam programs always do, unless
  ``single_exam_linked`` is off). The other vouchers get one
  ``link_when``: ``"reserved"`` (at their first reservation, or when used
  without one), ``"used"`` (only when used) or ``"never"``. Together these set
  the share of vouchers without an exam code.
* ``exam_counts`` / ``exam_weights``: how many exams a program sells.
* ``purchase_count``: the number of purchases, as a share of the size's own.
* ``purchase_scale``, ``big_share`` and ``big_range``: purchase sizes
  (quantities are multiplied, then kept within the API's 1-1,000; ``big_share``
  is the share of "big" purchases, None for the size's own, drawn log-uniformly
  from ``big_range``, 50-500 by default).
* ``unlinked_vouchers`` and ``unlinked_from_quantity``: vouchers issued without
  an exam code whatever their purchase's link: each voucher with this
  probability (drawn from a hash of its position, so the rest of the tenant is
  drawn as without it), and every voucher of a purchase of at least this many
  (0: none). They are linked later only as ``link_when`` says.
* ``odd_partner_states`` and ``retired_programs``: that many partners in a state
  outside the reference's three (``Suspended``: listed, but returned by no
  ``status`` filter), and that many programs the program list no longer shows
  (``Retired``; their purchases and vouchers remain). Chosen after the history is
  drawn, among those with the fewest purchases.
* ``history_days`` and ``engagement``: the share of open vouchers. A young
  tenant has few expired vouchers; a low engagement assigns and uses fewer.
* ``start_day``: the API's clock (the simulated "today", sent as the ``Date``
  header), which can be months away from the loader's.

API knobs: ``page_size``, ``cap``, ``order`` (records come back in creation
order, ``"newest_first"``, or ``"shuffled"``: a fixed permutation of creation
order), and ``activity_every_pages``: after every N voucher pages served, a
moment of activity (vouchers used, reserved, assigned, deactivated) happens
while the read is under way. The API pages by number, so a voucher used during
a read of ``isUsed=false`` shifts the records behind it by one place.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

LINK_WHEN = ("issuance", "reserved", "used", "never")
ORDERS = ("created", "newest_first", "shuffled")
START_DAY = dt.date(2026, 11, 1)
HISTORY_DAYS = 4 * 365


@dataclass(frozen=True)
class WorldShape:
    """One tenant shape; the defaults are the simulator's historical tenant."""

    name: str = "default"
    # exam codes on vouchers
    exam_at_issuance: float = 0.6
    link_when: str = "reserved"
    single_exam_linked: bool = True
    exam_counts: tuple[int, ...] = (1, 2, 3, 4)
    exam_weights: tuple[float, ...] = (55, 20, 15, 10)
    # purchase sizes
    purchase_count: float = 1.0
    purchase_scale: float = 1.0
    big_share: float | None = None
    big_range: tuple[int, int] = (50, 500)
    unlinked_vouchers: float = 0.0
    unlinked_from_quantity: int = 0
    # lists the reference does not describe whole
    odd_partner_states: int = 0
    retired_programs: int = 0
    # open vouchers
    history_days: int = HISTORY_DAYS
    engagement: float = 1.0
    # the API's clock
    start_day: dt.date = START_DAY
    # API behaviour
    page_size: int = 100
    cap: int = 10_000
    order: str = "created"
    activity_every_pages: int = 0

    def __post_init__(self) -> None:
        if self.link_when not in LINK_WHEN:
            raise ValueError(f"link_when must be one of {LINK_WHEN}, not {self.link_when!r}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, not {self.order!r}")
        if len(self.exam_counts) != len(self.exam_weights) or min(self.exam_counts) < 1:
            raise ValueError("exam_counts and exam_weights must pair up, each program selling at least one exam")
        if not 0 <= self.exam_at_issuance <= 1 or self.purchase_scale <= 0 or self.purchase_count <= 0 or not 0 < self.engagement <= 1:
            raise ValueError("exam_at_issuance and engagement are shares, purchase_scale and purchase_count are positive")
        if not 1 <= self.big_range[0] <= self.big_range[1] <= 1000 or not 0 <= self.unlinked_vouchers <= 1 \
                or self.unlinked_from_quantity < 0:
            raise ValueError("big_range lies within 1-1,000, unlinked_vouchers is a share, unlinked_from_quantity >= 0")
        if self.odd_partner_states < 0 or self.retired_programs < 0:
            raise ValueError("odd_partner_states and retired_programs are counts")
        if self.page_size < 1 or self.cap < 1 or self.history_days < 30 or self.activity_every_pages < 0:
            raise ValueError("page_size, cap and history_days (>= 30) must be positive")

    def with_(self, **changes: object) -> WorldShape:
        """This shape with some knobs changed."""
        return dataclasses.replace(self, **changes)

    def quantity(self, drawn: int) -> int:
        """A drawn purchase quantity, scaled, within the API's 1-1,000."""
        if self.purchase_scale == 1.0:
            return drawn
        return min(1000, max(1, round(drawn * self.purchase_scale)))

    @property
    def drops_exams(self) -> bool:
        """Whether some vouchers are issued without their purchase's exam code."""
        return bool(self.unlinked_vouchers or self.unlinked_from_quantity)

    def issued_exam(self, exam: int, quantity: int, position: int) -> int:
        """The exam (0: none) voucher ``position`` of a purchase of ``quantity`` linked to ``exam`` is issued with."""
        if self.unlinked_from_quantity and quantity >= self.unlinked_from_quantity:
            return 0
        if self.unlinked_vouchers and ((position * 2654435761) & 0xFFFFFFFF) / 2**32 < self.unlinked_vouchers:
            return 0
        return exam


DEFAULT = WorldShape()


# Shapes unlike each other and unlike the default, for benchmarks.grid (full sizes) and tests (small sizes).
GRID: tuple[WorldShape, ...] = (
    WorldShape("linked_when_reserved", exam_at_issuance=0.0),
    WorldShape("multi_exam_unlinked", exam_counts=(2, 3, 4), exam_weights=(40, 35, 25), exam_at_issuance=0.0),
    WorldShape("never_linked", exam_at_issuance=0.0, link_when="never", single_exam_linked=False),
    WorldShape("linked_when_used", exam_at_issuance=0.2, link_when="used", order="newest_first"),
    WorldShape("many_exams", exam_counts=(6, 8, 10), exam_weights=(1, 1, 1), exam_at_issuance=0.9),
    WorldShape("bulk_purchases", purchase_scale=4.0, big_share=0.1),
    WorldShape("tiny_purchases", purchase_scale=0.2, big_share=0.0, order="shuffled"),
    WorldShape("young_and_open", history_days=300, engagement=0.3),
    WorldShape("small_pages_low_cap", page_size=25, cap=2_000),
    WorldShape("big_pages_clock_behind", page_size=500, start_day=dt.date(2026, 5, 1)),
    # A low cap, pages of 50, a third of the vouchers without an exam code (drawn voucher by voucher, never
    # linked), and a tenth as many purchases, a third of them close to the cap (800-1,000 vouchers).
    WorldShape("low_cap_bulk_third", cap=1_000, page_size=50, purchase_count=0.1, big_share=0.3,
               big_range=(800, 1000), exam_at_issuance=1.0, link_when="never", unlinked_vouchers=0.33),
    # Every purchase linked to an exam at issuance, but for bulk ones (50 vouchers or more), linked only
    # when reserved: a first-run sample of a dozen purchases, nearly all small, says nothing is unlinked,
    # while a third of the vouchers are.
    WorldShape("sample_misleads", exam_at_issuance=1.0, unlinked_from_quantity=50),
    # The same at a low cap and pages of 50, with purchases of 100 vouchers or more never linked and a tenth
    # of the purchases close to the cap: nine vouchers in ten unlinked, in a tenth of the purchases.
    WorldShape("sample_misleads_low_cap", cap=1_000, page_size=50, purchase_count=0.3, big_share=0.1,
               big_range=(800, 1000), exam_at_issuance=1.0, link_when="never", unlinked_from_quantity=100),
)
