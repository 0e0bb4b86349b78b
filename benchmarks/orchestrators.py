"""What an orchestrator adds: install size, and run time beside ``certiverse run`` alone on the same tenant.

    .venv/bin/python -m benchmarks.orchestrators                 # small tenant, 2 rounds
    .venv/bin/python -m benchmarks.orchestrators --size default --rounds 1

For each way of running the nightly job (``certiverse run``, the baseline; ``dagster asset materialize
--select '*'`` from the repository; ``airflow dags test certiverse_nightly``), in rounds so that the machine's
other work falls on each alike: a fresh tenant (same seed) served by the simulator in its own process, a
first run into an empty warehouse, one simulated day, a nightly run. Each run is timed from the command's
start to its end, imports and the orchestrator's own bookkeeping included; CPU is the command's process
tree's. Airflow's ``db migrate`` (once per Airflow home) is timed apart. The orchestrators' environments
come from tests/orchestrators.py (made once per machine); their added size is the bytes of the
distributions the project's own environment (.venv) does not have.

Prints a table, writes benchmarks/results/orchestrators.json, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from benchmarks.run import RESULTS, ROOT, Simulator
from tests.orchestrators import environment, orchestrator_env

MODULE = "certiverse_warehouse.orchestration.dagster_definitions"
DAG_FILE = ROOT / "docs" / "scheduling" / "airflow_certiverse_nightly.py"

# Run in an environment's interpreter: {distribution name: (version, bytes on disk)}.
SIZES = r"""
import json, importlib.metadata as m
out = {}
for d in m.distributions():
    size = 0
    for f in d.files or []:
        try:
            size += f.locate().stat().st_size
        except OSError:
            pass
    out[d.metadata["Name"].lower().replace("_", "-")] = (d.version, size)
print(json.dumps(out))
"""


def distributions(python: Path) -> dict[str, tuple[str, int]]:
    return json.loads(subprocess.run([str(python), "-c", SIZES], capture_output=True, text=True, check=True).stdout)


def added_size(name: str) -> dict[str, Any]:
    """Distributions (and bytes) the orchestrator's environment has beyond the project's own."""
    project = distributions(ROOT / ".venv" / "bin" / "python")
    theirs = distributions(environment(name) / "bin" / "python")
    added = {n: v for n, v in theirs.items() if n not in project}
    changed = {n: (project[n][0], v[0]) for n, v in theirs.items()
               if n in project and project[n][0] != v[0] and n not in ("pip", "setuptools", "wheel")}
    return {"distributions": len(added), "bytes": sum(size for _, size in added.values()), "changed": changed,
            "largest": sorted(((n, size) for n, (_, size) in added.items()), key=lambda x: -x[1])[:8]}


def timed(command: list[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{(done.stdout + done.stderr)[-4000:]}")
    return {"wall_s": round(wall, 2),
            "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)}


def certiverse(work: Path, settings: dict[str, str]) -> tuple[Callable[[], dict[str, float]], dict[str, float]]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__", "DLT_"))},
           "RUNTIME__DLTHUB_TELEMETRY": "false", **settings}
    return lambda: timed([str(ROOT / ".venv" / "bin" / "certiverse"), "run"], env, work), {}


def dagster(work: Path, settings: dict[str, str]) -> tuple[Callable[[], dict[str, float]], dict[str, float]]:
    home = work / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = orchestrator_env("dagster", DAGSTER_HOME=str(home), **settings)
    return lambda: timed(["dagster", "asset", "materialize", "--select", "*", "-m", MODULE], env, ROOT), {}


def airflow(work: Path, settings: dict[str, str]) -> tuple[Callable[[], dict[str, float]], dict[str, float]]:
    (work / "dags").mkdir()
    shutil.copy(DAG_FILE, work / "dags")
    env = orchestrator_env("airflow", AIRFLOW_HOME=str(work / "airflow"), AIRFLOW__CORE__DAGS_FOLDER=str(work / "dags"),
                           AIRFLOW__CORE__LOAD_EXAMPLES="False", **settings)
    setup = timed(["airflow", "db", "migrate"], env, work)
    return lambda: timed(["airflow", "dags", "test", "certiverse_nightly"], env, work), setup


WAYS = {"certiverse run": certiverse, "dagster": dagster, "airflow": airflow}


def one_round(way: str, size: str) -> dict[str, Any]:
    simulator = Simulator(size, 1.0, 0.0, 100)
    try:
        with tempfile.TemporaryDirectory(prefix="certiverse-orchestrators-") as folder:
            work = Path(folder)
            settings = {"SOURCES__CERTIVERSE__BASE_URL": simulator.info["base_url"],
                        "SOURCES__CERTIVERSE__API_TOKEN": simulator.info["token"],
                        "DESTINATION__DUCKDB__CREDENTIALS": str(work / "warehouse.duckdb"),
                        "DLT_DATA_DIR": str(work / "dlt")}
            run, setup = WAYS[way](work, settings)
            first = run()
            simulator.advance()
            nightly = run()
            return {"first": first, "nightly": nightly, "setup": setup}
    finally:
        simulator.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.orchestrators", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("small", "default"), default="small")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    sizes = {name: added_size(name) for name in ("dagster", "airflow")}
    rounds: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
    for _ in range(args.rounds):
        for way in WAYS:
            rounds[way].append(one_round(way, args.size))
    print(f"Tenant: {args.size}; {args.rounds} round(s), medians; load average {os.getloadavg()[0]:.1f}")
    print(f"{'way':<16} {'first wall s':>12} {'first CPU s':>12} {'nightly wall s':>15} {'nightly CPU s':>14}"
          f" {'vs run (nightly)':>17}")
    base = statistics.median(r["nightly"]["wall_s"] for r in rounds["certiverse run"])
    for way, results in rounds.items():
        row = {f"{run}_{what}": statistics.median(r[run][what] for r in results)
               for run in ("first", "nightly") for what in ("wall_s", "cpu_s")}
        print(f"{way:<16} {row['first_wall_s']:>12.1f} {row['first_cpu_s']:>12.1f} {row['nightly_wall_s']:>15.1f}"
              f" {row['nightly_cpu_s']:>14.1f} {row['nightly_wall_s'] / base:>16.2f}x")
    for way, results in rounds.items():
        if results[0]["setup"]:
            print(f"{way}: set-up (airflow db migrate) {statistics.median(r['setup']['wall_s'] for r in results):.1f} s")
    for name, size in sizes.items():
        print(f"{name}: adds {size['distributions']} distributions, {size['bytes'] / 1e6:,.0f} MB; "
              f"largest: {', '.join(f'{n} {b / 1e6:.0f} MB' for n, b in size['largest'][:5])}; "
              f"versions changed from the project's environment: {size['changed'] or 'none'}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "orchestrators.json").write_text(json.dumps({"size": args.size, "rounds": rounds, "sizes": sizes},
                                                           indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
