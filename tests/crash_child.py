"""A load that kills itself (SIGKILL) at a chosen point; run by tests/test_crash.py in a subprocess.

usage: crash_child.py URL TOKEN DUCKDB PIPELINES_DIR AS_OF KILL_AT
KILL_AT: extract (after a few voucher pages), normalize (extract done), load (normalize done),
         merge (inside the destination, at the first statement that writes the vouchers table),
         committed (every job loaded and committed, the package not yet marked done).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys

import dlt

from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.sources.certiverse.client import CertiverseClient


def die(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def arm(kill_at: str) -> None:
    if kill_at == "extract":
        page = CertiverseClient.page
        voucher_pages = []

        def page_then_die(self, query, number=1):
            if query.endpoint == "vouchers":
                voucher_pages.append(number)
                if len(voucher_pages) > 2:
                    die()
            return page(self, query, number)

        CertiverseClient.page = page_then_die
    elif kill_at == "normalize":
        dlt.Pipeline.normalize = die
    elif kill_at == "load":
        dlt.Pipeline.load = die
    elif kill_at == "merge":
        from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient

        execute = DuckDbSqlClient.execute_query

        def execute_then_die(self, query, *args, **kwargs):
            text = query if isinstance(query, str) else query.decode()
            if "vouchers" in text and text.lstrip().lower().startswith(("insert", "update", "delete")):
                die()
            return execute(self, query, *args, **kwargs)

        DuckDbSqlClient.execute_query = execute_then_die
    elif kill_at == "committed":
        from dlt.common.storages.load_storage import LoadStorage

        LoadStorage.complete_load_package = die
    else:
        raise SystemExit(f"unknown kill point {kill_at}")


def main() -> None:
    url, token, duckdb_file, pipelines_dir, as_of, kill_at = sys.argv[1:7]
    pipeline = RunContext.from_config("duckdb", duckdb_file, pipelines_dir=pipelines_dir)
    arm(kill_at)
    run_load(pipeline, {"base_url": url, "api_token": token, "workers": 1}, as_of=dt.datetime.fromisoformat(as_of))
    sys.exit(3)  # the kill point was never reached


if __name__ == "__main__":
    main()
