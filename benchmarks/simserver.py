"""Serve a simulated tenant in a process of its own, driven over stdin.

The CLI's ``simulate`` has no ``--scale`` and no way to move the tenant's clock
while it serves; the benchmark needs both. Protocol: one JSON line on stdout once
listening (``base_url``, ``token``, ``now``, counts), then one JSON answer per
command line on stdin: ``advance`` (one simulated day), ``stats`` (requests
served), ``quit`` (or end of input).

    python -m benchmarks.simserver --size large --scale 2 --latency-ms 20
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

from certiverse_warehouse.simulator import RateLimit, SimulatorApp, Tenant, serve


def describe(tenant: Tenant) -> dict[str, Any]:
    return {
        "now": tenant.now().isoformat(),
        "counts": {r: tenant.count(r) for r in ("partners", "programs", "purchases", "vouchers")},
    }


def served(app: SimulatorApp) -> dict[str, int]:
    by_status: Counter[str] = Counter()
    for (_, status), n in list(app.stats.items()):
        by_status[str(status)] += n
    return dict(by_status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.simserver", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("small", "default", "large"), default="large")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--rate-limit", type=float, help="a rate limiter in front: requests a second")
    parser.add_argument("--retry-after", choices=("seconds", "date", "absent"), default="seconds")
    args = parser.parse_args(argv)

    tenant = Tenant.generate(args.size, seed=args.seed, scale=args.scale)
    limit = RateLimit(args.rate_limit, retry_after=args.retry_after) if args.rate_limit else None
    app = SimulatorApp(tenant, latency_ms=args.latency_ms, page_size=args.page_size, rate_limit=limit)
    with serve(app, port=args.port) as base_url:
        print(json.dumps({"base_url": base_url, "token": app.token, **describe(tenant)}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "advance":
                changes = tenant.advance_day()
                print(json.dumps({"changes": changes, **describe(tenant)}), flush=True)
            elif command == "stats":
                print(json.dumps({"served": served(app)}), flush=True)
            elif command == "quit":
                break
            else:
                print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
