"""The real ``certiverse`` command, held at one point of a run so that tests/test_stopping.py can stop it there.

usage: stop_child.py HOLD CLI-ARGS...   (run with the test's Python; the CLI's own main() does the rest)

HOLD says where the run is held once it gets there; the child then writes ``HOLDING <HOLD>`` to stderr:

* ``none``: not held (the test holds the run from outside: the simulator, a database lock);
* ``load``: dlt's load job waits, in its worker thread, before its first write to the vouchers table
  (DuckDB), until the file named by env ``STOP_CHILD_RELEASE`` exists: a statement still running
  when the signal comes, that then ends;
* ``load-forever``: the same, never released: a statement that outlasts every wait;
* ``counter_check``: the counter check's first query is preceded by a long one (main thread);
* ``dbt``: dbt's statement for the first mart is preceded by a long one (a dbt worker thread);
* ``publish``: once the published DuckDB file is built, a long wait before the Parquet folder is
  written (main thread).

The long statement: on Postgres ``pg_sleep``; in dbt on DuckDB an aggregate over a huge range that
announces the hold from inside (a Python function DuckDB calls), so it runs when dbt cancels it.
DuckDB's Python client does not stop a statement of the main thread on a signal (the signal is
handled when the statement ends, in seconds for real ones), so there the hold is a wait in Python,
standing for the step in progress. The holds are the test's code, none is in the product's.
"""

from __future__ import annotations

import os
import sys
import threading
import time

SLOW = {"duckdb": "select max(stop_child_hold(range)) from range(100000000000000)", "postgres": "select pg_sleep(600)"}
_held, _never = threading.Event(), threading.Event()


def long_step(execute, engine: str) -> None:
    """A long statement (Postgres) or a long wait (DuckDB, see the module docstring) on the main thread."""
    if engine == "postgres":
        execute(SLOW["postgres"])
    else:
        _never.wait(300)


def announce(point: str) -> bool:
    """Say (once) that the run reached ``point``; False if it was said already."""
    if _held.is_set():
        return False
    _held.set()
    os.write(2, f"HOLDING {point}\n".encode())
    return True


def arm(point: str) -> None:
    if point == "none":
        return
    if point in ("load", "load-forever"):
        from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient

        execute = DuckDbSqlClient.execute_query
        release = os.environ.get("STOP_CHILD_RELEASE", "")

        def held_write(self, query, *args, **kwargs):
            text = query if isinstance(query, str) else query.decode()
            writes = text.lstrip().lower().startswith(("insert", "update", "delete"))
            if writes and '"vouchers"' in text and threading.current_thread() is not threading.main_thread():
                if announce(point):
                    deadline = time.monotonic() + 300
                    while time.monotonic() < deadline and (point == "load-forever" or not os.path.exists(release)):
                        time.sleep(0.05)
            return execute(self, query, *args, **kwargs)

        DuckDbSqlClient.execute_query = held_write
    elif point == "counter_check":
        from certiverse_warehouse.pipelines.load import counters

        to_reread = counters.to_reread

        def slow_first(client):
            execute_sql = client.execute_sql

            def slow_then(sql, *args, **kwargs):  # the check's first query is slow
                if announce(point):
                    long_step(execute_sql, _engine(client))
                return execute_sql(sql, *args, **kwargs)

            client.execute_sql = slow_then
            return to_reread(client)

        counters.to_reread = slow_first
    elif point == "dbt":
        from dbt.adapters.sql.connections import SQLConnectionManager

        add_query = SQLConnectionManager.add_query

        def slow_before_the_first_mart(self, sql, *args, **kwargs):
            if "voucher_utilization" in sql and not _held.is_set():
                if self.TYPE == "duckdb":
                    def running(values):
                        announce(point)
                        return values

                    cursor = self.get_thread_connection().handle.cursor()
                    cursor.create_function("stop_child_hold", running, ["BIGINT"], "BIGINT", type="arrow")
                else:
                    announce(point)
                add_query(self, SLOW[self.TYPE])
            return add_query(self, sql, *args, **kwargs)

        SQLConnectionManager.add_query = slow_before_the_first_mart
    elif point == "publish":
        import importlib

        publish = importlib.import_module("certiverse_warehouse.pipelines.publishing.publish")
        fill = publish._fill_parquet

        def slow_after_the_duckdb_copy(connection, *args, **kwargs):
            announce(point)
            long_step(connection.execute, "duckdb")
            return fill(connection, *args, **kwargs)

        publish._fill_parquet = slow_after_the_duckdb_copy
    else:
        raise SystemExit(f"unknown hold {point}")


def _engine(client) -> str:
    return "postgres" if "postgres" in type(client).__module__ else "duckdb"


def main() -> None:
    point, argv = sys.argv[1], sys.argv[2:]
    from certiverse_warehouse.pipelines.cli import main as cli

    arm(point)
    sys.exit(cli(argv))


if __name__ == "__main__":
    main()
