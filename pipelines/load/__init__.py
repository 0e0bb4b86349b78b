"""Running a load: the pipeline and its destination, local state against the warehouse, the nightly
snapshot, the extract and load, and the counter check after it.

``pipeline.py``: ``make_pipeline`` (DuckDB or Postgres), ``duckdb_file``; ``warehouse.py``: the
warehouse as the truth of what was loaded; ``snapshot.py``: what the warehouse holds, for the
nightly plan; ``counters.py``: every purchase checked against the API's counters; ``run.py``:
``run_load``, which chains them.
"""

from .pipeline import (
    DATASET_NAME,
    PIPELINE_NAME,
    RESOURCES,
    duckdb_file,
    make_destination,
    make_pipeline,
    vouchers_state,
)
from .run import LoadResult, rows_written, run_load, table_counts

__all__ = ["DATASET_NAME", "PIPELINE_NAME", "RESOURCES", "LoadResult", "duckdb_file", "make_destination",
           "make_pipeline", "rows_written", "run_load", "table_counts", "vouchers_state"]
