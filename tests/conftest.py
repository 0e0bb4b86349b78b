"""Shared test set-up: offline, no telemetry, state in temporary folders."""

from __future__ import annotations

import os

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

from contextlib import contextmanager  # noqa: E402
from typing import Any, Iterator  # noqa: E402

import pytest  # noqa: E402

from simulator import SimulatorApp, Tenant, serve  # noqa: E402


@pytest.fixture(scope="session")
def small_tenant_template() -> Tenant:
    """The small tenant, generated once; tests that mutate it take `small_tenant` instead."""
    return Tenant.generate("small", seed=42)


@pytest.fixture
def small_tenant() -> Tenant:
    """A fresh small tenant a test may advance or change."""
    return Tenant.generate("small", seed=42)


@pytest.fixture
def simulator():
    """Start simulators on loopback for the test: `with simulator(tenant, cap=...) as (app, url)`."""

    @contextmanager
    def start(tenant: Tenant, **options: Any) -> Iterator[tuple[SimulatorApp, str]]:
        app = SimulatorApp(tenant, **options)
        with serve(app) as url:
            yield app, url

    return start
