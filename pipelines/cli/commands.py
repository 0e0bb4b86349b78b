"""What each ``certiverse`` command does; ``pipelines.cli.parser`` maps the command line onto these.

Imports sit in the handlers: ``certiverse --help`` answers without loading dlt or dbt.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .codes import EXIT_API, EXIT_OK, EXIT_STALE

if TYPE_CHECKING:  # imported in the handlers: `certiverse --help` loads neither dlt nor dbt
    from ..reporting.headlines import Headlines


def _credentials(args: argparse.Namespace) -> Any:
    if args.destination == "duckdb":
        return args.duckdb_file
    return None


def _load(args: argparse.Namespace, pipeline: Any, **kwargs: Any) -> Any:
    """run_load with a progress line on stderr (always with --progress, else when stderr is a terminal)."""
    from ...sources.certiverse import RequestStats

    from ..load import run_load
    from ..reporting.progress import Progress

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
    from ..load import duckdb_file
    from ..locks import retry_when_locked
    from ..publishing import published_hint

    path = duckdb_file(pipeline)
    return retry_when_locked(action, path, read_only=read_only, published=published_hint(path), on_wait=_say)


def _transform(
    args: argparse.Namespace, pipeline: Any, as_of: dt.date | None
) -> tuple[dict[str, float], list[str], Headlines]:
    """Build the marts, read their headline figures, and publish the copy readers open;
    (timings, lines to print, the figures)."""
    from ..publishing import publish
    from ..reporting.headlines import headlines
    from ..transform import reporting_timezone, run_transforms

    timezone = reporting_timezone()  # checked before the warehouse is touched
    timings = _on_warehouse(pipeline, lambda: run_transforms(pipeline, as_of, select=getattr(args, "select", None),
                                                             timezone=timezone))
    figures = _on_warehouse(pipeline, lambda: headlines(pipeline))
    lines = figures.sentences()
    publication = _on_warehouse(pipeline, lambda: publish(pipeline))
    args.publication = publication
    if publication is not None:
        lines.append(
            f"Published for readers: {publication.duckdb_file or '-'} and {publication.parquet_dir or '-'} "
            f"({len(publication.relations)} relations, {publication.bytes / 1e6:,.1f} MB, {publication.seconds:.1f}s)"
        )
    return timings, lines, figures


def _report(
    args: argparse.Namespace, result: Any, headlines: list[str] | None = None, timings: dict[str, float] | None = None,
    figures: Headlines | None = None,
) -> None:
    from ..reporting.summary import as_json, format_summary

    if getattr(args, "json", False):
        publication = getattr(args, "publication", None)
        print(json.dumps({**as_json(result, headlines), "figures": figures.as_dict() if figures else None,
                          "transform_seconds": timings or {},
                          "published": publication.as_dict() if publication else None}, indent=2))
    else:
        print(format_summary(result, headlines))


def cmd_load(args: argparse.Namespace) -> int:
    from ..load import make_pipeline

    pipeline = make_pipeline(args.destination, _credentials(args), pipelines_dir=args.pipelines_dir)
    options = {"workers": args.workers} if args.workers else {}
    result = _load(args, pipeline, base_url=args.base_url, full_refresh=args.full_refresh, source_options=options)
    _report(args, result)
    return EXIT_OK


def cmd_transform(args: argparse.Namespace) -> int:
    from ..load import make_pipeline
    from ..reporting.summary import format_timings

    pipeline = make_pipeline(args.destination, _credentials(args), pipelines_dir=args.pipelines_dir)
    timings, lines, _ = _transform(args, pipeline, args.as_of)
    print(format_timings(timings))
    print("\n".join(lines))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from ..load import make_pipeline

    pipeline = make_pipeline(args.destination, _credentials(args), pipelines_dir=args.pipelines_dir)
    options = {"workers": args.workers} if args.workers else {}
    result = _load(args, pipeline, base_url=args.base_url, full_refresh=args.full_refresh, source_options=options)
    timings, lines, figures = _transform(args, pipeline, args.as_of)
    _report(args, result, lines, timings=timings, figures=figures)
    return EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    from ..load import make_pipeline
    from ..publishing import publish

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
    from ...simulator import SimulatorApp, Tenant, serve

    from ..load import make_pipeline

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
    _, lines, _ = _transform(args, pipeline, tenant.today)
    _report(args, result, lines)
    published = args.publication.duckdb_file if args.publication else duckdb_file
    print(f"Marts built: headline_figures, voucher_utilization, idle_purchases, voucher_expiry, partner/program "
          f"utilization, expiry_calendar, expiry_by_month, redemptions_by_month (see docs/marts.md).\n"
          f"Query the published copy (read-only, never in the loader's way):\n"
          f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{Path(published).name}', read_only=True)"
          f".sql('select * from program_utilization'))\"")
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from ...simulator import SimulatorApp, Tenant, run_forever

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
    from ..load import make_pipeline
    from ..reporting.status import format_status, pipeline_status

    pipeline = make_pipeline(args.destination, _credentials(args), pipelines_dir=args.pipelines_dir, read_only=True)
    status = _on_warehouse(pipeline, lambda: pipeline_status(pipeline, args.max_age_hours), read_only=True)
    print(json.dumps(status, indent=2, default=str) if args.json else format_status(status))
    return EXIT_STALE if status["stale"] else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from ..load import make_pipeline
    from ..reporting.report import write_report

    pipeline = make_pipeline(args.destination, _credentials(args), pipelines_dir=args.pipelines_dir, read_only=True)
    path = _on_warehouse(pipeline, lambda: write_report(pipeline, args.output, args.as_of), read_only=True)
    print(f"Wrote {path}")
    return EXIT_OK


def cmd_purchase_create(args: argparse.Namespace) -> int:
    import dlt

    from ...sources.certiverse import CertiverseClient

    from ..purchase import PurchaseRefused, create_purchase

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


def cmd_dbt_profile(args: argparse.Namespace) -> int:
    import tempfile

    from ..load import make_pipeline
    from ..transform.profile import write_profile

    # The profile needs the destination's configuration, not a pipeline's state: a throwaway
    # pipelines folder keeps dlt from reading (and warning about) the state of another run.
    with tempfile.TemporaryDirectory(prefix="certiverse-dbt-profile-state-") as state:
        pipeline = make_pipeline(args.destination, _credentials(args), pipelines_dir=state)
        print(write_profile(pipeline, args.profiles_dir))
    return EXIT_OK
