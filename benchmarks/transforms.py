"""The transform step on the large tenant: the home-made runner (before) against dbt (after), same run.

    python -m benchmarks.transforms                      # large tenant, DuckDB and Postgres, 3 runs each
    python -m benchmarks.transforms --size default --runs 1 --engines duckdb

Loads the tenant once (DuckDB file cached in ``benchmarks/results/transforms/``;
Postgres into a throwaway server, or ``--postgres-dsn``), then for each run and
engine builds the marts with the old runner (``benchmarks.baseline_transforms``,
taken from git) and with ``run_transforms`` (dbt), interleaved, each in a fresh
process on a warehouse without marts (a fresh copy of the DuckDB file; on
Postgres the models are dropped first). It prints, per variant, the seconds of
the ``run_transforms`` call (dbt's import and start-up included), the CPU
seconds of that call in the measuring process (steadier than wall time while
others share the cores; a Postgres server's own CPU is not in it), and the
whole process (Python and dlt imports too), with the machine's load average,
and asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKDIR = ROOT / "benchmarks" / "results" / "transforms"
VARIANTS = ("old runner", "dbt")


def child(variant: str, destination: str, credentials: str, pipelines_dir: str, as_of: str) -> dict[str, Any]:
    """In the measured process: build the marts once, return the seconds of the call."""
    from certiverse_warehouse.pipelines.context import RunContext

    context = RunContext.from_config(destination, credentials, pipelines_dir=pipelines_dir)
    day = dt.date.fromisoformat(as_of)
    if variant == "dbt":
        from certiverse_warehouse.pipelines.transform import run_transforms

        def build() -> dict[str, float]:
            return run_transforms(context, day).model_seconds
    else:
        from benchmarks.baseline_transforms import BaselineRunner

        runner = BaselineRunner()  # git archive before the clock starts: not part of the old step

        def build() -> dict[str, float]:
            return runner.run(context.pipeline, day)
    cpu, started = _cpu_s(), time.perf_counter()
    timings = build()
    return {"call_s": time.perf_counter() - started, "call_cpu_s": _cpu_s() - cpu,
            "models_s": sum(timings.values()), "models": len(timings)}


def _cpu_s() -> float:
    """CPU seconds of this process, all threads (DuckDB's included; a Postgres server's are not)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(variant: str, destination: str, credentials: str, pipelines_dir: Path, as_of: dt.date) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.transforms", "--child", variant, destination, credentials,
         str(pipelines_dir), as_of.isoformat()],
        cwd=ROOT, env=dict(os.environ, RUNTIME__DLTHUB_TELEMETRY="false"), check=True,
        capture_output=True, text=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result.update(process_s=time.perf_counter() - started, load_before=load_before, load_after=os.getloadavg()[0])
    return result


def load_tenant(size: str, destination: str, credentials: str, pipelines_dir: Path) -> dt.date:
    from certiverse_warehouse.pipelines.context import RunContext
    from certiverse_warehouse.pipelines.load import run_load
    from certiverse_warehouse.simulator import SimulatorApp, Tenant, serve

    tenant = Tenant.generate(size)
    app = SimulatorApp(tenant)
    started = time.perf_counter()
    with serve(app) as url:
        run_load(RunContext.from_config(destination, credentials, pipelines_dir=str(pipelines_dir)),
                 {"base_url": url, "api_token": app.token}, as_of=tenant.now())
    print(f"loaded the {size} tenant ({tenant.count('vouchers'):,} vouchers) into {destination} "
          f"in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return tenant.today


def drop_models(dsn: str) -> None:
    """Postgres: no marts, as before a first transform (both runners then build from scratch)."""
    import psycopg2

    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("drop schema if exists certiverse_build cascade")
        models = {path.stem for path in (ROOT / "transforms" / "models").glob("*/*.sql")}
        cursor.execute("select table_name, table_type from information_schema.tables where table_schema = 'certiverse'")
        for name, kind in cursor.fetchall():
            if name in models:
                cursor.execute(f"drop {'view' if kind == 'VIEW' else 'table'} if exists certiverse.{name} cascade")


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    WORKDIR.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    raw = WORKDIR / f"{args.size}-raw.duckdb"
    as_of_file = raw.with_suffix(".as_of")
    if "duckdb" in args.engines and not raw.exists():
        as_of_file.write_text(load_tenant(args.size, "duckdb", str(raw), WORKDIR / f"load-pd-{args.size}").isoformat())
    server = None
    dsn = args.postgres_dsn
    if "postgres" in args.engines:
        from tests.postgres import database_dsn, start_throwaway

        if not dsn:
            server = start_throwaway()
            dsn = database_dsn(server.dsn, "postgres")
        as_of_pg = load_tenant(args.size, "postgres", dsn, WORKDIR / f"load-pd-pg-{args.size}")
    try:
        for number in range(1, args.runs + 1):
            for engine in args.engines:
                for variant in VARIANTS:
                    pipelines_dir = WORKDIR / f"pd-{engine}-{variant.replace(' ', '-')}"
                    if engine == "duckdb":
                        target = WORKDIR / "run.duckdb"
                        shutil.copy(raw, target)
                        as_of, credentials = dt.date.fromisoformat(as_of_file.read_text()), str(target)
                    else:
                        drop_models(dsn)
                        as_of, credentials = as_of_pg, dsn
                    result = measure(variant, engine, credentials, pipelines_dir, as_of)
                    result.update(run=number, engine=engine, variant=variant)
                    rows.append(result)
                    print(f"run {number} {engine:8} {variant:10}: call {result['call_s']:.2f} s "
                          f"(CPU {result['call_cpu_s']:.2f} s), process {result['process_s']:.2f} s "
                          f"(load {result['load_before']:.1f})", file=sys.stderr)
    finally:
        if server is not None:
            server.stop()
    return rows


def summary(rows: list[dict[str, Any]]) -> str:
    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

    lines = ["| engine | variant | run_transforms s | its CPU s | process s | load average |",
             "|---|---|---|---|---|---|"]
    for engine in dict.fromkeys(r["engine"] for r in rows):
        for variant in VARIANTS:
            mine = [r for r in rows if r["engine"] == engine and r["variant"] == variant]
            loads = [r["load_before"] for r in mine] + [r["load_after"] for r in mine]
            lines.append(f"| {engine} | {variant} | {spread([r['call_s'] for r in mine])} | "
                         f"{spread([r['call_cpu_s'] for r in mine])} | {spread([r['process_s'] for r in mine])} | "
                         f"{min(loads):.1f}-{max(loads):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(json.dumps(child(*argv[1:6])))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transforms", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("small", "default", "large"), default="large")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engines", type=lambda s: s.split(","), default=["duckdb", "postgres"])
    parser.add_argument("--postgres-dsn", help="a server to use (default: a throwaway one started here)")
    args = parser.parse_args(argv)
    rows = run(args)
    print(summary(rows))
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (WORKDIR / f"results-{args.size}-{stamp}.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
