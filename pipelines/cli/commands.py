"""What each ``certiverse`` command does; ``pipelines.cli.parser`` maps the command line onto these.

Imports sit in the handlers: ``certiverse --help`` answers without loading dlt or dbt.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .codes import EXIT_OK, EXIT_STALE
from .failures import classify

if TYPE_CHECKING:
    from ..context import RunContext
    from ..phases import Phases
    from ..publishing import Publication
    from ..reporting.headlines import Headlines
    from ..reporting.summary import CommandSummary
    from ..transform import TransformResult


def _context(args: argparse.Namespace, *, read_only: bool = False, progress: Any = None) -> RunContext:
    """The command's run context: the warehouse the options name, the rest from dlt's configuration."""
    from ..context import RunContext

    return RunContext.from_config(
        args.destination,
        args.duckdb_file if args.destination == "duckdb" else None,
        pipelines_dir=args.pipelines_dir,
        lock_timeout=args.lock_timeout,
        on_wait=progress.note if progress is not None else _say,
        read_only=read_only,
        progress=progress,
    )


def _progress(args: argparse.Namespace) -> Any:
    """The progress line for a load: always with --progress, else when stderr is a terminal."""
    if not (args.progress or sys.stderr.isatty()):
        return None
    from ..reporting.progress import Progress

    return Progress()


def _say(message: str) -> None:
    """What the command waits for, on stderr whatever the log level (a scheduler's log shows it)."""
    print(f"certiverse: {message}", file=sys.stderr, flush=True)


def _source_config(args: argparse.Namespace) -> dict[str, Any]:
    """The source's configuration the command line gives; the rest comes from dlt's."""
    given = {"base_url": args.base_url, "workers": args.workers}
    return {name: value for name, value in given.items() if value}


def _start(args: argparse.Namespace, started: float, progress: Any = None) -> tuple[RunContext, Phases]:
    """The run context and the command's phases, its start-up timed from ``started``."""
    from ..phases import Phases

    phases = Phases()
    context = _context(args, progress=progress)
    context.pipeline  # noqa: B018  # dlt's pipeline is made (and dlt imported) here, inside start-up
    phases.add("startup", time.perf_counter() - started)
    return context, phases


def _build_and_publish(context: RunContext, phases: Phases, as_of: dt.date | None,
                       select: str | None = None) -> tuple[TransformResult, Headlines, Publication | None]:
    """Build the marts, read their headline figures, and publish the copy readers open:
    (the build's result, the headline figures, the publication or None)."""
    from ..publishing import publish
    from ..reporting.headlines import headlines
    from ..transform import run_transforms

    transform = context.on_warehouse(run_transforms, context, as_of, select=select)
    phases.update(transform.phases)
    with phases.time("headlines"):
        figures = context.on_warehouse(headlines, context)
    with phases.time("publish"):
        publication = context.on_warehouse(publish, context)
    return transform, figures, publication


def _tell_findings(context: RunContext, command: str, load: Any, exit_code: int) -> None:
    """Send what the load found that an operator should know (repaired purchases, new columns, a forced
    full read) to the webhook, if anything; sent after the summary, outside the command's phases."""
    from ..notifications import findings_notice, load_findings

    figures = {"seconds": round(load.seconds, 3), "mode": load.mode, "read": load.extracted,
               "written": load.written, "rows": load.rows}
    context.notifications.send(findings_notice(command, exit_code, load_findings(load), context.warehouse.name,
                                               figures))


def _print_summary(summary: CommandSummary, *, json_output: bool = False, model_seconds: bool = False) -> None:
    from ..reporting.summary import as_json, format_summary

    if json_output:
        print(json.dumps(as_json(summary), indent=2, default=str))
    else:
        print(format_summary(summary, model_seconds=model_seconds))


def cmd_load(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from ..load import run_load
    from ..reporting.summary import CommandSummary

    context, phases = _start(args, started, _progress(args))
    load = run_load(context, _source_config(args), full_refresh=args.full_refresh)
    phases.update(load.phases)
    _print_summary(CommandSummary("load", time.perf_counter() - started, phases.as_dict(), load=load),
                   json_output=args.json)
    _tell_findings(context, "load", load, EXIT_OK)
    return EXIT_OK


def cmd_transform(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from ..reporting.summary import CommandSummary

    context, phases = _start(args, started)
    transform, figures, publication = _build_and_publish(context, phases, args.as_of, args.select)
    _print_summary(CommandSummary("transform", time.perf_counter() - started, phases.as_dict(),
                                  transform=transform, headlines=figures, publication=publication),
                   json_output=args.json, model_seconds=True)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from ..load import run_load
    from ..reporting.summary import CommandSummary

    context, phases = _start(args, started, _progress(args))
    load = run_load(context, _source_config(args), full_refresh=args.full_refresh)
    phases.update(load.phases)
    try:
        transform, figures, publication = _build_and_publish(context, phases, args.as_of, args.select)
    except Exception as exc:  # what the load found is still worth telling, with the code the run ends with
        _tell_findings(context, "run", load, classify(exc)[0])
        raise
    _print_summary(CommandSummary("run", time.perf_counter() - started, phases.as_dict(), load=load,
                                  transform=transform, headlines=figures, publication=publication),
                   json_output=args.json)
    _tell_findings(context, "run", load, EXIT_OK)
    return EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    from ..publishing import publish

    context = _context(args)
    publication = context.on_warehouse(publish, context)
    if publication is None:
        print("Nothing to publish: the destination is not DuckDB, or [publish] enabled is false.")
    elif args.json:
        print(json.dumps(publication.as_dict(), indent=2))
    else:
        print(f"Published {len(publication.relations)} relations ({publication.bytes / 1e6:,.1f} MB, "
              f"{publication.seconds:.1f}s):\n  {publication.duckdb_file or '-'}\n  {publication.parquet_dir or '-'}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from ...simulator import SimulatorApp, Tenant, serve

    from ..context import RunContext
    from ..load import run_load
    from ..phases import Phases
    from ..reporting.summary import CommandSummary

    print(f"Generating the '{args.size}' simulated tenant (seed {args.seed})...")
    tenant = Tenant.generate(args.size, seed=args.seed)
    app = SimulatorApp(tenant)
    progress = _progress(args)
    context = RunContext.from_config("duckdb", args.duckdb_file,
                                     pipelines_dir=args.pipelines_dir or Path(".certiverse").resolve(),
                                     on_wait=progress.note if progress is not None else _say, progress=progress)
    # A demo starts from scratch: same seed, same warehouse.
    context.pipeline.drop()
    context.warehouse.duckdb_file.unlink(missing_ok=True)
    phases = Phases()
    phases.add("startup", time.perf_counter() - started)
    with serve(app) as base_url:
        print(f"Simulator serving on {base_url}; loading into {context.warehouse.name} ...")
        load = run_load(context, {"base_url": base_url, "api_token": app.token}, as_of=tenant.now())
    phases.update(load.phases)
    # The simulated tenant lives on its own clock: judge expiry on its today, not the wall clock's.
    transform, figures, publication = _build_and_publish(context, phases, tenant.today)
    _print_summary(CommandSummary("demo", time.perf_counter() - started, phases.as_dict(), load=load,
                                  transform=transform, headlines=figures, publication=publication))
    published = publication.duckdb_file if publication else context.warehouse.duckdb_file
    print(f"Marts built: headline_figures, voucher_utilization, idle_purchases, voucher_expiry, partner/program "
          f"utilization, expiry_calendar, expiry_by_month, redemptions_by_month (see docs/marts.md).\n"
          f"Query the published copy (read-only, never in the loader's way):\n"
          f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{Path(published).name}', read_only=True)"
          f".sql('select * from program_utilization'))\"")
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from ...simulator import Outage, RateLimit, SimulatorApp, Tenant, run_forever

    tenant = Tenant.generate(args.size, seed=args.seed)
    rate_limit = RateLimit(args.rate_limit, retry_after=args.retry_after) if args.rate_limit else None
    outage = None
    if args.outage_seconds:
        outage = Outage(args.outage_seconds, at_seconds=args.outage_at, after_requests=args.outage_after_requests,
                        answer=args.outage_answer)
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
        rate_limit=rate_limit,
        outage=outage,
    )
    print(f"Serving the '{args.size}' tenant on http://{args.host}:{args.port} (token: {args.token}); Ctrl-C stops.")
    print(f"  export SOURCES__CERTIVERSE__BASE_URL=http://{args.host}:{args.port}")
    print(f"  export SOURCES__CERTIVERSE__API_TOKEN={args.token}")
    sys.stdout.flush()
    run_forever(app, args.host, args.port)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from ..reporting.status import format_status, pipeline_status

    from ..notifications import stale_notice

    context = _context(args, read_only=True)
    status = context.on_warehouse(pipeline_status, context, args.max_age_hours)
    print(json.dumps(status, indent=2, default=str) if args.json else format_status(status))
    if not status["stale"]:
        return EXIT_OK
    context.notifications.send(stale_notice("status", EXIT_STALE, status, context.warehouse.name))
    return EXIT_STALE


def cmd_report(args: argparse.Namespace) -> int:
    from ..reporting.report import write_report

    context = _context(args, read_only=True)
    path = context.on_warehouse(write_report, context, args.output, args.as_of)
    print(f"Wrote {path}")
    return EXIT_OK


def cmd_purchase_create(args: argparse.Namespace) -> int:
    import dlt

    from ...sources.certiverse import CertiverseClient

    from ..purchase import create_purchase

    base_url = args.base_url or dlt.config.get("sources.certiverse.base_url")
    token = dlt.secrets.get("sources.certiverse.api_token")
    with CertiverseClient(base_url, token) as client:
        # a refused purchase (PurchaseRefused) is the caller's request, not the API failing: exit 2 (failures.py)
        created = create_purchase(client, args.partner, args.program, args.quantity, args.notes)
    if args.json:
        print(json.dumps(created, indent=2))
    else:
        print(f"Created purchase {created.get('voucherPurchaseCode')}: {created.get('quantity')} vouchers of "
              f"{created.get('programName')} for {created.get('partnerName')} (status {created.get('status')}).")
    return EXIT_OK


def cmd_dbt_profile(args: argparse.Namespace) -> int:
    from ..context import Warehouse
    from ..transform.profile import write_profile

    # The profile needs the warehouse's configuration, not a pipeline's state: no pipelines folder is touched.
    warehouse = Warehouse.from_config(args.destination, args.duckdb_file if args.destination == "duckdb" else None)
    print(write_profile(warehouse, args.profiles_dir))
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from ..check import FAILED, exit_code, run_checks
    from ..notifications import Webhook, configured_secrets, failure_notice, redact

    results = run_checks(lambda: _context(args), args.base_url, classify)
    code = exit_code(results)
    secrets = configured_secrets()
    if args.json:
        print(json.dumps(redact({"ok": code == EXIT_OK, "exit_code": code,
                                 "checks": [r.as_dict() for r in results]}, secrets), indent=2, default=str))
    else:
        for result in results:
            code_note = f" (exit {result.exit_code})" if result.exit_code else ""
            head = f"{result.status.upper():<8}{result.name}{code_note}"
            print(redact(f"{head}: {result.detail}", secrets))
            for warning in result.warnings:
                print(f"WARNING {result.name}: {warning}")
        print("All checks passed; nothing was loaded." if code == EXIT_OK else
              f"A check failed: exit {code}; nothing was loaded.")
    failed = next((r for r in results if r.status == FAILED), None)
    if failed is not None:
        from . import warehouse_name

        message = redact(f"{failed.name} check failed: {failed.detail}", secrets)
        Webhook.from_configuration(secrets).send(failure_notice("check", code, message, warehouse_name(args)))
    return code
