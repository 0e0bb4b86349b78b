"""What publishing the readers' copy costs, beside a nightly run, on one simulated tenant.

    .venv/bin/python -m benchmarks.publish                   # large tenant (~1M vouchers), 20 ms a request
    .venv/bin/python -m benchmarks.publish --size default

The simulator serves from its own process (``benchmarks.simserver``, as in
``benchmarks.run``). In one run: an initial load, a simulated day, a nightly load,
the transforms, then the publish (DuckDB copy in storage v1.4.0 and Parquet, each
timed on its own), beside the cheapest thing that could stand in for it: a plain
copy of the working file (not safe for readers, not readable by DuckDB 1.x; a
yardstick only). Prints a table, writes benchmarks/results/publish-<size>.json,
asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.run import RESULTS, Simulator
from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.pipelines.publishing import publish
from certiverse_warehouse.pipelines.transform import run_transforms


def size_of(path: Path) -> int:
    path = path.resolve()
    return sum(p.stat().st_size for p in path.iterdir()) if path.is_dir() else path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="large", choices=("small", "default", "large"))
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    workdir = Path(tempfile.mkdtemp(prefix="certiverse-publish-"))
    sim = Simulator(args.size, 1.0, args.latency_ms, 100)
    figures: dict[str, object] = {"size": args.size, "vouchers": sim.info["counts"]["vouchers"]}
    try:
        warehouse = workdir / "warehouse.duckdb"
        context = RunContext.from_config("duckdb", str(warehouse), pipelines_dir=str(workdir / "p"))

        def load() -> float:
            started = time.perf_counter()
            run_load(context, {"base_url": sim.info["base_url"], "api_token": sim.info["token"]},
                     as_of=dt.datetime.fromisoformat(sim.info["now"]))
            return time.perf_counter() - started

        figures["initial_load_s"] = load()
        sim.advance()
        figures["nightly_load_s"] = load()
        started = time.perf_counter()
        run_transforms(context, dt.datetime.fromisoformat(sim.info["now"]).date())
        figures["transforms_s"] = time.perf_counter() - started
        figures["warehouse_bytes"] = warehouse.stat().st_size
        targets = context.publish
        each_alone = (("duckdb", replace(targets, parquet_dir=None)), ("parquet", replace(targets, duckdb_file=None)))
        for label, only in each_alone:
            publication = publish(context, only)
            assert publication is not None
            figures[f"publish_{label}_s"] = publication.seconds
            figures[f"publish_{label}_bytes"] = publication.bytes
        figures["relations"] = publication.relations
        started = time.perf_counter()
        shutil.copyfile(warehouse, workdir / "plain-copy.duckdb")
        figures["plain_copy_s"] = time.perf_counter() - started
    finally:
        sim.close()
        shutil.rmtree(workdir, ignore_errors=True)
    load_avg = os.getloadavg()
    publish_s = figures["publish_duckdb_s"] + figures["publish_parquet_s"]
    print(f"tenant {args.size}: {figures['vouchers']:,} vouchers, {args.latency_ms:g} ms a request, "
          f"load average {load_avg[0]:.1f}")
    rows = [
        ("initial load", figures["initial_load_s"], None),
        ("nightly load", figures["nightly_load_s"], None),
        ("transforms", figures["transforms_s"], None),
        ("publish: DuckDB file (v1.4.0)", figures["publish_duckdb_s"], figures["publish_duckdb_bytes"]),
        ("publish: Parquet folder", figures["publish_parquet_s"], figures["publish_parquet_bytes"]),
        ("publish: both", publish_s, figures["publish_duckdb_bytes"] + figures["publish_parquet_bytes"]),
        ("yardstick: plain copy of the working file", figures["plain_copy_s"], figures["warehouse_bytes"]),
    ]
    for label, seconds, size in rows:
        print(f"  {label:<44}{seconds:>8.1f} s" + (f"{size / 1e6:>10,.1f} MB" if size else ""))
    print(f"  publishing = {publish_s / figures['nightly_load_s']:.2f} of the nightly load's time")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"publish-{args.size}.json"
    out.write_text(json.dumps({**figures, "load_average": load_avg, "at": dt.datetime.now(dt.timezone.utc).isoformat()},
                              indent=2, default=str))
    print(f"written {out}")


if __name__ == "__main__":
    main()
