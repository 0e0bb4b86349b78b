"""Shared test set-up: offline, no telemetry, state in temporary folders."""

from __future__ import annotations

import os

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
