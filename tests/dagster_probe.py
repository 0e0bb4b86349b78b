"""Run inside the Dagster environment by tests/test_dagster.py: reads what Dagster recorded, prints JSON.

    python tests/dagster_probe.py runs            # every run in $DAGSTER_HOME: status, materializations,
                                                  # check evaluations, step starts and failures
    python tests/dagster_probe.py describe        # the definitions: assets, their deps, checks, jobs, schedules
    python tests/dagster_probe.py freshness HOURS # the freshness job, in process, with max_age_hours=HOURS
"""

from __future__ import annotations

import json
import sys
from typing import Any

MODULE = "certiverse_warehouse.orchestration.dagster_definitions"


def runs() -> list[dict[str, Any]]:
    from dagster import DagsterEventType, DagsterInstance

    instance = DagsterInstance.get()
    out = []
    for run in reversed(instance.get_runs()):  # oldest first
        logs = instance.all_logs(run.run_id)
        events = [e.dagster_event for e in logs if e.dagster_event is not None]
        checks, materialized, failures, starts = [], {}, [], []
        for event in events:
            data = event.event_specific_data
            if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
                checks.append({"asset": data.asset_key.to_user_string(), "check": data.check_name,
                               "passed": data.passed})
            elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
                metadata = {k: getattr(v, "value", str(v)) for k, v in data.materialization.metadata.items()}
                materialized[data.materialization.asset_key.to_user_string()] = metadata
            elif event.event_type == DagsterEventType.STEP_START:
                starts.append(event.step_key)
            elif event.event_type == DagsterEventType.STEP_FAILURE:
                user = data.user_failure_data
                failures.append({"step": event.step_key,
                                 "description": user.description if user else None,
                                 "metadata": {k: getattr(v, "value", str(v)) for k, v in
                                              (user.metadata if user else {}).items()},
                                 "error": data.error.message if data.error else None})
        out.append({"run_id": run.run_id, "job": run.job_name, "status": run.status.value, "checks": checks,
                    "materialized": materialized, "step_starts": starts, "failures": failures})
    return out


def describe() -> dict[str, Any]:
    import importlib

    repository = importlib.import_module(MODULE).defs.get_repository_def()
    graph = repository.asset_graph
    return {
        "assets": {key.to_user_string(): sorted(k.to_user_string() for k in graph.get(key).parent_keys)
                   for key in graph.get_all_asset_keys() if graph.get(key).is_materializable},
        "groups": {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()
                   if graph.get(key).is_materializable},
        "checks": sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys),
        "jobs": sorted(job.name for job in repository.get_all_jobs() if not job.name.startswith("__")),
        "schedules": {s.name: s.cron_schedule for s in repository.schedule_defs},
    }


def freshness(hours: float) -> dict[str, Any]:
    import importlib

    defs = importlib.import_module(MODULE).defs
    job = defs.resolve_job_def("certiverse_freshness")
    result = job.execute_in_process(
        run_config={"resources": {"certiverse": {"config": {"max_age_hours": hours}}}}, raise_on_error=False)
    return {"success": result.success,
            "checks": [{"check": e.check_name, "passed": e.passed, "metadata":
                        {k: getattr(v, "value", str(v)) for k, v in e.metadata.items()}}
                       for e in result.get_asset_check_evaluations()]}


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "runs":
        print(json.dumps(runs()))
    elif command == "describe":
        print(json.dumps(describe()))
    elif command == "freshness":
        print(json.dumps(freshness(float(sys.argv[2]))))
    else:
        raise SystemExit(f"unknown command {command!r}")
