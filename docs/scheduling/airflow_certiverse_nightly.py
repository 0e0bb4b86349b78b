"""The Airflow DAG certiverse_nightly: copy this file into Airflow's dags folder (docs/orchestrators.md).

The environment Airflow's workers run in needs `pip install 'certiverse-warehouse[airflow]'` (or the
project installed beside Airflow) and the project's configuration: SOURCES__CERTIVERSE__BASE_URL and
SOURCES__CERTIVERSE__API_TOKEN (or .dlt/ in `cwd`), and a lasting place for the warehouse and dlt's state.
"""

from certiverse_warehouse.orchestration.airflow_dag import certiverse_nightly

dag = certiverse_nightly(
    # what every command gets after its name, as on the command line, e.g.
    # arguments=["--duckdb-file", "/var/lib/certiverse/warehouse.duckdb",
    #            "--pipelines-dir", "/var/lib/certiverse/state"],
    # cwd="/opt/certiverse",  # where .dlt/config.toml and .dlt/secrets.toml are
)
