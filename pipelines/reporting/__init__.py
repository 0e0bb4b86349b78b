"""What the project tells people: the run summary, headline sentences, the health check, the HTML
report and its charts, the marts as DataFrames, and the progress line.

``summary.py``: what a run prints (and its JSON); ``headlines.py``: three sentences from the marts;
``status.py``: ``certiverse status``; ``report.py`` and ``charts.py``: ``certiverse report``;
``frames.py``: ``mart()`` for notebooks; ``progress.py``: the line a long run prints.
"""

from .frames import mart
from .headlines import headlines

__all__ = ["headlines", "mart"]
