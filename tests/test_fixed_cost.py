"""What the quick commands import: ``--help`` and ``--version`` start in a fraction of a second only
while dlt, dbt, pyarrow, pandas and DuckDB stay out of them (together they take seconds to import);
the run summary and ``status`` do without pandas (it is for notebooks: ``reporting.mart``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("dlt", "dbt", "pyarrow", "pandas", "duckdb", "numpy", "httpx")

# Runs in a fresh interpreter: the command, then which of HEAVY it imported, as JSON on the last line.
PROBE = """
import json, sys
from certiverse_warehouse.pipelines.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def imported_by(*args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("option", ["--help", "--version"])
def test_help_and_version_import_no_heavy_library(option: str) -> None:
    assert imported_by(option) == []


def test_the_run_summary_and_status_modules_do_not_import_pandas() -> None:
    code = ("import sys\n"
            "import certiverse_warehouse.pipelines.reporting.summary\n"
            "import certiverse_warehouse.pipelines.reporting.status\n"
            "assert 'dlt' in sys.modules  # the probe imported what status needs: it can see an import\n"
            "print('pandas' in sys.modules)\n"
            "from certiverse_warehouse.pipelines.reporting import mart\n"
            "print('pandas' in sys.modules, callable(mart))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["False", "True", "True"]
