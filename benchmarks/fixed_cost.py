"""The fixed cost of a load, and dlt's generic rest_api source beside ours.

    .venv/bin/python -m benchmarks.fixed_cost
    .venv/bin/python -m benchmarks.fixed_cost --before /path/to/an/older/checkout   # its figures in the same run

Two tenants, served with 20 ms a request from their own process (``benchmarks.simserver``):
``tiny`` (the small tenant at a tenth: 20 purchases) shows what every run pays whatever the
tenant's size; ``1k`` (the default tenant at a third: ~1,000 purchases) is the small tenant of
the issue. Every measurement runs in a fresh Python process, imports included, as a scheduled
run pays them: our first load and a nightly load (same day, nothing changed), and a first load
with dlt's ``rest_api`` source configured the obvious way (purchases per program, vouchers per
purchase, ``nextLink`` followed by dlt's ``json_link`` paginator). ``--before`` measures ours
again from another checkout (the same harness, its code). Prints a table, writes
benchmarks/results/fixed-cost.json, asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.run import RESULTS, ROOT, Simulator

TENANTS = {"tiny": ("small", 0.1), "1k": ("default", 1 / 3)}

# Runs in a fresh process with PYTHONPATH at the checkout measured: one load, its figures as JSON.
OURS = r"""
import json, sys, time, datetime as dt
started = time.perf_counter()
from certiverse_warehouse.pipelines.load import run_load
try:
    from certiverse_warehouse.pipelines.context import RunContext
except ImportError:  # a checkout from before the run context
    from certiverse_warehouse.pipelines.load import make_pipeline
    RunContext = None
imported = time.perf_counter()
spec = json.loads(sys.argv[1])
as_of = dt.datetime.fromisoformat(spec["now"])
if RunContext is not None:
    context = RunContext.from_config("duckdb", spec["duckdb"], pipelines_dir=spec["pipelines"])
    result = run_load(context, {"base_url": spec["base_url"], "api_token": spec["token"]}, as_of=as_of)
    requests = result.requests.total()
else:
    pipeline = make_pipeline("duckdb", spec["duckdb"], pipelines_dir=spec["pipelines"])
    result = run_load(pipeline, base_url=spec["base_url"], api_token=spec["token"], source_options={"as_of": as_of})
    requests = result.stats.total()
done = time.perf_counter()
print(json.dumps({"process_s": done - started, "import_s": imported - started, "load_s": done - imported,
                  "requests": requests, "phases": getattr(result, "phases", {})}))
"""

REST_API = r"""
import json, sys, time
started = time.perf_counter()
import dlt
from dlt.sources.rest_api import rest_api_source
imported = time.perf_counter()
spec = json.loads(sys.argv[1])
source = rest_api_source({
    "client": {
        "base_url": spec["base_url"],
        "auth": {"type": "bearer", "token": spec["token"]},
        "paginator": {"type": "json_link", "next_url_path": "nextLink"},
    },
    "resource_defaults": {"primary_key": "id", "write_disposition": "merge", "endpoint": {"data_selector": "data"}},
    "resources": [
        {"name": "partners", "endpoint": {"path": "api/vouchers/partners"}},
        {"name": "programs", "endpoint": {"path": "api/vouchers/programs"}},
        {"name": "purchases", "endpoint": {"path": "api/vouchers/purchases",
                                           "params": {"programName": "{resources.programs.name}"}}},
        {"name": "vouchers", "endpoint": {"path": "api/vouchers",
                                          "params": {"purchaseCode": "{resources.purchases.voucherPurchaseCode}"}}},
    ],
})
pipeline = dlt.pipeline("rest_api_bench", destination=dlt.destinations.duckdb(spec["duckdb"]),
                        dataset_name="certiverse", pipelines_dir=spec["pipelines"])
info = pipeline.run(source)
done = time.perf_counter()
rows = pipeline.last_trace.last_normalize_info.row_counts
print(json.dumps({"process_s": done - started, "import_s": imported - started, "load_s": done - imported,
                  "rows": {k: v for k, v in rows.items() if not k.startswith("_dlt")}}))
"""


def measure(code: str, checkout: Path, spec: dict[str, str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout), RUNTIME__DLTHUB_TELEMETRY="false")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], cwd=checkout, env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="another checkout of this project to measure beside this one")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each of ours (the median is shown)")
    args = parser.parse_args()
    checkouts = {"now": ROOT, **({"before": args.before.resolve()} if args.before else {})}
    figures: dict[str, dict] = {}
    for label, (size, scale) in TENANTS.items():
        sim = Simulator(size, scale, args.latency_ms, 100)
        try:
            runs: dict[str, list[dict]] = {}
            for _ in range(args.repeat):
                for name, checkout in checkouts.items():  # interleaved: both see the same machine load
                    with tempfile.TemporaryDirectory() as workdir:
                        spec = {"duckdb": f"{workdir}/w.duckdb", "pipelines": f"{workdir}/p", **sim.info}
                        spec = {k: v for k, v in spec.items() if isinstance(v, str)}
                        for run in ("first", "nightly"):
                            runs.setdefault(f"{label} {name} {run}", []).append(measure(OURS, checkout, spec))
            for key, results in runs.items():
                figures[key] = sorted(results, key=lambda r: r["process_s"])[len(results) // 2]
            with tempfile.TemporaryDirectory() as workdir:
                spec = {"duckdb": f"{workdir}/w.duckdb", "pipelines": f"{workdir}/p", **sim.info}
                spec = {k: v for k, v in spec.items() if isinstance(v, str)}
                figures[f"{label} rest_api first"] = measure(REST_API, ROOT, spec)
            figures[f"{label} tenant"] = sim.info["counts"]
        finally:
            sim.close()
    print(f"{args.latency_ms:g} ms a request; median of {args.repeat} for ours; load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'tenant':<6}{'loader':<18}{'run':<9}{'process s':>10}{'import s':>10}{'load s':>8}{'requests':>10}")
    for key, f in figures.items():
        if key.endswith("tenant"):
            continue
        label, name, run = key.split()
        print(f"{label:<6}{name:<18}{run:<9}{f['process_s']:>10.2f}{f['import_s']:>10.2f}{f['load_s']:>8.2f}"
              f"{f.get('requests', '-'):>10}")
    for label in TENANTS:
        ours, generic = figures[f"{label} now first"], figures[f"{label} rest_api first"]
        print(f"{label}: rest_api / ours (first load, process) = {generic['process_s'] / ours['process_s']:.1f}x")
    for key, f in figures.items():
        if f.get("phases"):
            print(f"  {key}: " + ", ".join(f"{k} {v:.2f}" for k, v in f["phases"].items()))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "fixed-cost.json"
    out.write_text(json.dumps({**figures, "at": dt.datetime.now(dt.timezone.utc).isoformat()}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
