"""The dbt project that builds the marts, shipped inside the package as data.

Nothing here is Python: the file makes the folder a package, so that an installed
``certiverse`` finds the project with ``importlib.resources`` wherever pip put it.
"""
