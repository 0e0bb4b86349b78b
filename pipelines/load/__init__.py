"""Running a load: local state against the warehouse, the nightly snapshot, the extract and load, and the
counter check after it.

``pipeline.py``: the resources, file formats and the vouchers resource's state; ``warehouse.py``: the
warehouse as the truth of what was loaded; ``snapshot.py``: what the warehouse holds, for the nightly
plan; ``counters.py``: every purchase checked against the API's counters; ``run.py``: ``run_load``,
which chains them. The run context (``pipelines/context.py``) says which warehouse.
"""

from .pipeline import FILE_FORMATS, RESOURCES, vouchers_state
from .run import LoadResult, rows_written, run_load, table_counts

__all__ = ["FILE_FORMATS", "RESOURCES", "LoadResult", "rows_written", "run_load", "table_counts",
           "vouchers_state"]
