"""Building the marts: the dbt project in ``transforms/`` run in-process by dbt's runner.

``runner.py``: ``run_transforms`` (dbt run, then dbt test, on one manifest); ``profile.py``: the
dbt profile derived from the pipeline's dlt configuration (``certiverse dbt-profile`` writes one
for dbt by hand); ``swap.py``: how readers never see a mix of two runs' marts;
``marts_doc.py``: docs/marts.md from the models' descriptions.
"""

from .runner import (
    DEFAULT_TIMEZONE,
    TRANSFORMS_DIR,
    TransformError,
    api_date,
    dbt_vars,
    dbt_work_dir,
    release_duckdb,
    reporting_timezone,
    run_transforms,
)

__all__ = ["DEFAULT_TIMEZONE", "TRANSFORMS_DIR", "TransformError", "api_date", "dbt_vars", "dbt_work_dir",
           "release_duckdb", "reporting_timezone", "run_transforms"]
