"""What the project tells people: the run summary, headline figures, the health check, the HTML
report and its charts, the marts as DataFrames, and the progress line. Every figure about vouchers and
money is selected from a mart (the dbt project computes them; nothing here groups or sums); `status` adds
the loader's own bookkeeping (loads, packages, rows, the counter check).

``summary.py``: what a run prints (and its JSON); ``headlines.py``: the headline figures (the row of the mart
``headline_figures``) and their sentences;
``status.py``: ``certiverse status``; ``report.py`` and ``charts.py``: ``certiverse report``;
``frames.py``: ``mart()`` for notebooks; ``progress.py``: the line a long run prints.
"""

from .frames import mart
from .headlines import Headlines, headlines

__all__ = ["Headlines", "headlines", "mart"]
