"""Requests of our plans on the grid of world shapes, against the naive plan and the good-plan yardstick.

    .venv/bin/python -m benchmarks.grid                       # every shape at the default size
    .venv/bin/python -m benchmarks.grid --size small --shape never_linked

For each shape (``simulator.shape.GRID``, and the default shape for reference): a
first load into DuckDB (a full read), one simulated day, then a nightly load, over
loopback HTTP. No ``as_of`` is passed: "now" comes from the API's Date header, as
in production. Yardsticks come from the tenant's truth (``simulator.yardsticks``,
whose docstring says what they assume): a naive read re-reads everything, so its
nightly is its full read. Requests are counts of every request the run sent
(partners, programs, purchases and vouchers; retries included, none happen here).
Prints a table and writes benchmarks/results/grid-<size>.json; asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.simulator import SimulatorApp, Tenant, serve
from certiverse_warehouse.simulator.shape import DEFAULT, GRID, WorldShape
from certiverse_warehouse.simulator.yardsticks import full_yardsticks, good_nightly, naive_full, truth

RESULTS = Path(__file__).with_name("results")
NIGHTS = 7


def run_shape(shape: WorldShape, size: str, workdir: Path, seed: int = 42, nights: int = NIGHTS,
              after_full: Callable[[Any, Tenant], None] | None = None,
              after_nightly: Callable[[Any, Tenant], None] | None = None) -> dict[str, Any]:
    """A full read, a day, and a nightly read of one shape: our requests beside the yardsticks'.

    ``after_full`` and ``after_nightly`` (tests) see the run context and the tenant after each load.
    """
    tenant = Tenant.generate(size, seed=seed, shape=shape)
    app = SimulatorApp(tenant)
    context = RunContext.from_config("duckdb", str(workdir / f"{shape.name}.duckdb"),
                                     pipelines_dir=str(workdir / shape.name))
    with serve(app) as url:
        config = {"base_url": url, "api_token": app.token, "record_cap": shape.cap, "recheck_nights": nights}
        before, since = truth(tenant), tenant.now()
        full = run_load(context, config)
        full_counts = dict(full.vouchers_state.get("last_full", {}))
        if after_full:
            after_full(context, tenant)
        tenant.advance_day()
        after = truth(tenant)
        nightly = run_load(context, config)
        if after_nightly:
            after_nightly(context, tenant)
    yardsticks = full_yardsticks(before, shape.page_size, shape.cap)
    state = nightly.vouchers_state
    return {
        "shape": shape.name,
        "vouchers": len(before["vouchers"]),
        "purchases": len(before["purchases"]),
        "unlinked_share": round(sum(not v.get("storeExamCode") for v in before["vouchers"]) / len(before["vouchers"]), 3),
        "full": {"ours": full.requests.total(), "naive": yardsticks.naive, "yardstick": yardsticks.good,
                 "plan": full_counts, "by_endpoint": full.requests.as_dict()},
        "nightly": {"ours": nightly.requests.total(), "naive": naive_full(after, shape.page_size),
                    "yardstick": good_nightly(before, after, since, shape.page_size, shape.cap, nights),
                    "mode": state["mode"], "plan": state.get("last_nightly") or state.get("last_full"),
                    "by_endpoint": nightly.requests.as_dict()},
        "activity_during_reads": dict(app.activity),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The grid as a Markdown table."""
    lines = ["| shape | vouchers | unlinked | full: ours | naive | yardstick | ours/yardstick "
             "| nightly: ours | naive | yardstick | ours/yardstick |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f, n = r["full"], r["nightly"]
        mode = "" if n["mode"] == "nightly" else f" ({n['mode']})"
        lines.append(f"| {r['shape']} | {r['vouchers']:,} | {r['unlinked_share']:.0%} | {f['ours']:,} | {f['naive']:,} "
                     f"| {f['yardstick']:,} | {f['ours'] / f['yardstick']:.2f} | {n['ours']:,}{mode} | {n['naive']:,} "
                     f"| {n['yardstick']:,} | {n['ours'] / n['yardstick']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="default", choices=("small", "default", "large"))
    parser.add_argument("--shape", action="append", help="only these shapes (by name); repeatable")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    shapes = [s for s in (DEFAULT, *GRID) if not args.shape or s.name in args.shape]
    workdir = Path(tempfile.mkdtemp(prefix="certiverse-grid-"))
    rows = []
    try:
        for shape in shapes:
            rows.append(run_shape(shape, args.size, workdir, seed=args.seed))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nsize {args.size}, seed {args.seed}, rolling re-check over {NIGHTS} nights\n")
    print(table(rows))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"grid-{args.size}.json"
    out.write_text(json.dumps({"rows": rows, "at": dt.datetime.now(dt.timezone.utc).isoformat()}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
