"""A load through a rate limiter of 5 requests a second, with default settings, beside the ideal.

    .venv/bin/python -m benchmarks.rate_limit                       # small and default tenants
    .venv/bin/python -m benchmarks.rate_limit --sizes small --forms seconds

The simulator runs in its own process (``benchmarks.simserver``, 20 ms a request) with a token
bucket of 5 requests a second (burst 5) in front of the API, answering 429 with ``Retry-After``
in seconds, as an HTTP date, or without it. Each load is a first load with the source's default
settings (16 workers, nothing configured about the limit). ``ideal`` is the requests the load
needed (answers other than 429) divided by 5: the time a client that knew the limit and never
exceeded it would spend sending them. The same tenant without the limiter shows the run's cost
apart from requests. Prints a table, writes benchmarks/results/rate-limit.json, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

from benchmarks.run import RESULTS, Simulator
from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load

PER_SECOND = 5.0
LATENCY_MS = 20.0
PAGE_SIZE = 100


def one_load(size: str, retry_after: str | None) -> dict[str, Any]:
    """A first load of ``size`` through the limiter (``retry_after`` its form; None: no limiter)."""
    extra = ["--rate-limit", str(PER_SECOND), "--retry-after", retry_after] if retry_after else []
    sim = Simulator(size, 1.0, LATENCY_MS, PAGE_SIZE, extra)
    try:
        with tempfile.TemporaryDirectory(prefix="certiverse-rate-limit-") as folder:
            context = RunContext.from_config("duckdb", f"{folder}/w.duckdb", pipelines_dir=f"{folder}/p")
            started = time.monotonic()
            result = run_load(context, {"base_url": sim.info["base_url"], "api_token": sim.info["token"]})
            wall = time.monotonic() - started
        served = sim.ask("stats")["served"]
    finally:
        sim.close()
    refused = served.get("429", 0)
    needed = sum(served.values()) - refused
    return {"size": size, "retry_after": retry_after or "no limiter", "requests": needed, "refused": refused,
            "wall_s": round(wall, 1), "read_s": result.phases.get("read"),
            "ideal_s": round(needed / PER_SECOND, 1) if retry_after else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rate_limit", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["small", "default"])
    parser.add_argument("--forms", nargs="+", default=["seconds", "date", "absent"])
    args = parser.parse_args(argv)
    rows = []
    for size in args.sizes:
        for form in [None, *args.forms]:
            row = one_load(size, form)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print("| tenant | Retry-After | requests | 429s | wall s | read s | ideal s (requests / 5) | wall / ideal "
          "| read / ideal |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ideal = r["ideal_s"]
        ratio = f"{r['wall_s'] / ideal:.2f}" if ideal else "-"
        read = f"{r['read_s'] / ideal:.2f}" if ideal and r["read_s"] else "-"
        print(f"| {r['size']} | {r['retry_after']} | {r['requests']:,} | {r['refused']:,} | {r['wall_s']} "
              f"| {r['read_s']} | {ideal if ideal else '-'} | {ratio} | {read} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rate-limit.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
