"""The Airflow DAG ``certiverse_nightly``: load, transform and publish, each a ``certiverse`` command.

Each task runs the command in a child process (``commands.py``) and acts on its exit code: 0 is success;
4 (the API failed) and 5 (the warehouse failed or stayed locked) fail the try, and Airflow retries it
after ``retry_delay``; any other code (2 configuration, 3 token, 7 marts not built, 1 unexpected, 130/143
stopped) fails the task at once, since trying again unchanged fails again (``failures.py``). The task's
error is the command's own one-line message. A task Airflow stops (a timeout, "mark failed") sends the
command SIGTERM, which it answers with a clean stop.

``transform`` builds and tests the marts with publishing switched off for that task
(``PUBLISH__ENABLED=false``), since ``publish`` is a task of its own: a failed publish can be retried
without building the marts again. Configuration is dlt's, as for the commands (``.dlt/`` in ``cwd``,
environment variables such as ``SOURCES__CERTIVERSE__API_TOKEN``); ``arguments`` adds what the command line
would (``--duckdb-file``, ``--pipelines-dir``, ``--destination``).

A DAG file in Airflow's dags folder makes the DAG (docs/scheduling/airflow_certiverse_nightly.py)::

    from certiverse_warehouse.orchestration.airflow_dag import certiverse_nightly

    dag = certiverse_nightly()
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping, Sequence

from airflow.sdk import DAG, BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from .commands import CommandRun
from .failures import worth_retrying

DAG_ID = "certiverse_nightly"
SCHEDULE = "15 3 * * *"  # 03:15 UTC, as the cron and systemd recipes


class CertiverseCommandFailed(AirflowException):
    """A command ended with an exit code worth retrying (4, 5): Airflow tries the task again."""


class CertiverseOperator(BaseOperator):
    """Runs ``certiverse <command> <arguments>``; its exit code decides the task's fate (module docstring)."""

    template_fields = ("arguments",)
    ui_color = "#e8f1fb"

    def __init__(self, *, command: str, arguments: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 cwd: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.command = command
        self.arguments = list(arguments)
        self.env = dict(env or {})
        self.cwd = cwd
        self._run: CommandRun | None = None

    def execute(self, context: Any) -> int:
        self._run = CommandRun([self.command, *self.arguments], env=self.env, cwd=self.cwd)
        outcome = self._run.wait(self.log.info)
        if outcome.exit_code == 0:
            return 0
        if worth_retrying(outcome.exit_code):
            raise CertiverseCommandFailed(outcome.describe())
        raise AirflowFailException(outcome.describe())

    def on_kill(self) -> None:
        if self._run is not None:
            self._run.stop()


def certiverse_nightly(
    dag_id: str = DAG_ID,
    *,
    schedule: str | None = SCHEDULE,
    arguments: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    retries: int = 2,
    retry_delay: dt.timedelta = dt.timedelta(minutes=5),
    start_date: dt.datetime = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
) -> DAG:
    """The DAG: ``load >> transform >> publish``, one run at a time, no catch-up of missed nights (a nightly
    load reads what changed since the last one, whenever that was).

    ``arguments``: what every command gets after its name (``["--duckdb-file", "/data/warehouse.duckdb"]``);
    ``env``: variables added to the commands' environment; ``cwd``: where they run (where ``.dlt/`` is).
    """
    default_args = {"retries": retries, "retry_delay": retry_delay}
    with DAG(dag_id, schedule=schedule, start_date=start_date, catchup=False, max_active_runs=1,
             default_args=default_args, tags=["certiverse"],
             description="Certiverse vouchers: load (nightly plan), build and test the marts, publish the copy "
                         "readers open") as dag:
        common = {"arguments": list(arguments), "cwd": cwd}
        load = CertiverseOperator(task_id="load", command="load", env=env, **common)
        transform = CertiverseOperator(task_id="transform", command="transform",
                                       env={**(env or {}), "PUBLISH__ENABLED": "false"}, **common)
        publish = CertiverseOperator(task_id="publish", command="publish", env=env, **common)
        load >> transform >> publish
    return dag
