"""The home-made SQL runner the dbt project replaced, taken from git, for measuring against.

``pipelines/transform.py`` ran ``transforms/*/*.sql`` itself until commit
``BASELINE_COMMIT``. To keep the before/after comparison honest after that
runner was deleted, this module takes the runner and its SQL from that commit
(``git archive``) into a temporary folder and runs them unchanged. Nothing here
is used outside ``benchmarks/``.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# main before issue 12: the last commit with the home-made runner
BASELINE_COMMIT = "9490ef8"


class BaselineRunner:
    """The old runner and its models, unpacked from git."""

    def __init__(self, commit: str = BASELINE_COMMIT) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="certiverse-baseline-"))
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", commit, "pipelines/transform.py", "transforms"],
            check=True, capture_output=True,
        ).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(self.folder, filter="data")
        self.module = _load(self.folder / "pipelines" / "transform.py")

    def run(self, pipeline: Any, as_of: dt.date) -> dict[str, float]:
        """Build the old models (same names) on the pipeline's destination; seconds per model."""
        return self.module.run_transforms(pipeline, as_of, directory=self.folder / "transforms")


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("certiverse_baseline_transform", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


__all__ = ["BASELINE_COMMIT", "BaselineRunner"]
