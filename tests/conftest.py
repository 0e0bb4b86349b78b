"""Shared test set-up: offline, no telemetry, state in temporary folders."""

from __future__ import annotations

import os

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

from contextlib import contextmanager  # noqa: E402
from typing import Any, Iterator  # noqa: E402

import pytest  # noqa: E402

from certiverse_warehouse.simulator import SimulatorApp, Tenant, serve  # noqa: E402


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


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server for the session: env CERTIVERSE_TEST_POSTGRES (a DSN), else a throwaway one.

    Without a server the Postgres tests skip locally and fail in CI (CI=true).
    A server this fixture started is stopped, and its files deleted, at session end.
    """
    from tests.postgres import PostgresUnavailable, configured_or_started

    try:
        server = configured_or_started()
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"CI needs a PostgreSQL server: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")
    yield server
    server.stop()
