"""Benchmark the loader against the simulated tenant over real HTTP on loopback.

    .venv/bin/python -m benchmarks.run                  # large tenant, 20 ms a request, workers 16
    .venv/bin/python -m benchmarks.run --size default --skip-baseline --scale 0

Runs, each in a fresh process (peak memory is per process; the simulator has a
process of its own and its memory is not counted):

* the initial load and a nightly run (tenant advanced one day) with the
  project's settings (``workers``, parquet into DuckDB);
* the sequential baseline: ``workers=1`` and dlt's default ``insert_values``;
* the fetch floor: the exact URLs the run requested, downloaded with the same
  number of threads, bodies thrown away;
* the same load on a tenant ``--scale`` times as large, for memory growth;
* optionally the initial load at several ``--workers-curve`` values.

Prints one table and writes every figure to ``benchmarks/results/*.json``.
Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


class Simulator:
    """``benchmarks.simserver`` in a child process."""

    def __init__(self, size: str, scale: float, latency_ms: float, page_size: int, extra: Sequence[str] = ()) -> None:
        self.label = f"{size} x{scale:g}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.simserver", "--size", size, "--scale", str(scale),
             "--latency-ms", str(latency_ms), "--page-size", str(page_size), *extra],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise RuntimeError(f"the simulator ({self.label}) exited with {self.proc.wait()}")
        return json.loads(line)

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def advance(self) -> dict[str, Any]:
        answer = self.ask("advance")
        self.info.update(now=answer["now"], counts=answer["counts"])
        return answer["changes"]

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        try:
            self.ask("quit")
        except (BrokenPipeError, RuntimeError, ValueError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (to tell how much others took)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Bench:
    """Runs scenarios in child processes and keeps their figures."""

    def __init__(self, workdir: Path, quiet: bool, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.quiet = quiet
        self.env = env or {}
        self.rows: list[dict[str, Any]] = []
        self._n = 0

    def child(self, sim: Simulator, kind: str, env: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
        self._n += 1
        spec_path = self.workdir / f"spec-{self._n}.json"
        result_path = self.workdir / f"result-{self._n}.json"
        spec.update(kind=kind, base_url=sim.info["base_url"], token=sim.info["token"], result=str(result_path))
        spec_path.write_text(json.dumps(spec))
        env = dict(os.environ, RUNTIME__DLTHUB_TELEMETRY="false", PYTHONPATH=str(ROOT), **(env or {}))
        sim_cpu, busy = sim.cpu_s(), busy_cpu_s()
        subprocess.run([sys.executable, "-m", "benchmarks.scenario", str(spec_path)], cwd=ROOT, env=env, check=True)
        result = json.loads(result_path.read_text())
        result["sim_cpu_s"] = round(sim.cpu_s() - sim_cpu, 2)
        # Everything else the machine ran meanwhile: other people's jobs compete for the same cores.
        result["other_cpu_s"] = round(busy_cpu_s() - busy - result["sim_cpu_s"] - result.get("cpu_s", 0), 1)
        return result

    def load(self, sim: Simulator, run: str, variant: str, workdir: str, workers: int,
             baseline: bool = False) -> dict[str, Any]:
        self._say(f"{sim.label}: {run} {variant} ...")
        urls = str(Path(workdir) / f"urls-{run}.txt")
        Path(workdir).mkdir(parents=True, exist_ok=True)
        result = self.child(sim, "load", env=None if baseline else self.env, workdir=workdir, workers=workers,
                            baseline=baseline, as_of=sim.info["now"], urls=urls)
        result.update(tenant=sim.label, run=run, variant=variant, workers=workers, urls=urls)
        self.rows.append(result)
        self._say(f"  {result['wall_s']} s, {result['requests']} requests, peak {result['peak_mb']} MB")
        return result

    def floor(self, sim: Simulator, of: dict[str, Any]) -> dict[str, Any]:
        self._say(f"{sim.label}: {of['run']} fetch floor ...")
        result = self.child(sim, "floor", urls=of["urls"], workers=of["workers"])
        result.update(tenant=sim.label, run=of["run"], variant=f"fetch floor, {of['workers']} threads",
                      workers=of["workers"], records=of["records"])
        self.rows.append(result)
        self._say(f"  {result['wall_s']} s")
        return result

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)


def initial_and_nightly(bench: Bench, sim: Simulator, workers: int, baseline: bool, floor: bool) -> dict[str, Any]:
    """Initial load, then one simulated day, then the nightly run: optimised, baseline and floor side by side."""
    fast_dir, slow_dir = str(bench.workdir / f"fast-{sim.label}"), str(bench.workdir / f"slow-{sim.label}")
    fast_variant, slow_variant = f"workers={workers}, parquet", "baseline: workers=1, insert_values"
    out: dict[str, Any] = {"initial": {}, "nightly": {}}
    for run in ("initial", "nightly"):
        if run == "nightly":
            out["changes"] = sim.advance()
        out[run]["fast"] = bench.load(sim, run, fast_variant, fast_dir, workers)
        if floor:
            out[run]["floor"] = bench.floor(sim, out[run]["fast"])
        if baseline:
            out[run]["slow"] = bench.load(sim, run, slow_variant, slow_dir, 1, baseline=True)
    return out


def extrapolate(small: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    """Baseline on the large tenant from one on a smaller one: extract per request, normalize+load per row."""
    steps = small["steps"]
    per_request = steps["extract"]["seconds"] / max(1, small["requests"])
    per_record = (steps["normalize"]["seconds"] + steps["load"]["seconds"]) / max(1, small["records"])
    wall = per_request * large["requests"] + per_record * large["records"]
    return {**small, "wall_s": round(wall, 1), "requests": large["requests"], "records": large["records"],
            "variant": small["variant"] + f" (extrapolated from {small['tenant']})", "tenant": large["tenant"],
            "extrapolated": True, "peak_mb": None}


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


COLUMNS = ("tenant", "run", "variant", "wall s", "requests", "records", "rows/s", "peak MB",
           "extract s", "normalize s", "load s", "loader cpu s", "sim cpu s", "other cpu s", "load jobs")


def table(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        steps = r.get("steps", {})
        rate = r["records"] / r["wall_s"] if r.get("records") and r.get("wall_s") else None
        # File formats of the data tables' load jobs (dlt's own tables and merge SQL left out).
        jobs = ",".join(f for f, tables in r.get("job_formats", {}).items()
                        if f != "sql" and any(not t.startswith("_dlt") for t in tables)) or "-"
        lines.append((r["tenant"], r["run"], r["variant"], fmt(r["wall_s"]), fmt(r["requests"]), fmt(r["records"]),
                      fmt(rate, 0), fmt(r.get("peak_mb")), *(fmt(steps.get(s, {}).get("seconds"))
                                                             for s in ("extract", "normalize", "load")),
                      fmt(r.get("cpu_s")), fmt(r.get("sim_cpu_s")), fmt(r.get("other_cpu_s")), jobs))
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(COLUMNS)]
    out = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) if i < 3 else v.rjust(w) for i, (v, w) in enumerate(zip(line, widths)))
            for line in lines]
    return "\n".join(out)


def targets(main: dict[str, Any], scaled: dict[str, Any] | None, slow_initial: dict[str, Any] | None) -> list[str]:
    """The issue's targets, as figures (no pass/fail on time: the machine decides those)."""
    out = []
    fast = main["initial"]["fast"]
    if slow_initial:
        out.append(f"initial load vs sequential baseline: {slow_initial['wall_s'] / fast['wall_s']:.1f}x faster "
                   f"(target >= 10x){' [baseline extrapolated]' if slow_initial.get('extrapolated') else ''}")
    for run in ("initial", "nightly"):
        floor = main[run].get("floor")
        if floor:
            out.append(f"{run}: wall / fetch floor = {main[run]['fast']['wall_s'] / floor['wall_s']:.2f} "
                       f"(target <= 1.5)")
    out.append(f"peak memory, initial load: {fast['peak_mb']} MB (target < 1024)")
    if scaled:
        for run in ("initial", "nightly"):
            a, b = main[run]["fast"]["peak_mb"], scaled[run]["fast"]["peak_mb"]
            out.append(f"peak memory {run}, tenant x2 vs x1: {b} / {a} MB = {100 * (b / a - 1):+.0f}% (target <= +10%)")
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("small", "default", "large"), default="large")
    parser.add_argument("--scale", type=float, default=2.0,
                        help="also run on a tenant this many times as large, for memory growth (0: skip)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="latency the simulator adds to each request")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--workers", type=int, default=16, help="queries fetched at once (the source's workers)")
    parser.add_argument("--skip-baseline", action="store_true", help="no sequential baseline")
    parser.add_argument("--baseline-size", choices=("small", "default", "large"),
                        help="run the baseline on this smaller tenant and extrapolate (default: --size)")
    parser.add_argument("--skip-floor", action="store_true", help="no fetch floor")
    parser.add_argument("--workers-curve", default="",
                        help="comma-separated workers values for extra initial loads, e.g. 1,4,8,16")
    parser.add_argument("--growers", action="store_true",
                        help="also measure what the Catalog and the reader's seen ids hold (tracemalloc)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment for the load runs except the baseline, e.g. dlt settings "
                        "DATA_WRITER__DISABLE_COMPRESSION=true (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the DuckDB files and URL lists")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="certiverse-bench-"))
    bench = Bench(workdir, args.quiet, dict(item.split("=", 1) for item in args.env))
    report: dict[str, Any] = {"args": vars(args), "cpus": os.cpu_count(), "started": dt.datetime.now().isoformat()}
    same_size_baseline = not args.skip_baseline and args.baseline_size in (None, args.size)
    try:
        sim = Simulator(args.size, 1.0, args.latency_ms, args.page_size)
        report["tenant"] = dict(sim.info)
        try:
            main_runs = initial_and_nightly(bench, sim, args.workers, same_size_baseline, not args.skip_floor)
            if args.growers:
                report["growers"] = bench.child(sim, "growers", workers=args.workers,
                                                voucher_ids=sim.info["counts"]["vouchers"])
            for w in [int(x) for x in args.workers_curve.split(",") if x.strip()]:
                row = bench.load(sim, "initial", f"curve: workers={w}, parquet", str(workdir / f"curve-{w}"), w)
                if not args.skip_floor:
                    bench.floor(sim, row)
        finally:
            sim.close()
        slow_initial = main_runs["initial"].get("slow")
        if not args.skip_baseline and not same_size_baseline:
            small = Simulator(args.baseline_size, 1.0, args.latency_ms, args.page_size)
            try:
                small_runs = initial_and_nightly(bench, small, args.workers, True, False)
            finally:
                small.close()
            for run in ("initial", "nightly"):
                estimate = extrapolate(small_runs[run]["slow"], main_runs[run]["fast"])
                bench.rows.append(estimate)
            slow_initial = bench.rows[-2]
        scaled = None
        if args.scale and args.scale != 1.0:
            big = Simulator(args.size, args.scale, args.latency_ms, args.page_size)
            report["scaled_tenant"] = dict(big.info)
            try:
                scaled = initial_and_nightly(bench, big, args.workers, False, not args.skip_floor)
            finally:
                big.close()
        report["rows"] = bench.rows
        report["targets"] = targets(main_runs, scaled, slow_initial)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report["seconds"] = round(time.time() - started, 1)
    print(f"Certiverse loader benchmark: {args.size} tenant {report['tenant']['counts']}, "
          f"{args.latency_ms:g} ms latency a request, {os.cpu_count()} CPUs shared by loader, dlt and simulator"
          + (f"; load runs with {' '.join(args.env)}" if args.env else ""))
    print(table(bench.rows))
    print()
    for line in report["targets"]:
        print(line)
    if "growers" in report:
        print(f"memory growers on this tenant: {report['growers']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench-{args.size}-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"figures: {out.relative_to(ROOT)}" + (f"; work files kept in {workdir}" if args.keep else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
