"""Requests a full read and a nightly read cost, against the yardsticks of ``simulator.yardsticks``.

    .venv/bin/python -m benchmarks.requests --size default
    .venv/bin/python -m benchmarks.requests --size large --no-nightly

Yardsticks (one definition each, in ``simulator/yardsticks.py``, whose docstring says what they assume):
  floor       every record once, in full pages (what no plan can beat)
  yardstick   a good plan that knows every voucher's state, exam and purchase (for a nightly read, the good
              nightly read after the first load)
  naive       purchases listed by status, then each purchase's vouchers one purchase at a time (its nightly
              is a full read again)
The runs pass ``as_of`` (the tenant's clock); ``benchmarks.grid`` runs the same plans on other tenant shapes,
with the API's clock. Counts requests only; prints a table and writes benchmarks/results/requests-<size>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.simulator import SimulatorApp, Tenant, serve
from certiverse_warehouse.simulator.yardsticks import floor, full_yardsticks, good_nightly, naive_full, truth

RESULTS = Path(__file__).with_name("results")
NIGHTS = 7  # the source's default rolling re-check


def measure(tenant: Tenant, app: SimulatorApp, url: str, workdir: Path, **kwargs) -> tuple[int, float]:
    context = RunContext.from_config("duckdb", str(workdir / "w.duckdb"), pipelines_dir=str(workdir / "p"))
    started = time.monotonic()
    result = run_load(context, {"base_url": url, "api_token": app.token}, as_of=tenant.now(), **kwargs)
    return result.requests.total(), time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="default", choices=("small", "default", "large"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-nightly", action="store_true", help="skip the one-day nightly comparison")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tenant = Tenant.generate(args.size, seed=args.seed)
    app = SimulatorApp(tenant)
    page, cap = app.page_size, app.cap
    workdir = Path(tempfile.mkdtemp(prefix="certiverse-requests-"))
    figures: dict[str, object] = {"size": args.size, "page_size": page, "cap": cap}
    try:
        with serve(app) as url:
            before, since = truth(tenant), tenant.now()
            figures["initial"] = {"floor": floor(before, page), "yardstick": full_yardsticks(before, page, cap).good,
                                  "naive": naive_full(before, page)}
            figures["initial"]["ours"], figures["initial"]["seconds"] = measure(tenant, app, url, workdir)
            if not args.no_nightly:
                tenant.advance_day()
                after = truth(tenant)
                figures["nightly"] = {"floor": floor(after, page), "naive": naive_full(after, page),
                                      "yardstick": good_nightly(before, after, since, page, cap, NIGHTS)}
                figures["nightly"]["ours"], figures["nightly"]["seconds"] = measure(tenant, app, url, workdir)
                refresh, refresh_s = measure(tenant, app, url, workdir, full_refresh=True)
                figures["nightly"].update(full_refresh=refresh, full_refresh_seconds=refresh_s)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"tenant {args.size}: requests (page size {page}, cap {cap:,})")
    print(f"{'run':<9}{'ours':>9}{'floor':>9}{'yardstick':>11}{'naive':>9}{'ours/floor':>12}{'ours/yard':>11}"
          f"{'ours/naive':>12}{'seconds':>9}")
    for run in ("initial", "nightly"):
        f = figures.get(run)
        if not f:
            continue
        print(f"{run:<9}{f['ours']:>9,}{f['floor']:>9,}{f['yardstick']:>11,}{f['naive']:>9,}"
              f"{f['ours'] / f['floor']:>12.2f}{f['ours'] / f['yardstick']:>11.2f}{f['ours'] / f['naive']:>12.2f}"
              f"{f['seconds']:>9.1f}")
    if "nightly" in figures:
        f = figures["nightly"]
        print(f"nightly full refresh: {f['full_refresh']:,} requests in {f['full_refresh_seconds']:.1f}s "
              f"(nightly run: {f['ours'] / f['full_refresh']:.2f} of it, "
              f"{f['seconds'] / f['full_refresh_seconds']:.2f} of its wall time)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"requests-{args.size}.json"
    out.write_text(json.dumps({**figures, "at": dt.datetime.now(dt.timezone.utc).isoformat()}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
