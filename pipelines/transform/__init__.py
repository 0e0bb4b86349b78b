"""Building the marts: the dbt project in ``transforms/`` run in-process by dbt's runner.

``runner.py``: ``run_transforms`` (dbt run, then dbt test, on one manifest); ``profile.py``: the
dbt profile derived from the warehouse's configuration (``certiverse dbt-profile`` writes one
for dbt by hand); ``swap.py``: how readers never see a mix of two runs' marts;
``marts_doc.py``: docs/marts.md from the models' descriptions.
"""

from .runner import (
    TRANSFORMS_DIR,
    NodeResult,
    TransformError,
    TransformResult,
    api_date,
    release_duckdb,
    run_transforms,
    today_utc,
)

__all__ = ["TRANSFORMS_DIR", "NodeResult", "TransformError", "TransformResult", "api_date", "release_duckdb",
           "run_transforms", "today_utc"]
