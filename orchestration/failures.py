"""What an orchestrator does with a failed step: the project's exit code and one-line message, and whether
trying again can help.

The exit codes are the ``certiverse`` command's (``pipelines/cli/codes.py``). Worth retrying: the API
failing (4: a timeout, a 5xx that outlasted the client's own retries) and the warehouse failing or
staying locked (5: an analyst's connection that outlasted the lock wait). Not worth it: configuration (2)
and the token (3), which fail the same way until someone changes them, nor an interrupted run
(130/143: the orchestrator or an operator stopped it on purpose), nor an unexpected failure (1), which
needs a person.
"""

from __future__ import annotations

from ..pipelines.cli import EXIT_API, EXIT_DESTINATION, classify

RETRYABLE = frozenset({EXIT_API, EXIT_DESTINATION})


def describe(error: BaseException) -> tuple[int, str]:
    """The exit code the command would end with, and its one-line message."""
    return classify(error)


def worth_retrying(code: int) -> bool:
    """Whether a step that ended with exit code ``code`` may succeed if tried again unchanged."""
    return code in RETRYABLE
