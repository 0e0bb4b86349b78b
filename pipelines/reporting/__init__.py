"""What the project tells people: the run summary, headline figures, the health check, the HTML
report and its charts, the marts as DataFrames, and the progress line. Every figure about vouchers and
money is selected from a mart (the dbt project computes them; nothing here groups or sums); `status` adds
the loader's own bookkeeping (loads, packages, rows, the counter check).

``summary.py``: what a run prints (and its JSON); ``headlines.py``: the headline figures (the row of the mart
``headline_figures``) and their sentences;
``status.py``: ``certiverse status``; ``report.py`` and ``charts.py``: ``certiverse report``;
``frames.py``: ``mart()`` for notebooks; ``progress.py``: the line a long run prints.
"""

from typing import Any

from .headlines import Headlines, headlines

__all__ = ["Headlines", "headlines", "mart"]


def __getattr__(name: str) -> Any:
    """``mart`` on first use: it needs pandas (1-2 s to import), which no command but a notebook's uses;
    the run summary (``summary.py``) is imported by every load and must not pay for it."""
    if name == "mart":
        from .frames import mart

        return mart
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
