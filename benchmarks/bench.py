"""Speed in one run: the loader beside its fetch floor and dlt's rest_api, the fixed cost, the nightly end to end.

    python -m benchmarks.bench                      # tiny, 1k and default tenants, baseline 0deacf8^ beside (~10 min)
    python -m benchmarks.bench --large              # and the large tenant (~20 min more)
    python -m benchmarks.bench --before none        # this checkout only
    python -m benchmarks.bench --before /some/checkout

Every measurement runs in a fresh process, against the simulator in a process of its own
(``benchmarks.simserver``, 20 ms a request). Three parts:

1. **Fixed cost**: ``certiverse --help``, ``--version`` and ``status`` (on the tiny tenant's
   warehouse), wall seconds, median of ``--repeat``.
2. **Loader** per tenant (``tiny`` = small x0.1, 20 purchases; ``1k`` = default x1/3; ``default``;
   ``large``): a first load and a nightly load one simulated day later (``benchmarks.scenario``'s
   ``load``, the same code path as ``certiverse load``); the **fetch floor** (the same URLs fetched
   with 16 threads and one httpx client, bodies thrown away); dlt's generic ``rest_api`` source
   (``benchmarks.fixed_cost``'s configuration) on the first load of the tiny and 1k tenants. Wall
   seconds of the process (imports included) and of the load call, CPU seconds of the process,
   peak memory.
3. **Nightly end to end**: ``certiverse run --json`` on the default tenant, first run and a nightly
   one simulated day later, with its phases (load, dbt's parse, models and tests, publishing).

The **baseline** is the code before this round's changes (``--before``, default ``0deacf8^``: a
git revision is exported with ``git archive`` to a temporary folder, a path is used as it is),
measured with its own harness and CLI in the same run, interleaved with this checkout so that both
see the same machine load. Prints tables and the targets of issue 20 beside their baselines, the
load average, writes ``benchmarks/results/bench.json``; asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.fixed_cost import REST_API
from benchmarks.run import RESULTS, ROOT, Simulator

TENANTS = {"tiny": ("small", 0.1), "1k": ("default", 1 / 3), "default": ("default", 1.0), "large": ("large", 1.0)}
REST_API_TENANTS = ("tiny", "1k")  # the default tenant would take dlt's rest_api minutes of one request at a time
WORKERS = 16
LOAD_PHASES = ("startup", "align", "snapshot", "read", "normalize", "load", "counter_check", "row_counts")


class Checkout:
    """A copy of the project measured with its own code: ``root`` on PYTHONPATH, its CLI module, its harness."""

    def __init__(self, label: str, root: Path, cli_module: str) -> None:
        self.label, self.root, self.cli_module = label, root, cli_module

    def env(self, sim: Simulator | None = None) -> dict[str, str]:
        env = dict(os.environ, PYTHONPATH=str(self.root), RUNTIME__DLTHUB_TELEMETRY="false")
        if sim is not None:
            env.update(SOURCES__CERTIVERSE__BASE_URL=sim.info["base_url"],
                       SOURCES__CERTIVERSE__API_TOKEN=sim.info["token"])
        return env


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a child process; its result, wall seconds and CPU seconds (user + system, from its rusage)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done, wall, cpu


def cli(checkout: Checkout, args: list[str], sim: Simulator | None = None) -> tuple[subprocess.CompletedProcess, float, float]:
    return timed([sys.executable, "-m", checkout.cli_module, *args], checkout.root, checkout.env(sim))


def scenario(checkout: Checkout, sim: Simulator, folder: Path, **spec: Any) -> dict[str, Any]:
    """``benchmarks.scenario`` of ``checkout`` (its files in ``folder``): its figures, plus the process's
    wall and CPU seconds."""
    n = len(list(folder.glob("spec-*.json")))
    spec_path, result_path = folder / f"spec-{n}.json", folder / f"result-{n}.json"
    spec.update(base_url=sim.info["base_url"], token=sim.info["token"], result=str(result_path))
    spec_path.write_text(json.dumps(spec))
    done, wall, cpu = timed([sys.executable, "-m", "benchmarks.scenario", str(spec_path)], checkout.root,
                            checkout.env())
    if done.returncode:
        raise RuntimeError(f"{checkout.label} {spec['kind']} failed:\n{done.stderr[-3000:]}")
    return {**json.loads(result_path.read_text()), "process_s": round(wall, 2), "process_cpu_s": round(cpu, 2)}


def rest_api(sim: Simulator, workdir: Path) -> dict[str, Any]:
    spec = {"duckdb": str(workdir / "rest_api.duckdb"), "pipelines": str(workdir / "rest_api_pipelines"),
            "base_url": sim.info["base_url"], "token": sim.info["token"]}
    done, wall, cpu = timed([sys.executable, "-c", REST_API, json.dumps(spec)], ROOT, dict(os.environ))
    if done.returncode:
        raise RuntimeError(f"rest_api failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "process_s": round(wall, 2), "process_cpu_s": round(cpu, 2)}


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the parts -------------------------------------------------------------------------------


def fixed_cost(checkouts: list[Checkout], workdir: Path, repeat: int) -> dict[str, Any]:
    """--help, --version, status (on a tiny warehouse each checkout loads first): median wall seconds."""
    out: dict[str, Any] = {}
    sim = Simulator(*TENANTS["tiny"], 20.0, 100)
    try:
        for checkout in checkouts:
            folder = workdir / f"fixed-{checkout.label}"
            where = ["--duckdb-file", str(folder / "w.duckdb"), "--pipelines-dir", str(folder / "p")]
            cli(checkout, ["load", *where], sim)
            for name, args in (("--help", ["--help"]), ("--version", ["--version"]), ("status", ["status", *where])):
                runs = [cli(checkout, args, sim) for _ in range(repeat)]
                ok = all(r[0].returncode in (0, 1) and "usage:" not in r[0].stderr for r in runs)
                # wall and CPU (CPU is steadier while others share the cores)
                out[f"{checkout.label} {name}"] = (round(statistics.median(r[1] for r in runs), 3),
                                                   round(statistics.median(r[2] for r in runs), 3)) if ok else None
    finally:
        sim.close()
    return out


def loader(checkouts: list[Checkout], tenant: str, workdir: Path, with_rest_api: bool) -> dict[str, Any]:
    """First and nightly load per checkout, the fetch floor of this checkout's loads, dlt's rest_api."""
    sim = Simulator(*TENANTS[tenant], 20.0, 100)
    out: dict[str, Any] = {"vouchers": sim.info["counts"].get("vouchers")}
    try:
        for run in ("first", "nightly"):
            if run == "nightly":
                sim.advance()
            for checkout in checkouts:
                folder = workdir / f"{tenant}-{checkout.label}"
                folder.mkdir(parents=True, exist_ok=True)
                say(f"{tenant}: {checkout.label} {run} load ...")
                out[f"{checkout.label} {run}"] = scenario(
                    checkout, sim, folder, kind="load", workdir=str(folder), workers=WORKERS, baseline=False,
                    as_of=sim.info["now"], urls=str(folder / f"urls-{run}.txt"))
            now = workdir / f"{tenant}-{checkouts[0].label}"
            say(f"{tenant}: {run} fetch floor ...")
            out[f"floor {run}"] = scenario(checkouts[0], sim, now, kind="floor", urls=str(now / f"urls-{run}.txt"),
                                           workers=WORKERS)
            if run == "first" and with_rest_api:
                say(f"{tenant}: dlt rest_api ...")
                out["rest_api first"] = rest_api(sim, now)
    finally:
        sim.close()
    return out


def nightly_run(checkouts: list[Checkout], workdir: Path) -> dict[str, Any]:
    """``certiverse run --json`` on the default tenant: a first run, then a nightly one a simulated day later."""
    sim = Simulator(*TENANTS["default"], 20.0, 100)
    out: dict[str, Any] = {}
    try:
        for run in ("first", "nightly"):
            if run == "nightly":
                sim.advance()
            for checkout in checkouts:
                folder = workdir / f"run-{checkout.label}"
                say(f"certiverse run: {checkout.label} {run} ...")
                done, wall, cpu = cli(checkout, ["run", "--json", "--duckdb-file", str(folder / "w.duckdb"),
                                                 "--pipelines-dir", str(folder / "p")], sim)
                if done.returncode:
                    raise RuntimeError(f"{checkout.label} run failed:\n{done.stderr[-3000:]}")
                summary = json.loads(done.stdout)
                out[f"{checkout.label} {run}"] = {"process_s": round(wall, 2), "process_cpu_s": round(cpu, 2),
                                                  "phases": summary.get("phases") or {},
                                                  "transform_seconds": summary.get("transform_seconds")}
    finally:
        sim.close()
    return out


# -- printing --------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def print_loader(tenant: str, figures: dict[str, Any], labels: list[str]) -> list[str]:
    print(f"\n{tenant} tenant ({figures['vouchers']:,} vouchers)")
    print(f"  {'run':<8}{'variant':<16}{'process s':>10}{'load s':>9}{'CPU s':>8}{'peak MB':>9}{'requests':>10}"
          f"{'/floor wall':>12}{'/floor CPU':>11}")
    for run in ("first", "nightly"):
        floor = figures[f"floor {run}"]
        rows = [(label, figures[f"{label} {run}"]) for label in labels] + [("fetch floor", floor)]
        if run == "first" and "rest_api first" in figures:
            rows.append(("dlt rest_api", figures["rest_api first"]))
        for name, f in rows:
            print(f"  {run:<8}{name:<16}{f['process_s']:>10.2f}{f.get('wall_s', f.get('load_s', 0)):>9.2f}"
                  f"{f['process_cpu_s']:>8.2f}{f.get('peak_mb') or 0:>9.0f}{f.get('requests', '-'):>10}"
                  f"{ratio(f.get('wall_s'), floor['wall_s']):>12}{ratio(f['process_cpu_s'], floor['process_cpu_s']):>11}")
    lines = []
    for label in labels:
        first, nightly = figures[f"{label} first"], figures[f"{label} nightly"]
        lines.append(f"{tenant}, {label}: initial {ratio(first['wall_s'], figures['floor first']['wall_s'])}x, "
                     f"nightly {ratio(nightly['wall_s'], figures['floor nightly']['wall_s'])}x the fetch floor's wall; "
                     f"CPU {ratio(first['process_cpu_s'], figures['floor first']['process_cpu_s'])}x the floor's "
                     f"(initial); peak {first.get('peak_mb')} MB")
        if "rest_api first" in figures:
            lines.append(f"{tenant}, {label}: dlt rest_api / ours (first load, process wall) = "
                         f"{ratio(figures['rest_api first']['process_s'], first['process_s'])}x")
    return lines


def print_runs(figures: dict[str, Any], labels: list[str]) -> list[str]:
    print("\ncertiverse run --json, default tenant")
    lines = []
    for key, f in figures.items():
        phases = f["phases"]
        load = sum(phases.get(p, 0.0) for p in LOAD_PHASES)
        rest = {p: s for p, s in phases.items() if p not in LOAD_PHASES}
        print(f"  {key:<16} process {f['process_s']:.2f} s, CPU {f['process_cpu_s']:.2f} s; "
              + (f"load phases {load:.2f} s; " + ", ".join(f"{p} {s:.2f}" for p, s in rest.items()) if phases
                 else f"transform {f.get('transform_seconds')}"))
        if phases and key.endswith("nightly"):
            lines.append(f"{key.split()[0]}: certiverse run (nightly) {f['process_s']:.2f} s = "
                         f"{f['process_s'] / load:.2f}x its load ({load:.2f} s of load phases)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--large", action="store_true", help="add the large tenant (995,137 vouchers)")
    parser.add_argument("--before", default="0deacf8^",
                        help="the baseline: a git revision, a checkout's path, or 'none' (default 0deacf8^)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each fixed-cost command (median shown)")
    parser.add_argument("--tenants", default="tiny,1k,default", help="loader tenants (comma-separated)")
    parser.add_argument("--skip-run", action="store_true", help="no certiverse run end to end")
    args = parser.parse_args(argv)
    tenants = [t for t in args.tenants.split(",") if t] + (["large"] if args.large else [])
    with tempfile.TemporaryDirectory(prefix="certiverse-bench-") as tmp:
        workdir = Path(tmp)
        checkouts = [Checkout("now", ROOT, "certiverse_warehouse.pipelines.cli")]
        if args.before != "none":
            checkouts.append(baseline_checkout(args.before, workdir / "before"))
        labels = [c.label for c in checkouts]
        figures: dict[str, Any] = {"load_average_start": os.getloadavg()}
        say("fixed cost ...")
        figures["fixed"] = fixed_cost(checkouts, workdir, args.repeat)
        for tenant in tenants:
            figures[tenant] = loader(checkouts, tenant, workdir, tenant in REST_API_TENANTS)
        if not args.skip_run:
            figures["run"] = nightly_run(checkouts, workdir)
        figures["load_average_end"] = os.getloadavg()
    print(f"load average at the start {figures['load_average_start'][0]:.1f}, "
          f"at the end {figures['load_average_end'][0]:.1f} (2 cores)")
    print("\nfixed cost (median wall s / CPU s): " + ", ".join(
        f"{k} {'%.2f / %.2f' % v if v else '-'}" for k, v in figures["fixed"].items()))
    targets = [f"{label}: certiverse --help {'%.2f s wall, %.2f s CPU' % figures['fixed'][f'{label} --help']}"
               for label in labels if figures["fixed"].get(f"{label} --help")]
    for tenant in tenants:
        targets += print_loader(tenant, figures[tenant], labels)
    if "tiny" in tenants:
        targets += [f"{label}: tiny first load, process {figures['tiny'][f'{label} first']['process_s']:.2f} s"
                    for label in labels]
    if "run" in figures:
        targets += print_runs(figures["run"], labels)
    print("\ntargets (issue 20), this checkout beside the baseline:")
    for line in targets:
        print(f"  {line}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "bench.json"
    out.write_text(json.dumps({**figures, "at": dt.datetime.now(dt.timezone.utc).isoformat(),
                               "before": args.before}, indent=2, default=str))
    print(f"written {out}")
    return 0


def baseline_checkout(before: str, folder: Path) -> Checkout:
    """A path as it is; a git revision exported (``git archive``) into ``folder``. A checkout from after
    the packaging (``certiverse_warehouse/`` beside the folders) gets the folders linked under that name,
    as pyproject.toml's package-dir maps them: on PYTHONPATH it is then found before this checkout's
    editable install, whose finder would otherwise serve this checkout's code under that name."""
    root = Path(before).resolve() if Path(before).is_dir() else folder
    if root == folder:
        folder.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", before], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    package = root / "certiverse_warehouse"
    if not package.is_dir():
        return Checkout("before", root, "pipelines.cli")
    if root == folder:
        for name in ("sources", "pipelines", "orchestration", "simulator", "transforms"):
            if (root / name).is_dir() and not (package / name).exists():
                (package / name).symlink_to(root / name, target_is_directory=True)
    return Checkout("before", root, "certiverse_warehouse.pipelines.cli")


if __name__ == "__main__":
    sys.exit(main())
