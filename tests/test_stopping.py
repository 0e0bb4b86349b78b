"""SIGINT and SIGTERM at each point of a real ``certiverse run``: it ends within seconds with 130 or 143
and one line saying what was interrupted, publishes nothing half-way, releases its lock, and the next
run ends exact. On DuckDB and on Postgres; a second signal ends it at once.

How each point is reached is in tests/stopper.py; the bound on the time to exit is generous (the machine
is shared), the times themselves are measured by ``python -m benchmarks.stopping``.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from certiverse_warehouse.pipelines.cli import main
from certiverse_warehouse.pipelines.cli.stopping import GRACE_SECONDS, STARTING
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.pipelines.transform import swap
from tests.helpers import RESOURCES, differences
from tests.stopper import (
    AFTER_A_RUN,
    DUCKDB_HOLDS,
    POSTGRES_HOLDS,
    Stopped,
    Warehouse,
    leftovers,
    published,
    start,
    stop_at,
)

EXIT_BOUND_S = 20.0  # "within a few seconds", on a shared, slow machine
MARTS = ("voucher_utilization", "voucher_expiry")


def assert_stopped(stopped: Stopped, signum: int, doing: str, bound: float = EXIT_BOUND_S) -> None:
    """Ended by the signal, in time, with its exit code and one line naming what it was doing."""
    name = signal.Signals(signum).name
    assert stopped.code == 128 + signum, stopped.stderr[-3000:]
    assert stopped.seconds < bound, f"{stopped.seconds:.1f} s from {name} to exit"
    assert len(stopped.lines) == 1, stopped.stderr[-3000:]
    assert stopped.lines[0].startswith(f"certiverse: interrupted by {name} while {doing};"), stopped.lines
    assert "Traceback" not in stopped.stderr, stopped.stderr[-3000:]


def assert_lock_released(warehouse: Warehouse) -> None:
    lock_file = warehouse.context().lock_file
    lock_file.parent.mkdir(parents=True, exist_ok=True)  # a run stopped while starting made none
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if the stopped run still held it


def run_again(warehouse: Warehouse, url: str, token: str, monkeypatch, transform: bool) -> None:
    """The next run, in this process: a load (and with ``transform`` the whole `certiverse run`)."""
    if transform:
        for key, value in warehouse.env(token).items():
            monkeypatch.setenv(key, value)
        assert main(["run", "--base-url", url, *warehouse.args()]) == 0
    else:
        run_load(warehouse.context(), {"base_url": url, "api_token": token})


def assert_exact(warehouse: Warehouse, tenant) -> None:
    """The warehouse holds what the simulated API holds, and nothing is left pending."""
    context = warehouse.context()
    assert not context.pipeline.has_pending_data
    for resource in RESOURCES:
        problems = differences(context, resource, tenant.records(resource), limit=10_000)
        if warehouse.dsn:  # the one known difference on Postgres: COPY loads an empty string as NULL
            problems = [p for p in problems if not p.endswith("notes: api='' warehouse=None")]
        assert problems == [], (resource, problems[:3])


def marts(warehouse: Warehouse) -> dict[str, str]:
    with warehouse.pipeline().sql_client() as client:
        return swap.relations(client, client.dataset_name)


# -- DuckDB ----------------------------------------------------------------------------------------

# What the line says at each point.
DOING = {
    "starting": STARTING,
    "planning": "planning: reading partners, programs and purchases",
    "reading": "reading vouchers from the API",
    "loading": "loading into the warehouse",
    "counter check": "checking purchases against the API's counters",
    "dbt": "building the marts (dbt)",
    "publishing": "publishing the copy for readers",
}
# Each signal at several points (how the run is held at each: tests/stopper.py).
DUCKDB_POINTS = [
    ("starting", signal.SIGTERM), ("planning", signal.SIGINT), ("reading", signal.SIGTERM),
    ("loading", signal.SIGINT), ("counter check", signal.SIGTERM), ("dbt", signal.SIGINT),
    ("publishing", signal.SIGTERM),
]


@pytest.mark.slow
@pytest.mark.parametrize("point, signum", DUCKDB_POINTS, ids=[p[0] for p in DUCKDB_POINTS])
def test_a_stopped_duckdb_run_ends_at_once_publishes_nothing_and_the_next_run_is_exact(
    point, signum, small_tenant, simulator, tmp_path, monkeypatch
):
    warehouse = Warehouse(tmp_path)
    after_a_run = point in AFTER_A_RUN["duckdb"]
    with simulator(small_tenant) as (app, url):
        if after_a_run:
            run_again(warehouse, url, app.token, monkeypatch, transform=True)
        before = published(warehouse)
        stopped = stop_at(DUCKDB_HOLDS[point], signum, warehouse, app, url)
        assert_stopped(stopped, signum, DOING[point])
        assert_lock_released(warehouse)
        assert published(warehouse) == before and leftovers(tmp_path) == []
        if after_a_run:  # the marts of the last good run, put back
            present = marts(warehouse)
            assert all(present.get(name) == "table" for name in MARTS), present
            assert not [name for name in present if name.endswith(swap.PREVIOUS_SUFFIX)], present
        run_again(warehouse, url, app.token, monkeypatch, transform=after_a_run)
    assert_exact(warehouse, small_tenant)
    if after_a_run:
        assert published(warehouse)[0] != before[0]


@pytest.mark.slow
def test_a_second_signal_ends_the_run_at_once(small_tenant, simulator, tmp_path, monkeypatch):
    warehouse = Warehouse(tmp_path)
    with simulator(small_tenant) as (app, url):
        # A load statement that never ends: after the first signal the run would wait for it.
        run = start(warehouse, url, app.token, hold="load-forever")
        run.wait_for(run.holding, "the hold at load")
        run.process.send_signal(signal.SIGINT)
        time.sleep(1)  # a person pressing Ctrl-C again
        stopped = run.stop(signal.SIGINT)
        # At once: well before the first signal's grace would have ended it.
        assert stopped.code == 130 and stopped.seconds < GRACE_SECONDS / 2, stopped.stderr[-3000:]
        assert [line.split(";")[0] for line in stopped.lines] == [
            "certiverse: interrupted by SIGINT while loading into the warehouse"]
        assert "a second signal: exiting at once" in stopped.lines[0]
        assert_lock_released(warehouse)
        run_again(warehouse, url, app.token, monkeypatch, transform=False)
    assert_exact(warehouse, small_tenant)


# -- Postgres --------------------------------------------------------------------------------------


POSTGRES_POINTS = [("reading", signal.SIGINT), ("loading", signal.SIGTERM), ("counter check", signal.SIGINT),
                   ("dbt", signal.SIGTERM)]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("point, signum", POSTGRES_POINTS, ids=[p[0] for p in POSTGRES_POINTS])
def test_a_stopped_postgres_run_ends_at_once_and_the_next_run_is_exact(
    point, signum, small_tenant, simulator, tmp_path, monkeypatch, postgres_server
):
    warehouse = Warehouse(tmp_path, postgres_server.create_database(f"stop_{point.replace(' ', '_')}"))
    with simulator(small_tenant) as (app, url):
        if point in AFTER_A_RUN["postgres"]:
            run_again(warehouse, url, app.token, monkeypatch, transform=point == "dbt")
        stopped = stop_at(POSTGRES_HOLDS[point], signum, warehouse, app, url)
        assert_stopped(stopped, signum, DOING[point])
        assert_lock_released(warehouse)
        if point == "dbt":  # the dataset keeps the marts of the last good run
            present = marts(warehouse)
            assert all(present.get(name) == "table" for name in MARTS)
        run_again(warehouse, url, app.token, monkeypatch, transform=point == "dbt")
    assert_exact(warehouse, small_tenant)


# -- the pieces, on their own ----------------------------------------------------------------------


def frames_of(*functions: str):
    """The innermost frame of a stack of calls to these ``module.function``s, outermost first. A function
    of ``importlib._bootstrap`` gets the file name Python gives its frozen import machinery."""
    calls = []
    for qualified in functions:
        module, function = qualified.rsplit(".", 1)
        filename = f"<frozen {module}>" if module.startswith("importlib") else module.replace(".", "/") + ".py"
        namespace = {"__name__": module, "sys": sys}
        source = f"def {function}(inner):\n    return inner[0](inner[1:]) if inner else sys._getframe()\n"
        exec(compile(source, filename, "exec"), namespace)
        calls.append(namespace[function])
    return calls[0](calls[1:])


@pytest.mark.parametrize("stack, doing", [
    (("certiverse_warehouse.pipelines.cli.commands.cmd_run", "certiverse_warehouse.pipelines.transform.runner._invoke",
      "dbt.task.runnable.execute_nodes"), "building the marts (dbt)"),
    (("certiverse_warehouse.pipelines.load.run.run_load", "certiverse_warehouse.pipelines.load.run._check_counters",
      "dlt.load.load.run"), "checking purchases against the API's counters"),
    (("certiverse_warehouse.pipelines.load.run.run_load", "dlt.pipeline.pipeline.run",
      "certiverse_warehouse.sources.certiverse.catalog.purchase_pages",
      "certiverse_warehouse.sources.certiverse.reader.read_all"), "planning: reading partners, programs and purchases"),
    (("certiverse_warehouse.pipelines.load.run.run_load", "certiverse_warehouse.pipelines.locks.retry_when_locked",
      "certiverse_warehouse.pipelines.load.run._after_load"), "recording the load's figures"),
    (("certiverse_warehouse.pipelines.cli.commands.cmd_run",), None),
    (("certiverse_warehouse.pipelines.cli.main", "argparse.parse_args"), STARTING),
], ids=["dbt", "counter check", "planning", "figures", "between steps", "parsing arguments"])
def test_what_was_interrupted_is_told_by_the_most_specific_step_on_the_stack(stack, doing):
    from certiverse_warehouse.pipelines.cli.stopping import describe

    assert describe(frames_of(*stack)) == doing


def test_a_signal_while_modules_load_is_told_as_starting():
    from certiverse_warehouse.pipelines.cli.stopping import describe

    # The frames inside an import say nothing about the step: dlt's load module is only being imported.
    assert describe(frames_of("certiverse_warehouse.pipelines.cli.commands._load", "importlib._bootstrap._load",
                              "dlt.load.load.exec_module")) == STARTING


DROPPED_IN_A_CALLBACK = """
import os, signal, weakref
from certiverse_warehouse.pipelines.cli.stopping import Interrupted, stop_on_signals

