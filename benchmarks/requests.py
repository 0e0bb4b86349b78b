"""Requests a full read and a nightly read cost, against yardsticks computed from the tenant itself.

    .venv/bin/python -m benchmarks.requests --size default
    .venv/bin/python -m benchmarks.requests --size large --no-nightly

Yardsticks:
  floor         every record once, in full pages (what no plan can beat)
  api bound     the floor, except that vouchers the API can only reach purchase by purchase
                (not linked to an exam, or in an isUsed×isActive×exam slice over the cap) cost
                at least one request per purchase holding them
  naive         purchases listed by status, then each purchase's vouchers listed one purchase at a time
Counts requests only; prints a table and writes benchmarks/results/requests-<size>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.simulator import SimulatorApp, Tenant, serve

RESULTS = Path(__file__).with_name("results")
RESOURCES = ("partners", "programs", "purchases", "vouchers")


def pages(n: int, size: int) -> int:
    return max(1, math.ceil(n / size))


def yardsticks(tenant: Tenant, page: int, cap: int) -> dict[str, int]:
    """Floor, API bound and naive request counts for a full read of ``tenant``."""
    records = {r: tenant.records(r) for r in RESOURCES}
    lists = sum(pages(len(records[r]), page) for r in ("partners", "programs", "purchases"))
    vouchers = records["vouchers"]
    floor = lists + pages(len(vouchers), page)
    leaves: dict[tuple, list[dict]] = defaultdict(list)
    for v in vouchers:
        leaves[(v["isUsed"], v["isActive"], v.get("storeExamCode"))].append(v)
    by_purchase: set[str] = set()
    reachable = 0
    for (_, _, exam), members in leaves.items():
        if exam is None or len(members) > cap:
            by_purchase.update(v["voucherPurchaseCode"] for v in members)
        else:
            reachable += len(members)
    bound = lists + pages(reachable, page) + len(by_purchase)
    statuses = Counter(p["status"] for p in records["purchases"])
    per_purchase = Counter(v["voucherPurchaseCode"] for v in vouchers)
    naive = sum(pages(n, page) for n in statuses.values()) + sum(
        pages(per_purchase[p["voucherPurchaseCode"]], page) for p in records["purchases"]
    )
    return {"floor": floor, "api_bound": bound, "naive": naive + 2}


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
    workdir = Path(tempfile.mkdtemp(prefix="certiverse-requests-"))
    figures: dict[str, object] = {"size": args.size, "page_size": app.page_size, "cap": app.cap}
    try:
        with serve(app) as url:
            figures["initial"] = yardsticks(tenant, app.page_size, app.cap)
            figures["initial"]["ours"], figures["initial"]["seconds"] = measure(tenant, app, url, workdir)
            if not args.no_nightly:
                tenant.advance_day()
                figures["nightly"] = yardsticks(tenant, app.page_size, app.cap)
                figures["nightly"]["ours"], figures["nightly"]["seconds"] = measure(tenant, app, url, workdir)
                refresh, refresh_s = measure(tenant, app, url, workdir, full_refresh=True)
                figures["nightly"].update(full_refresh=refresh, full_refresh_seconds=refresh_s)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"tenant {args.size}: requests (page size {app.page_size}, cap {app.cap:,})")
    print(f"{'run':<9}{'ours':>9}{'floor':>9}{'api bound':>11}{'naive':>9}{'ours/floor':>12}{'ours/bound':>12}"
          f"{'ours/naive':>12}{'seconds':>9}")
    for run in ("initial", "nightly"):
        f = figures.get(run)
        if not f:
            continue
        print(f"{run:<9}{f['ours']:>9,}{f['floor']:>9,}{f['api_bound']:>11,}{f['naive']:>9,}"
              f"{f['ours'] / f['floor']:>12.2f}{f['ours'] / f['api_bound']:>12.2f}{f['ours'] / f['naive']:>12.2f}"
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
