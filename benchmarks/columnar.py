"""CPU of building the vouchers' Arrow tables (``columnar.voucher_table``): well-formed answers beside answers
whose values come in other forms (the simulator's habits), on the same records.

    .venv/bin/python -m benchmarks.columnar                     # 60,000 vouchers of the default tenant
    .venv/bin/python -m benchmarks.columnar --size large --vouchers 200000 --repeat 7

Well-formed columns go through Arrow's own conversion; a column Arrow refuses (a boolean sent as text, a
timestamp with seven fraction digits) or text with stray whitespace is read value by value. Batches of
5,000 records, as the resource builds them; every pass on a fresh copy of the records (values read by
meaning are written back into them). Prints process CPU seconds (median and range of the passes) per
variant, and the ratio to the well-formed baseline of the same run; asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

from certiverse_warehouse.simulator import Tenant
from certiverse_warehouse.simulator.habits import Habits
from certiverse_warehouse.sources.certiverse.columnar import voucher_table

VARIANTS = {
    "well-formed (baseline)": (),
    "booleans as text": ("bool_strings",),
    "timestamps in other forms": ("timestamp_forms",),
    "whitespace and byte-order marks": ("whitespace", "bom"),
    "every form habit": ("bool_strings", "number_strings", "timestamp_forms", "whitespace", "bom"),
}
BATCH = 5_000


def cpu_seconds(records: list[dict], repeat: int) -> list[float]:
    """CPU seconds of turning the records into tables, batch by batch, once per pass."""
    passes = []
    for _ in range(repeat):
        fresh = copy.deepcopy(records)
        started = time.process_time()
        for i in range(0, len(fresh), BATCH):
            voucher_table(fresh[i:i + BATCH])
        passes.append(time.process_time() - started)
    return passes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="default", choices=("small", "default", "large"))
    parser.add_argument("--vouchers", type=int, default=60_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tenant = Tenant.generate(args.size, seed=42)
    serialize = tenant.record_function("vouchers")
    records = [serialize(i) for i in range(min(args.vouchers, len(tenant.vouchers)))]
    print(f"{len(records):,} vouchers, batches of {BATCH:,}, {args.repeat} passes each (process CPU seconds)")
    baseline = None
    for name, habits in VARIANTS.items():
        sent = Habits(habits).records("vouchers", records) if habits else records
        passes = cpu_seconds(sent, args.repeat)
        median = statistics.median(passes)
        baseline = baseline or median
        print(f"  {name:<34} {median:6.2f} s  ({min(passes):.2f}-{max(passes):.2f})  x{median / baseline:.2f}")


if __name__ == "__main__":
    main()
