"""Running a ``certiverse`` command as a child process, the way a scheduler runs it, and reading its outcome.

An orchestrator that runs the commands themselves (the Airflow DAG) gets exactly what cron and systemd
get: the run lock, the nightly plan, the counter check, the swap, clean stops on SIGTERM, the exit-code
contract and the one-line message on stderr. The child is this interpreter running the package's CLI
(``python -m certiverse_warehouse.pipelines.cli``), so it is the installed project whatever ``PATH`` says.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

CLI_MODULE = "certiverse_warehouse.pipelines.cli"
ERROR_PREFIX = "error: "  # the CLI's one-line message on stderr (pipelines/cli)
STOP_GRACE_SECONDS = 30.0  # a stopped command ends within seconds; past this it is killed


@dataclass(frozen=True)
class Outcome:
    """How a command ended: its exit code and, when it failed, its one-line message."""

    arguments: tuple[str, ...]
    exit_code: int
    message: str | None

    @property
    def command(self) -> str:
        return "certiverse " + " ".join(self.arguments)

    def describe(self) -> str:
        """``certiverse load exited 4: <the command's own line>``."""
        said = self.message or "no message (see the task's log)"
        return f"{self.command} exited {self.exit_code}: {said}"


class CommandRun:
    """One ``certiverse`` command in a child process: started at once, read line by line, stoppable."""

    def __init__(self, arguments: Sequence[str], *, env: Mapping[str, str] | None = None,
                 cwd: str | None = None) -> None:
        self.arguments = tuple(arguments)
        child_env = {**os.environ, **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", CLI_MODULE, *self.arguments], env=child_env, cwd=cwd,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, bufsize=1,
        )

    def wait(self, on_line: Callable[[str], None]) -> Outcome:
        """Pass every line the command prints to ``on_line`` until it ends; its outcome."""
        message = None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            on_line(line)
            if line.startswith(ERROR_PREFIX):
                message = line[len(ERROR_PREFIX):]
        return Outcome(self.arguments, self.process.wait(), message)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM, as systemd or Kubernetes would send it (the command stops cleanly, exit 143); killed if it
        is still there after ``grace`` seconds."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
