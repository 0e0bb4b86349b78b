"""Where a command's time goes: seconds per phase, in the order the phases ran.

Phase names (the summary and ``--json`` use them as they are): ``startup`` (imports, configuration,
dlt's pipeline), ``align`` (local state against the warehouse: dlt's sync, pending packages finished),
``snapshot`` (what the warehouse holds, for the nightly plan), ``read`` (dlt's extract: the API),
``normalize``, ``load`` (dlt's load step), ``counter_check`` (re-reads included), ``row_counts``,
``dbt_parse`` (the raw tables checked, dbt's parse), ``swap`` (previous marts set aside and dropped, or
the build moved into the dataset), ``dbt_models``, ``dbt_tests``, ``headlines``, ``publish``. Waiting for
a DuckDB file another process holds counts in the phase that waited. Each phase is measured where it
runs; nothing is derived as a remainder, so the phases of a command add up to its seconds only as far
as they cover it.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator, Mapping


class Phases:
    """Seconds per phase; a phase timed twice adds up."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        """Time the block as phase ``name`` (also when it raises)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        self._seconds[name] = self._seconds.get(name, 0.0) + seconds

    def update(self, phases: Mapping[str, float]) -> None:
        """Add another step's phases (a load's, a transform's) to these."""
        for name, seconds in phases.items():
            self.add(name, seconds)

    def as_dict(self) -> dict[str, float]:
        """Seconds per phase, rounded to milliseconds, in the order the phases first ran."""
        return {name: round(seconds, 3) for name, seconds in self._seconds.items()}

    def total(self) -> float:
        return sum(self._seconds.values())
