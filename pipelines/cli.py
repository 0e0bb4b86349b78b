"""The ``certiverse`` command: load, transform, run (load + transform), status, report, purchase, demo, simulate."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from sources.certiverse import ApiUnavailableError, AuthError, CertiverseError, ConfigurationError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_AUTH = 3
EXIT_API = 4
EXIT_DESTINATION = 5
EXIT_STALE = 6

log = logging.getLogger("certiverse")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO if args.progress else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO; its URLs carry no token, but they drown the progress lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if getattr(args, "lock_timeout", None) is not None:
        import dlt

        dlt.config["destination.duckdb.lock_timeout"] = args.lock_timeout
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the one place that turns failures into exit codes
        code, message = classify(exc)
        print(f"error: {message}", file=sys.stderr)
        if args.verbose:
            raise
        return code


def classify(exc: BaseException) -> tuple[int, str]:
    """Exit code and one-line message for a failure, looking through dlt's wrappers for the cause."""
    from dlt.common.configuration.exceptions import ConfigFieldMissingException

    from .locks import WarehouseLockedError, lock_holder
    from .publishing import PublishError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AuthError):
            return EXIT_AUTH, str(seen)
        if isinstance(seen, ConfigurationError):
            return EXIT_CONFIG, str(seen)
        if isinstance(seen, ConfigFieldMissingException):
            return _missing_config(seen)
        if isinstance(seen, (WarehouseLockedError, PublishError)):
            return EXIT_DESTINATION, str(seen)
        if isinstance(seen, (ApiUnavailableError, CertiverseError)):
            return EXIT_API, str(seen)
        seen = seen.__cause__ or seen.__context__ or getattr(seen, "exception", None)
    from dlt.pipeline.exceptions import PipelineStepFailed

    holder = lock_holder(exc)
    if holder:
        return EXIT_DESTINATION, (f"the DuckDB file is locked by {holder}: close that connection and run again; "
                                  "readers should open the published copy instead (see `certiverse status`)")
    if isinstance(exc, PipelineStepFailed) and exc.step in ("load", "sync", "normalize"):
        return EXIT_DESTINATION, f"{exc.step} step failed: {exc.exception}"
    return EXIT_FAILURE, f"{type(exc).__name__}: {exc}"


# dlt's message lists every place it looked, over twenty lines: one line first, the rest with -v.
_MISSING = {
    "base_url": (EXIT_CONFIG, "no base URL: set [sources.certiverse] base_url in .dlt/config.toml, "
                              "SOURCES__CERTIVERSE__BASE_URL, or --base-url"),
    "api_token": (EXIT_AUTH, "no API token: set SOURCES__CERTIVERSE__API_TOKEN or [sources.certiverse] api_token "
                             "in .dlt/secrets.toml"),
    "credentials": (EXIT_CONFIG, "no destination credentials: for Postgres set DESTINATION__POSTGRES__CREDENTIALS "
                                 "(postgresql://user:password@host:5432/db) or [destination.postgres] credentials "
                                 "in .dlt/secrets.toml"),
}


