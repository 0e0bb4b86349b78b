"""One measured scenario, run in a fresh process so its peak memory is its own.

``python -m benchmarks.scenario SPEC.json`` reads a spec written by
``benchmarks.run`` and writes the figures to ``spec["result"]``. Kinds:

* ``load``: the project's ``run_load`` on DuckDB (first run: everything; later
  runs in the same ``workdir``: the nightly plan). ``baseline`` empties
  ``FILE_FORMATS`` so dlt falls back to its default ``insert_values``; together
  with ``workers=1`` that is the sequential baseline on the same code path.
  Every URL requested is written to ``spec["urls"]`` for the fetch floor.
* ``floor``: download those URLs with a pool of ``workers`` threads and one
  httpx client, and do nothing with the bodies.
* ``growers``: what the known memory growers hold on this tenant (catalog dicts,
  the reader's seen ids), with tracemalloc.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

PIPELINE_NAME = "bench"


class RssSampler:
    """Samples this process's resident set every ``interval`` seconds (wall clock, kB)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), rss_kb()))
            self._stop.wait(self.interval)

    def peak_mb(self, start: float, end: float) -> float | None:
        inside = [kb for t, kb in self.samples if start <= t <= end]
        return round(max(inside) / 1024, 1) if inside else None


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def usage() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_mb": round(own.ru_maxrss / 1024, 1), "cpu_s": round(own.ru_utime + own.ru_stime, 2)}


def record_urls(sink: list[str]) -> None:
    """Make the source's client note every request it sends (retries included)."""
    import certiverse_warehouse.sources.certiverse as package
    from certiverse_warehouse.sources.certiverse.client import CertiverseClient

    class RecordingClient(CertiverseClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._http.event_hooks["request"].append(lambda request: sink.append(str(request.url)))

    package.CertiverseClient = RecordingClient  # certiverse_source looks the name up when called


def job_formats(info: Any) -> dict[str, list[str]]:
    """Tables of the completed load jobs by file format: proves which loader file format was really used."""
    formats: dict[str, set[str]] = {}
    for package in info.load_packages if info else []:
        for job in package.jobs.get("completed_jobs", []):
            file = job.job_file_info
            formats.setdefault(file.file_format, set()).add(file.table_name)
    return {f: sorted(tables) for f, tables in sorted(formats.items())}


def run_load_scenario(spec: dict[str, Any]) -> dict[str, Any]:
    import certiverse_warehouse.pipelines.load as load
    import certiverse_warehouse.pipelines.load.pipeline as settings
    from certiverse_warehouse.pipelines.context import RunContext

    urls: list[str] = []
    record_urls(urls)
    if spec["baseline"]:
        # dlt's default file format for DuckDB, for every table: left to itself dlt would write
        # the vouchers' Arrow tables as parquet anyway.
        settings.FILE_FORMATS["duckdb"] = "insert_values"
    workdir = Path(spec["workdir"])
    context = RunContext.from_config("duckdb", str(workdir / "bench.duckdb"),
                                     pipelines_dir=str(workdir / "pipelines"), pipeline_name=PIPELINE_NAME)
    config = {"base_url": spec["base_url"], "api_token": spec["token"], "workers": spec["workers"]}
    with RssSampler() as sampler:
        started = time.perf_counter()
        result = load.run_load(context, config, as_of=dt.datetime.fromisoformat(spec["as_of"]))
        wall = time.perf_counter() - started
    # dlt's steps by the load's phases (seconds; the peak is the run's, below)
    phases = result.phases
    steps: dict[str, dict[str, float | None]] = {
        step: {"seconds": round(phases.get(phase, 0.0), 2)}
        for step, phase in (("extract", "read"), ("normalize", "normalize"), ("load", "load"))
    }
    steps["before_run"] = {"seconds": round(phases.get("align", 0.0) + phases.get("snapshot", 0.0), 2)}
    with context.sql_client() as client:
        duckdb_memory_limit = client.execute_sql("select current_setting('memory_limit')")[0][0]
    Path(spec["urls"]).write_text("\n".join(urls))
    return {
        "wall_s": round(wall, 2),
        "requests": result.requests.total(),
        "responses": result.requests.as_dict(),
        "records": sum(result.requests.records.values()),
        "records_by_endpoint": dict(result.requests.records),
        "rows_normalized": sum(result.extracted.values()),
        "steps": steps,
        "job_formats": job_formats(result.info),
        "table_rows": result.rows,
        "duckdb_memory_limit": duckdb_memory_limit,
        "start_rss_mb": round(sampler.samples[0][1] / 1024, 1) if sampler.samples else None,
        **usage(),
    }


def run_floor_scenario(spec: dict[str, Any]) -> dict[str, Any]:
    urls = [u for u in Path(spec["urls"]).read_text().splitlines() if u]
    workers = spec["workers"]
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    # The same connection limits as CertiverseClient's defaults.
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    with httpx.Client(headers={"Authorization": f"Bearer {spec['token']}"}, limits=limits, timeout=30) as client:

        def fetch(url: str) -> None:
            response = client.get(url)
            response.read()
            with lock:
                statuses[response.status_code] += 1

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(fetch, urls):
                pass
        wall = time.perf_counter() - started
    return {"wall_s": round(wall, 2), "requests": len(urls), "statuses": dict(statuses), **usage()}


def run_growers_scenario(spec: dict[str, Any]) -> dict[str, Any]:
    """Bytes held by the Catalog's dicts and by the reader's seen ids (SeenIds if present, else a set)."""
    import tracemalloc

    from certiverse_warehouse.sources.certiverse.client import CertiverseClient
    from certiverse_warehouse.sources.certiverse.plans import Catalog

    out: dict[str, Any] = {}
    with CertiverseClient(spec["base_url"], spec["token"]) as client:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        catalog = Catalog(client, workers=spec["workers"])
        purchases = catalog.purchases()
        out["catalog_mb"] = round((tracemalloc.get_traced_memory()[0] - before) / 2**20, 1)
        out["catalog_purchases"] = len(purchases)
    ids = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(spec["voucher_ids"])]  # uuid-shaped, like the tenant's
    for name in ("set", "SeenIds"):
        seen: Any
        if name == "set":
            seen = set()
        else:
            try:
                from certiverse_warehouse.sources.certiverse.reader import SeenIds
            except ImportError:
                continue
            seen = SeenIds()
        before = tracemalloc.get_traced_memory()[0]
        for start in range(0, len(ids), 100):
            page = [{"id": i} for i in ids[start:start + 100]]
            if name == "set":
                seen.update(r["id"] for r in page)
            else:
                seen.fresh(page, "id")
        # A set keeps the id strings alive after their records are gone: count them as its cost.
        strings = sum(sys.getsizeof(i) for i in ids) if name == "set" else 0
        out[f"seen_{name}_mb"] = round((tracemalloc.get_traced_memory()[0] - before + strings) / 2**20, 1)
        del seen
    tracemalloc.stop()
    out["voucher_ids"] = len(ids)
    return out


KINDS = {"load": run_load_scenario, "floor": run_floor_scenario, "growers": run_growers_scenario}


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    result = KINDS[spec["kind"]](spec)
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
