"""The ``certiverse`` command line: its commands, options and help texts."""

from __future__ import annotations

import argparse
import datetime as dt
import textwrap

from ... import version
from . import commands as handlers
from .codes import epilog

WORKERS_HELP = "queries fetched at once (default: [sources.certiverse] workers, else 16)"
CHECK_HELP = ("Before the first run, and after changing the configuration: `certiverse check` checks the "
              "configuration, makes one API request and opens the warehouse for writing, loading nothing; it "
              "exits with the code `run` would end with.")
NOTIFICATIONS_HELP = ("Notifications: set [notifications] webhook_url in .dlt/secrets.toml (or "
                      "NOTIFICATIONS__WEBHOOK_URL) to a Slack-compatible webhook. It gets one message when a "
                      "command fails, when `status` finds the warehouse stale, and when a load repairs purchases, "
                      "sees columns the API started to send, or must read everything again. Never the token; a "
                      "webhook that fails or hangs costs at most [notifications] timeout (3 s) a step and never "
                      "changes the exit code.")
DUCKDB_FILE_HELP = "DuckDB file (default: DESTINATION__DUCKDB__CREDENTIALS, else warehouse.duckdb)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certiverse",
        # paragraphs and the exit codes' table keep their lines
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_paragraphs(
            "Load Certiverse voucher data (partners, programs, purchases, vouchers) into DuckDB or Postgres with "
            "dlt. Configuration comes from .dlt/config.toml, .dlt/secrets.toml and environment variables such as "
            "SOURCES__CERTIVERSE__BASE_URL and SOURCES__CERTIVERSE__API_TOKEN."),
        epilog=_paragraphs(CHECK_HELP, NOTIFICATIONS_HELP) + "\n\n" + epilog(),
    )
    parser.add_argument("--version", action="version", version=f"certiverse {version()}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, the libraries' own log lines (dlt, dbt) and full tracebacks "
                        "(the exit code stays the same)")
    parser.add_argument("--progress", action="store_true", help="log progress lines while running")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    load = commands.add_parser(
        "load",
        help="extract every resource from the API and load it",
        description="Extract partners, programs, purchases and vouchers from the Certiverse API and merge them "
        "into the warehouse. The API is configured the dlt way: [sources.certiverse] base_url in "
        ".dlt/config.toml and api_token in .dlt/secrets.toml, or SOURCES__CERTIVERSE__BASE_URL and "
        "SOURCES__CERTIVERSE__API_TOKEN.",
    )
    _add_destination_args(load)
    _add_load_args(load)
    load.set_defaults(handler=handlers.cmd_load)

    transform = commands.add_parser(
        "transform",
        help="build the utilization and expiry tables from what is loaded",
        description="Build the dbt project in transforms/ (staging, then marts such as "
        "voucher_utilization and voucher_expiry, then their tests) on the destination, in the loaded dataset "
        "(staging and intermediate as views, marts as tables), print headline numbers, and (DuckDB) publish the "
        "copy readers open (see `certiverse publish`). Dates and months are cut in the reporting time zone, "
        "[marts] timezone in .dlt/config.toml (env MARTS__TIMEZONE; default UTC). "
        "See docs/marts.md and docs/analysts.md.",
    )
    _add_destination_args(transform)
    _add_as_of_arg(transform)
    _add_select_arg(transform)
    transform.add_argument("--json", action="store_true", help="print the summary as JSON")
    transform.set_defaults(handler=handlers.cmd_transform)

    run = commands.add_parser(
        "run",
        help="load, then transform",
        description="`certiverse load` followed by `certiverse transform`: extract and load from the API, check "
        "every purchase against the API's counters (re-reading those that disagree), rebuild the utilization and "
        "expiry tables, and (DuckDB) publish the copy analysts and BI tools open (see `certiverse publish`).",
    )
    _add_destination_args(run)
    _add_load_args(run)
    _add_as_of_arg(run)
    _add_select_arg(run)
    run.set_defaults(handler=handlers.cmd_run)

    demo = commands.add_parser(
        "demo",
        help="simulated tenant → DuckDB file in this folder → summary",
        description="Start the bundled Certiverse simulator on loopback, load its tenant into a DuckDB file in "
        "the current folder and print a summary. Needs no account and no network.",
    )
    demo.add_argument("--size", choices=("small", "default", "large"), default="default", help="tenant size")
    demo.add_argument("--seed", type=int, default=42, help="tenant seed (same seed, same data)")
    demo.add_argument("--duckdb-file", default="certiverse_demo.duckdb", help="DuckDB file to write")
    demo.add_argument("--pipelines-dir", help="where dlt keeps local state, a folder per warehouse "
                      "(default: .certiverse/ here)")
    demo.set_defaults(handler=handlers.cmd_demo)

    sim = commands.add_parser(
        "simulate",
        help="serve the Certiverse API simulator over HTTP",
        description="Serve a simulated Certiverse tenant on loopback, faithful to the API reference: bearer "
        "auth, required filters, the record cap (422), partial name matches and nextLink paging, with optional "
        "latency and faults. Point the loader at it with SOURCES__CERTIVERSE__BASE_URL=http://HOST:PORT and "
        "SOURCES__CERTIVERSE__API_TOKEN=<token>.",
    )
    sim.add_argument("--size", choices=("small", "default", "large"), default="default")
    sim.add_argument("--seed", type=int, default=42)
    sim.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    sim.add_argument("--port", type=int, default=8765)
    sim.add_argument("--token", default="sim-token", help="the bearer token the simulator accepts")
    sim.add_argument("--page-size", type=int, default=100)
    sim.add_argument("--cap", type=int, default=10_000, help="records a query may match before 422")
    sim.add_argument("--cap-mode", choices=("first", "late"), default="first",
                     help="422 on the first page, or only on the page past the cap")
    sim.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
    sim.add_argument("--fault-500", type=float, default=0.0, help="share of requests answered 500")
    sim.add_argument("--fault-429", type=float, default=0.0, help="share of requests answered 429")
    sim.add_argument("--fault-truncate", type=float, default=0.0, help="share of bodies cut short")
    sim.add_argument("--rate-limit", type=float, metavar="N",
                     help="a rate limiter in front of the API: N requests a second (token bucket), 429 beyond")
    sim.add_argument("--retry-after", choices=("seconds", "date", "absent"), default="seconds",
                     help="how the rate limiter's 429 says when to come back (default: seconds)")
    sim.add_argument("--outage-seconds", type=float, metavar="S", help="an outage of S seconds (a deploy, a recycle)")
    outage_start = sim.add_mutually_exclusive_group()
    outage_start.add_argument("--outage-at", type=float, metavar="SECONDS",
                              help="the outage starts this long after the first request (default: at once)")
    outage_start.add_argument("--outage-after-requests", type=int, metavar="N",
                              help="the outage starts once N requests were answered")
    sim.add_argument("--outage-answer", choices=("503", "502", "504", "drop"), default="503",
                     help="what the outage answers: an IIS HTML error page with that status, or dropped "
                     "connections (default: 503)")
    sim.set_defaults(handler=handlers.cmd_simulate)
    check = commands.add_parser(
        "check",
        help="check configuration and connectivity, loading nothing (before the first run, after a change)",
        description="Check what a run needs, loading nothing: the configuration (the API's settings resolved as a "
        "run resolves them, the destination's, [publish], [notifications]); the API, with one request (the "
        "first page of the programs list: the token is accepted, the server is the API); and the warehouse, "
        "opened for writing (a table created in the dataset and rolled back; a DuckDB file not there yet is not "
        "created: a scratch file beside it proves its folder takes one). Exits with the code `run` would end "
        "with (see the exit codes in `certiverse --help`); a failed check is sent to the notification webhook.",
    )
    _add_destination_args(check)
    check.add_argument("--base-url", help="API root (overrides SOURCES__CERTIVERSE__BASE_URL)")
    check.add_argument("--json", action="store_true", help="print the checks as JSON")
    check.set_defaults(handler=handlers.cmd_check)

    status = commands.add_parser(
        "status",
        help="is the warehouse fresh? (usable as a health check)",
        description="Show the last successful load and its age, the rolling re-check position, pending packages "
        "and row counts. Exits 6 when the data is older than --max-age-hours (or was never loaded), so a "
        "monitor can run it as a health check.",
    )
    _add_destination_args(status)
    status.add_argument("--max-age-hours", type=float, default=36.0, help="freshness limit (default 36)")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(handler=handlers.cmd_status)

    publish = commands.add_parser(
        "publish",
        help="write the copy analysts and BI tools read (run and transform do it after every run)",
        description="Write the published copy of the DuckDB warehouse: a DuckDB file in a storage version "
        "DuckDB 1.4 and later open ([publish] storage_version, default v1.4.0) and the same relations as Parquet "
        "files, each built beside its target and swapped in atomically. It holds the marts, the current state of "
        "every resource and the voucher history. Default places: <warehouse>_published.duckdb and "
        "<warehouse>_parquet/ beside the warehouse ([publish] duckdb_file, parquet_dir).",
    )
    _add_destination_args(publish)
    publish.add_argument("--json", action="store_true", help="print what was written as JSON")
    publish.set_defaults(handler=handlers.cmd_publish)

    profile = commands.add_parser(
        "dbt-profile",
        help="write the dbt profile for running dbt by hand on this warehouse",
        description="Write profiles.yml (mode 0600) for running dbt on transforms/ by hand, derived from the same "
        "dlt configuration the load uses (destination credentials, the DuckDB file and its memory_limit); "
        "prints where it went, never what it holds. `certiverse transform` needs none of this.",
    )
    profile.add_argument("--destination", choices=("duckdb", "postgres"), default="duckdb")
    profile.add_argument("--duckdb-file", help=DUCKDB_FILE_HELP)
    profile.add_argument("--profiles-dir", default=".certiverse/dbt", help="folder to write profiles.yml into")
    profile.set_defaults(handler=handlers.cmd_dbt_profile)

    report = commands.add_parser(
        "report",
        help="write an HTML page of charts from the marts",
        description="Read the marts (run `certiverse transform` first) and write one self-contained HTML file: "
        "headline numbers, utilization by program and by partner, vouchers used per month, the expiry calendar "
        "with value at risk, and the top idle purchases. The page fetches nothing: open it offline or mail it.",
    )
    _add_destination_args(report)
    report.add_argument("--output", default="certiverse_report.html", help="HTML file to write")
    report.add_argument("--as-of", type=_date,
                        help="YYYY-MM-DD the page must be as of: the marts must have been built for that date "
                        "(`certiverse transform --as-of`); the page only shows what the marts hold")
    report.set_defaults(handler=handlers.cmd_report)

    purchase = commands.add_parser(
        "purchase",
        help="buy $0 vouchers through the API",
        description="Purchases through the API (POST /api/vouchers/purchases). Only programs priced at $0 can be "
        "bought this way; the request is checked before it is sent.",
    )
    purchase_commands = purchase.add_subparsers(dest="purchase_command", required=True, metavar="ACTION")
    create = purchase_commands.add_parser(
        "create",
        help="create a $0 purchase for a partner",
        description="Create a $0 purchase: checks that the partner and the program exist under exactly these names, "
        "are active, that the program costs $0 and that 1 <= quantity <= 1000, then sends it. The new "
        "purchase is attributed to the system user 'Certiverse API' and its vouchers are generated by the API.",
    )
    create.add_argument("--partner", required=True, help="partner name, exactly")
    create.add_argument("--program", required=True, help="program name, exactly")
    create.add_argument("--quantity", required=True, type=int, help="vouchers to create (1-1000)")
    create.add_argument("--notes", required=True, help="what the purchase is for")
    create.add_argument("--base-url", help="API root (overrides SOURCES__CERTIVERSE__BASE_URL)")
    create.add_argument("--json", action="store_true", help="print the created purchase as JSON")
    create.set_defaults(handler=handlers.cmd_purchase_create)
    return parser