def _missing_config(exc: Any) -> tuple[int, str]:
    for field in exc.fields:
        if field in _MISSING:
            code, message = _MISSING[field]
            return code, message + " (-v shows where dlt looked)"
    return EXIT_CONFIG, (f"missing configuration {', '.join(exc.fields)} of {exc.spec_name} "
                         "(-v shows where dlt looked)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certiverse",
        description="Load Certiverse voucher data (partners, programs, purchases, vouchers) into "
        "DuckDB or Postgres with dlt. Configuration comes from .dlt/config.toml, .dlt/secrets.toml "
        "and environment variables such as SOURCES__CERTIVERSE__BASE_URL and SOURCES__CERTIVERSE__API_TOKEN.",
        epilog="Exit codes: 0 ok, 1 other failure, 2 usage or configuration, 3 token missing or refused, "
        "4 API failure, 5 destination failure (e.g. the DuckDB file is locked), 6 data stale (status).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
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
    load.add_argument("--base-url", help="API root (overrides SOURCES__CERTIVERSE__BASE_URL)")
    load.add_argument("--workers", type=int, help="queries fetched at once (default: [sources.certiverse] workers, else 16)")
    _add_refresh_arg(load)
    load.add_argument("--json", action="store_true", help="print the summary as JSON")
    load.set_defaults(handler=cmd_load)

    transform = commands.add_parser(
        "transform",
        help="build the utilization and expiry tables from what is loaded",
        description="Build the dbt project in transforms/ (staging, then marts such as "
        "voucher_utilization and voucher_expiry, then their tests) on the destination, in the loaded dataset "
        "(staging and intermediate as views, marts as tables), print headline numbers, and (DuckDB) publish the "
        "copy readers open (see `certiverse publish`). "
        "See docs/marts.md.",
    )
    _add_destination_args(transform)
    _add_as_of_arg(transform)
    _add_select_arg(transform)
    transform.set_defaults(handler=cmd_transform)

    run = commands.add_parser(
        "run",
        help="load, then transform",
        description="`certiverse load` followed by `certiverse transform`: extract and load from the API, check "
        "every purchase against the API's counters (re-reading those that disagree), rebuild the utilization and "
        "expiry tables, and (DuckDB) publish the copy analysts and BI tools open (see `certiverse publish`).",
    )
    _add_destination_args(run)
    run.add_argument("--base-url", help="API root (overrides SOURCES__CERTIVERSE__BASE_URL)")
    run.add_argument("--workers", type=int, help="queries fetched at once (default: [sources.certiverse] workers, else 16)")
    _add_refresh_arg(run)
    _add_as_of_arg(run)
    _add_select_arg(run)
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.set_defaults(handler=cmd_run)

    demo = commands.add_parser(
        "demo",
        help="simulated tenant → DuckDB file in this folder → summary",
        description="Start the bundled Certiverse simulator on loopback, load its tenant into a DuckDB file in "
        "the current folder and print a summary. Needs no account and no network.",
    )
    demo.add_argument("--size", choices=("small", "default", "large"), default="default", help="tenant size")
    demo.add_argument("--seed", type=int, default=42, help="tenant seed (same seed, same data)")
    demo.add_argument("--duckdb-file", default="certiverse_demo.duckdb", help="DuckDB file to write")
    demo.add_argument("--pipelines-dir", help="where dlt keeps pipeline state (default: .certiverse/ here)")
    demo.set_defaults(handler=cmd_demo)

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
    sim.set_defaults(handler=cmd_simulate)
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
    status.set_defaults(handler=cmd_status)

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
    publish.set_defaults(handler=cmd_publish)

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
                        help="YYYY-MM-DD that windows count from (default: the date the marts were built for)")
    report.set_defaults(handler=cmd_report)

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
    create.set_defaults(handler=cmd_purchase_create)
    return parser


def _add_destination_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--destination", choices=("duckdb", "postgres"), default="duckdb")
    parser.add_argument("--duckdb-file", help="DuckDB file (default: DESTINATION__DUCKDB__CREDENTIALS, else warehouse.duckdb)")
    parser.add_argument("--pipelines-dir", help="where dlt keeps pipeline state (default: dlt's)")
    parser.add_argument(
        "--lock-timeout", type=float, metavar="SECONDS",
        help="how long to wait for a DuckDB file another process holds before giving up with exit code 5 "
        "(default: [destination.duckdb] lock_timeout, else 180)",
    )


def _add_refresh_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="re-read every voucher instead of what can have changed since the last run",
    )


def _add_as_of_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as-of", type=_date, help="YYYY-MM-DD that expiry is judged against (default: today, UTC)")


def _add_select_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--select", help="dbt node selection, e.g. 'voucher_expiry+' (default: every model)")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def _credentials(args: argparse.Namespace) -> Any:
    if args.destination == "duckdb":
        return args.duckdb_file
    return None


def _load(args: argparse.Namespace, pipeline: Any, **kwargs: Any) -> Any:
    """run_load with a progress line on stderr (always with --progress, else when stderr is a terminal)."""
    from sources.certiverse import RequestStats

    from .load import run_load
    from .progress import Progress

    stats = RequestStats()
    if args.progress or sys.stderr.isatty():
        with Progress(stats) as progress:
            return run_load(pipeline, stats=stats, on_wait=progress.note, **kwargs)
    return run_load(pipeline, stats=stats, on_wait=_say, **kwargs)


