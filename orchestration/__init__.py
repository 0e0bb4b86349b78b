"""Running the nightly load from an orchestrator (docs/orchestrators.md).

``steps.py``: the load, the marts, the published copy and the checks, called in-process as the
``certiverse`` commands call them (the run lock, the nightly plan, the counter check, the swap);
``failures.py``: a failure's exit code, its one-line message and whether it is worth retrying,
shared by both orchestrators; ``dbt_manifest.py``: the dbt project's manifest, which dagster-dbt
needs before it can describe the models; ``dagster_definitions.py``: the Dagster code location
(``[tool.dagster] module_name`` in pyproject.toml); ``airflow_dag.py``: the Airflow DAG
``certiverse_nightly``, which runs the commands themselves and acts on their exit codes.

Only ``dagster_definitions.py`` imports Dagster and only ``airflow_dag.py`` imports Airflow, so the
core install needs neither (extras ``[dagster]`` and ``[airflow]``).
"""