class Thing:
    pass

def callback(ref):
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(100_000):  # the handler runs here, in a callback whose exceptions Python drops
        pass

got_to = "start"
with stop_on_signals() as stop:
    try:
        thing = Thing()
        ref = weakref.ref(thing, callback)
        del thing  # the callback runs now
        got_to = "past the callback"
        for _ in range(10_000_000):  # ordinary code: the interruption comes here
            pass
        got_to = "the end"
    except Interrupted as exc:
        print(got_to, "interrupted", exc.signum, stop.signum, flush=True)
    else:
        print("went on to", got_to, flush=True)
"""


def test_an_interruption_python_drops_in_a_callback_is_raised_again():
    import subprocess

    done = subprocess.run([sys.executable, "-c", DROPPED_IN_A_CALLBACK], capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()  # where the interruption came: after the callback, never past the loop
    assert len(lines) == 1 and lines[0].endswith(f"interrupted {signal.SIGTERM} {signal.SIGTERM}"), (
        done.stdout, done.stderr)
    assert not lines[0].startswith("the end")
    assert "Exception ignored" not in done.stderr


def test_signals_held_reach_the_handler_once_the_block_has_run():
    from certiverse_warehouse.pipelines.publishing.atomic import signals_held

    seen: list[tuple[str, int]] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(("handler", signum)))
    try:
        with signals_held():
            signal.raise_signal(signal.SIGTERM)
            seen.append(("block", 0))
        assert seen == [("block", 0), ("handler", signal.SIGTERM)]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_publish_removes_what_a_publish_ended_at_once_left_only(tmp_path):
    import subprocess

    from certiverse_warehouse.pipelines.publishing.atomic import remove_leftovers, scratch_path, version_dir

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    target, folder = tmp_path / "w_published.duckdb", tmp_path / "w_parquet"
    own = scratch_path(target)  # this process: publishing now
    left = [own.with_name(own.name.replace(str(os.getpid()), gone)),
            Path(f"{own.with_name(own.name.replace(str(os.getpid()), gone))}.wal"),
            scratch_path(version_dir(folder, "20261201T000000Z")).with_name(
                f"..w_parquet.20261201T000000Z.building-{gone}")]
    for path in (own, *left[:2]):
        path.write_text("half")
    left[2].mkdir()
    (left[2] / "vouchers.parquet").write_text("half")
    removed = remove_leftovers(target) + remove_leftovers(folder)
    assert sorted(removed) == sorted(left)
    assert own.exists() and not any(path.exists() for path in left)