def _say(message: str) -> None:
    """What the command waits for, on stderr whatever the log level (a scheduler's log shows it)."""
    print(f"certiverse: {message}", file=sys.stderr, flush=True)


def _on_warehouse(pipeline: Any, action: Any, *, read_only: bool = False) -> Any:
    """Run ``action`` on the pipeline's warehouse, waiting for a DuckDB file another process holds."""
    from .locks import retry_when_locked
    from .publishing import Targets, working_file

    path = working_file(pipeline)
    published = str(Targets.for_warehouse(path).duckdb_file or "") or None if path else None
    return retry_when_locked(action, path, read_only=read_only, published=published, on_wait=_say)


def _transform(args: argparse.Namespace, pipeline: Any, as_of: dt.date | None) -> tuple[dict[str, float], list[str]]:
    """Build the marts, read their headlines, and publish the copy readers open; (timings, headlines)."""
    from .publishing import publish
    from .transform import headlines, run_transforms

    timings = _on_warehouse(pipeline, lambda: run_transforms(pipeline, as_of, select=getattr(args, "select", None)))
    lines = _on_warehouse(pipeline, lambda: headlines(pipeline, as_of))
    publication = _on_warehouse(pipeline, lambda: publish(pipeline))
    args.publication = publication
    if publication is not None:
        lines.append(
            f"Published for readers: {publication.duckdb_file or '-'} and {publication.parquet_dir or '-'} "
            f"({len(publication.relations)} relations, {publication.bytes / 1e6:,.1f} MB, {publication.seconds:.1f}s)"
        )
    return timings, lines


def _report(
    args: argparse.Namespace, result: Any, headlines: list[str] | None = None, timings: dict[str, float] | None = None
) -> None:
    from .summary import as_json, format_summary

    if getattr(args, "json", False):
        publication = getattr(args, "publication", None)
        print(json.dumps({**as_json(result, headlines), "transform_seconds": timings or {},
                          "published": publication.as_dict() if publication else None}, indent=2))
    else:
        print(format_summary(result, headlines))


def cmd_load(args: argparse.Namespace) -> int:
    from .load import make_pipeline

    pipeline = make_pipeline(args.destination, _credentials(args), pipelines_dir=args.pipelines_dir)
    options = {"workers": args.workers} if args.workers else {}
    result = _load(args, pipeline, base_url=args.base_url, full_refresh=args.full_refresh, source_options=options)
    _report(args, result)
    return EXIT_OK


