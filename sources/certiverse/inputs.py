"""What one run of the source reads from besides its configuration: the run's inputs, in one value.

The source's signature is its configuration (``[sources.certiverse]``: the API, the
workers, the cap), as in dlt's verified sources. What changes from run to run (what
the warehouse held after the last load, "now", a repair list) is not configuration:
the caller binds it to the ``vouchers`` resource of the source it is about to run,

    source = certiverse_source()
    source.vouchers.bind(RunInputs(snapshot=snapshot))

and an unbound ``vouchers`` resource reads every voucher.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .snapshot import Snapshot


@dataclass(frozen=True)
class RunInputs:
    """One run's inputs to the vouchers resource.

    Attributes:
        snapshot: what the warehouse held after the last load; the nightly plan reads
            against it. None reads every voucher.
        as_of: "now", to tell open vouchers from expired ones (default: the API's own
            clock, from its ``Date`` header; tests and the demo set it).
        full_refresh: read every voucher even though there is a snapshot.
        reread_purchases: read only these purchases' vouchers, whole (the counter check's
            repair; the nightly plan and its state are left alone). Empty: a normal read.
    """

    snapshot: Snapshot | None = None
    as_of: dt.datetime | None = None
    full_refresh: bool = False
    reread_purchases: tuple[str, ...] = ()

    @classmethod
    def repair(cls, purchase_codes: list[str] | tuple[str, ...]) -> "RunInputs":
        """The counter check's re-read of these purchases, whole."""
        if not purchase_codes:
            raise ValueError("a repair needs at least one purchase code")
        return cls(reread_purchases=tuple(purchase_codes))

    @property
    def plan_snapshot(self) -> Snapshot | None:
        """The snapshot the nightly plan reads against: none on a full refresh."""
        return None if self.full_refresh else self.snapshot


# The inputs of a run that knows nothing: every voucher is read (an unbound vouchers resource).
FULL_READ = RunInputs()
