"""How a dbt build reaches the marts' names without readers ever seeing a mix of two runs.

dbt commits each model on its own, so a run that fails half-way (or is read
half-way) would show some models of this run and some of the last. Each engine
gets the cheapest way around that which it allows:

- **Postgres** (readers query the warehouse while it is rebuilt): dbt builds
  every model in the build schema ``<dataset>_build``, out of sight, and its
  tests run there. Only when the whole build passed does :func:`swap_into_dataset`
  drop the previous models from the dataset and ``alter ... set schema`` the new
  ones into it, in **one transaction**. Postgres views refer to the relations
  they read by identity, not by name, so a view moved with the tables it reads
  still reads them. A reader sees the old set or the new set; a failed build
  changes nothing in the dataset. The swap waits for readers that hold a mart
  (their transaction took a lock on it) at most ``lock_timeout`` at a time, and
  steps back between tries, so a reader is blocked no longer than one try of a
  swap, which itself takes milliseconds.
- **DuckDB** (only the loader opens the working file; issue 11 publishes a copy
  for readers after each run): DuckDB cannot move a table to another schema,
  and its views refer to relations by name, so a build elsewhere could only be
  copied in, which would double the cost of the marts. Instead
  :func:`set_aside` renames the previous mart tables to ``<name>__previous``
  before dbt runs (a rename costs nothing), :func:`restore` puts them back if
  the build fails, and :func:`discard_previous` drops them once it passed. A run
  killed in between leaves the ``__previous`` tables, and the next run restores
  them before it starts. Views are rebuilt in place: they hold no data.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable, Sequence

log = logging.getLogger(__name__)

PREVIOUS_SUFFIX = "__previous"
# Postgres: how long one try of the swap waits for a lock (readers queue behind a waiting swap,
# so this bounds how long they can be held up), and how long tries go on before giving up.
# Below Postgres' default deadlock_timeout (1 s): a reader that holds one mart and then asks for
# another one the waiting swap holds would deadlock with it; the swap gives up first, so Postgres
# never has to cancel the reader.
SWAP_LOCK_TIMEOUT_S = 0.5
SWAP_DEADLINE_S = 600.0
LOCK_NOT_AVAILABLE = "55P03"


class SwapError(RuntimeError):
    """The finished build could not be moved into the dataset; the dataset is as it was."""


def relations(client: Any, schema: str) -> dict[str, str]:
    """Tables and views in ``schema``: name -> ``table`` or ``view``."""
    rows = client.execute_sql(
        "select table_name, table_type from information_schema.tables where table_schema = %s", schema
    )
    return {name: "view" if kind == "VIEW" else "table" for name, kind in rows or ()}


def _drop(client: Any, schema: str, kinds: dict[str, str], names: Iterable[str], together: bool = True) -> None:
    """Drop the named relations, views first, then tables. ``together``: each kind in one statement,
    which Postgres needs for views that read views (DuckDB drops one object at a time, and its
    views do not hold on to what they read). No cascade: an object of someone else's that reads a
    model makes the drop fail loudly instead of vanishing."""
    present = [name for name in names if name in kinds]
    for kind in ("view", "table"):
        batch = [f"{_q(schema)}.{_q(name)}" for name in present if kinds[name] == kind]
        for group in [batch] if together else [[one] for one in batch]:
            if group:
                client.execute_sql(f"drop {kind} " + ", ".join(group))


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# -- Postgres ------------------------------------------------------------------------------------


def swap_into_dataset(
    client: Any,
    build_schema: str,
    dataset: str,
    models: Sequence[str],
    lock_timeout_s: float | None = None,
    deadline_s: float | None = None,
) -> float:
    """Replace ``models`` in ``dataset`` by those in ``build_schema``, in one transaction; returns
    the seconds the successful try took. Raises SwapError when readers held the marts past the deadline."""
    lock_timeout_s = SWAP_LOCK_TIMEOUT_S if lock_timeout_s is None else lock_timeout_s
    deadline = time.monotonic() + (SWAP_DEADLINE_S if deadline_s is None else deadline_s)
    pause = 0.1
    while True:
        started = time.monotonic()
        try:
            with client.begin_transaction():
                client.execute_sql(f"set local lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
                built = relations(client, build_schema)
                missing = [name for name in models if name not in built]
                if missing:
                    raise SwapError(f"models {missing} are not in the build schema {build_schema}")
                _drop(client, dataset, relations(client, dataset), models)
                for name in models:
                    client.execute_sql(
                        f"alter {built[name]} {_q(build_schema)}.{_q(name)} set schema {_q(dataset)}"
                    )
            return time.monotonic() - started
        except SwapError:
            raise
        except Exception as exc:
            if not _is_lock_timeout(exc):
                raise SwapError(f"could not move the new models into {dataset}: {exc}") from exc
            if time.monotonic() + pause > deadline:
                raise SwapError(
                    f"readers held the marts in {dataset} for too long; the new models wait in {build_schema}"
                ) from exc
            log.info("a reader holds a mart; trying the swap again in %.1f s", pause)
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


def _is_lock_timeout(exc: BaseException | None) -> bool:
    """dlt wraps psycopg2's errors; look through the chain for Postgres' lock_not_available."""
    seen = 0
    while exc is not None and seen < 10:
        if getattr(exc, "pgcode", None) == LOCK_NOT_AVAILABLE:
            return True
        nested = [a for a in getattr(exc, "args", ()) if isinstance(a, BaseException)]
        exc = nested[0] if nested else exc.__cause__
        seen += 1
    return False


def drop_retired_views(client: Any, dataset: str, models: Iterable[str], together: bool = True) -> list[str]:
    """Drop the staging and intermediate views (``stg_*``, ``int_*``) in ``dataset`` that the
    project no longer builds as a relation, ``models`` being those it builds; returns their names.

    A model that became ephemeral, or left the project, leaves its view behind, reading
    relations the build replaces: on Postgres the swap could not drop those while it stands.
    Views hold no data; no cascade, so an object of someone else's that reads one fails loudly.
    ``together``: in one statement (Postgres, for views that read views; DuckDB drops one at a time).
    """
    built = set(models)
    kinds = relations(client, dataset)
    retired = sorted(name for name, kind in kinds.items()
                     if kind == "view" and name.startswith(("stg_", "int_")) and name not in built)
    if retired:
        log.info("dropping views the project no longer builds: %s", ", ".join(retired))
        _drop(client, dataset, kinds, retired, together)
    return retired


def drop_build_schema(client: Any, build_schema: str) -> None:
    """Remove what a build left out of sight (a failed build stays there until the next run)."""
    client.execute_sql(f"drop schema if exists {_q(build_schema)} cascade")


# -- DuckDB --------------------------------------------------------------------------------------


def set_aside(client: Any, dataset: str, tables: Sequence[str]) -> None:
    """Rename the previous ``tables`` to ``<name>__previous`` (after restoring what a killed run left)."""
    restore(client, dataset, tables)
    with client.begin_transaction():
        kinds = relations(client, dataset)
        for name in tables:
            if kinds.get(name) == "table":
                client.execute_sql(f"alter table {_q(dataset)}.{_q(name)} rename to {_q(name + PREVIOUS_SUFFIX)}")


def restore(client: Any, dataset: str, tables: Sequence[str]) -> None:
    """Put back the tables set aside, dropping whatever a failed build left under their names."""
    with client.begin_transaction():
        kinds = relations(client, dataset)
        previous = [name for name in tables if kinds.get(name + PREVIOUS_SUFFIX) == "table"]
        if not previous:
            return
        log.warning("restoring the marts of the last good run: %s", ", ".join(previous))
        _drop(client, dataset, kinds, previous, together=False)
        for name in previous:
            client.execute_sql(f"alter table {_q(dataset)}.{_q(name + PREVIOUS_SUFFIX)} rename to {_q(name)}")


def discard_previous(client: Any, dataset: str, tables: Sequence[str]) -> None:
    """Drop the tables set aside, once the build that replaced them passed."""
    with client.begin_transaction():
        kinds = relations(client, dataset)
        _drop(client, dataset, kinds, [name + PREVIOUS_SUFFIX for name in tables], together=False)


__all__ = [
    "PREVIOUS_SUFFIX",
    "SwapError",
    "discard_previous",
    "drop_build_schema",
    "drop_retired_views",
    "relations",
    "restore",
    "set_aside",
    "swap_into_dataset",
]
