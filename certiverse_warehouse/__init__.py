"""certiverse-warehouse: Certiverse voucher data into DuckDB or Postgres with dlt, and marts built with dbt.

The distribution installs one import package, ``certiverse_warehouse``. Its sub-packages are the
repository's top-level folders, mapped under this name by ``[tool.setuptools.package-dir]`` in
``pyproject.toml`` so that nothing installs generic top-level names (``pipelines``, ``sources``)
into a shared environment:

* ``certiverse_warehouse.sources.certiverse``: the dlt source (``sources/certiverse/``);
* ``certiverse_warehouse.pipelines``: the command and the steps of a run (``pipelines/``);
* ``certiverse_warehouse.transforms``: the dbt project, shipped as package data (``transforms/``);
* ``certiverse_warehouse.simulator``: the simulated API (``simulator/``).
"""

from __future__ import annotations

DISTRIBUTION = "certiverse-warehouse"


def version() -> str:
    """The installed distribution's version (``certiverse --version``)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version(DISTRIBUTION)
    except PackageNotFoundError:  # imported from a checkout that was never installed
        return "0+unknown"