def cmd_transform(args: argparse.Namespace) -> int:
    from .load import make_pipeline
    from .transform import format_timings

    pipeline = make_pipeline(args.destination, _credentials(args), pipelines_dir=args.pipelines_dir)
    timings, lines = _transform(args, pipeline, args.as_of)
    print(format_timings(timings))
    print("\n".join(lines))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from .load import make_pipeline

    pipeline = make_pipeline(args.destination, _credentials(args), pipelines_dir=args.pipelines_dir)
    options = {"workers": args.workers} if args.workers else {}
    result = _load(args, pipeline, base_url=args.base_url, full_refresh=args.full_refresh, source_options=options)
    timings, lines = _transform(args, pipeline, args.as_of)
    _report(args, result, lines, timings=timings)
    return EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    from .load import make_pipeline
    from .publishing import publish

    pipeline = make_pipeline(args.destination, _credentials(args), pipelines_dir=args.pipelines_dir)
    publication = _on_warehouse(pipeline, lambda: publish(pipeline))
    if publication is None:
        print("Nothing to publish: the destination is not DuckDB, or [publish] enabled is false.")
    elif args.json:
        print(json.dumps(publication.as_dict(), indent=2))
    else:
        print(f"Published {len(publication.relations)} relations ({publication.bytes / 1e6:,.1f} MB, "
              f"{publication.seconds:.1f}s):\n  {publication.duckdb_file or '-'}\n  {publication.parquet_dir or '-'}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from simulator import SimulatorApp, Tenant, serve

    from .load import make_pipeline

    print(f"Generating the '{args.size}' simulated tenant (seed {args.seed})...")
    tenant = Tenant.generate(args.size, seed=args.seed)
    app = SimulatorApp(tenant)
    duckdb_file = Path(args.duckdb_file).resolve()
    pipelines_dir = args.pipelines_dir or str(Path(".certiverse").resolve())
    pipeline = make_pipeline("duckdb", str(duckdb_file), pipelines_dir=pipelines_dir, pipeline_name="certiverse_demo")
    # A demo starts from scratch: same seed, same warehouse.
    pipeline.drop()
    duckdb_file.unlink(missing_ok=True)
    pipeline = make_pipeline("duckdb", str(duckdb_file), pipelines_dir=pipelines_dir, pipeline_name="certiverse_demo")
    with serve(app) as base_url:
        print(f"Simulator serving on {base_url}; loading into {duckdb_file} ...")
        result = _load(args, pipeline, base_url=base_url, api_token=app.token,
                       source_options={"as_of": tenant.now()})
    # The simulated tenant lives on its own clock: judge expiry on its today, not the wall clock's.
    _, lines = _transform(args, pipeline, tenant.today)
    _report(args, result, lines)
    published = args.publication.duckdb_file if args.publication else duckdb_file
    print(f"Marts built: voucher_utilization, voucher_expiry, partner/program utilization, expiry_calendar "
          f"(see docs/marts.md). Query the published copy (read-only, never in the loader's way):\n"
          f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{Path(published).name}', read_only=True)"
          f".sql('select * from program_utilization'))\"")
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulator import SimulatorApp, Tenant, run_forever

    tenant = Tenant.generate(args.size, seed=args.seed)
    app = SimulatorApp(
        tenant,
        token=args.token,
        page_size=args.page_size,
        cap=args.cap,
        cap_mode=args.cap_mode,
        latency_ms=args.latency_ms,
        fault_rate_500=args.fault_500,
        fault_rate_429=args.fault_429,
        fault_rate_truncate=args.fault_truncate,
    )
    print(f"Serving the '{args.size}' tenant on http://{args.host}:{args.port} (token: {args.token}); Ctrl-C stops.")
    print(f"  export SOURCES__CERTIVERSE__BASE_URL=http://{args.host}:{args.port}")
    print(f"  export SOURCES__CERTIVERSE__API_TOKEN={args.token}")
    sys.stdout.flush()
    run_forever(app, args.host, args.port)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from .load import make_pipeline
    from .status import format_status, pipeline_status

    pipeline = make_pipeline(args.destination, _credentials(args), pipelines_dir=args.pipelines_dir, read_only=True)
    status = _on_warehouse(pipeline, lambda: pipeline_status(pipeline, args.max_age_hours), read_only=True)
    print(json.dumps(status, indent=2, default=str) if args.json else format_status(status))
    return EXIT_STALE if status["stale"] else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from .load import make_pipeline
    from .report import write_report

    pipeline = make_pipeline(args.destination, _credentials(args), pipelines_dir=args.pipelines_dir, read_only=True)
    path = _on_warehouse(pipeline, lambda: write_report(pipeline, args.output, args.as_of), read_only=True)
    print(f"Wrote {path}")
    return EXIT_OK


def cmd_purchase_create(args: argparse.Namespace) -> int:
    import dlt

    from sources.certiverse import CertiverseClient

    from .purchase import PurchaseRefused, create_purchase

    base_url = args.base_url or dlt.config.get("sources.certiverse.base_url")
    token = dlt.secrets.get("sources.certiverse.api_token")
    with CertiverseClient(base_url, token) as client:
        try:
            created = create_purchase(client, args.partner, args.program, args.quantity, args.notes)
        except PurchaseRefused as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_API
    if args.json:
        print(json.dumps(created, indent=2))
    else:
        print(f"Created purchase {created.get('voucherPurchaseCode')}: {created.get('quantity')} vouchers of "
              f"{created.get('programName')} for {created.get('partnerName')} (status {created.get('status')}).")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
