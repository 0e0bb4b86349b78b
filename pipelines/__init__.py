"""Entry points, a sub-package each, named for the job.

``cli``: the ``certiverse`` command. ``load``: running a load (the pipeline, local state against
the warehouse, the nightly snapshot, the counter check). ``transform``: building the marts with
dbt. ``publishing``: the copy readers open. ``reporting``: what the project tells people (the run
summary, headlines, status, the HTML report, DataFrames, the progress line). ``locks``: who may
touch the warehouse when. ``purchase``: buying $0 vouchers.
"""