def _paragraphs(*texts: str) -> str:
    return "\n\n".join(textwrap.fill(text, width=79) for text in texts)


def _add_destination_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--destination", choices=("duckdb", "postgres"), default="duckdb")
    parser.add_argument("--duckdb-file", help=DUCKDB_FILE_HELP)
    parser.add_argument("--pipelines-dir", help="where dlt keeps local state, a folder per warehouse "
                        "(default: dlt's, ~/.dlt/pipelines)")
    parser.add_argument(
        "--lock-timeout", type=float, metavar="SECONDS",
        help="how long to wait for a DuckDB file another process holds before giving up with exit code 5 "
        "(default: [destination.duckdb] lock_timeout, else 180)",
    )


def _add_load_args(parser: argparse.ArgumentParser) -> None:
    """What `load` and `run` take about the API and the read."""
    parser.add_argument("--base-url", help="API root (overrides SOURCES__CERTIVERSE__BASE_URL)")
    parser.add_argument("--workers", type=int, help=WORKERS_HELP)
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="re-read every voucher instead of what can have changed since the last run",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _add_as_of_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as-of", type=_date, help="YYYY-MM-DD that expiry is judged against (default: the API's date "
                        "at the last load, from its Date header, in the reporting time zone; today there if none said)")


def _add_select_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--select", help="dbt node selection, e.g. 'voucher_expiry+' (default: every model)")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None
