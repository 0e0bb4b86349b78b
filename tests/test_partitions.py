"""A partition must cover everything (issue 17, item 7), end to end against the simulator's knobs.

Partners over the cap are read by their three documented states; a partner in a state
the reference does not list is in none of them. Purchases are listed by program name;
a program the program list no longer shows is in no such listing. Either way the read
checks what it got against a total it can know and reads the rest another way.
"""

from __future__ import annotations

import logging

from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.simulator import Tenant
from certiverse_warehouse.simulator.history import ODD_PARTNER_STATE, RETIRED
from certiverse_warehouse.simulator.shape import WorldShape
from tests.helpers import differences

PARTNER_CAP = 10  # the small tenant's 12 partners are over it, each status under it: read by status


def _context(tmp_path):
    return RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))


def test_partners_in_a_state_no_status_filter_returns_are_loaded(simulator, tmp_path, caplog):
    tenant = Tenant.generate("small", seed=42, shape=WorldShape("odd_partners", odd_partner_states=2))
    odd = [p.name for p in tenant.partners if p.status == ODD_PARTNER_STATE]
    assert odd and all(p.purchases for p in tenant.partners if p.status == ODD_PARTNER_STATE)
    context = _context(tmp_path)
    with simulator(tenant) as (app, url), caplog.at_level(logging.WARNING):
        app.endpoint_caps["partners"] = PARTNER_CAP
        run_load(context, {"base_url": url, "api_token": app.token})
    for resource in ("partners", "purchases", "vouchers"):
        assert differences(context, resource, tenant.records(resource)) == [], resource
    assert f"missed {len(odd)} partners the purchases name" in caplog.text


def test_purchases_of_a_program_the_program_list_no_longer_shows_are_loaded(simulator, tmp_path, caplog):
    tenant = Tenant.generate("small", seed=42, shape=WorldShape("retired", retired_programs=1))
    (retired,) = [p for p in tenant.programs if p.status == RETIRED]
    listed = [p.name for p in tenant.programs if p.status != RETIRED]
    assert not any(name.casefold() in retired.name.casefold() for name in listed)  # no listed name reaches it
    context = _context(tmp_path)
    config = {"base_url": "", "api_token": ""}
    with simulator(tenant) as (app, url), caplog.at_level(logging.WARNING):
        config.update(base_url=url, api_token=app.token)
        run_load(context, config)
        # The first run finds the purchases by their vouchers: those are read whole, and loaded.
        assert differences(context, "vouchers", tenant.records("vouchers")) == []
        assert "purchases the purchase listing did not return hold vouchers" in caplog.text
        tenant.advance_day()
        run_load(context, config)
    # The next run checks the listing against what the warehouse holds, and reads those purchases by code.
    assert differences(context, "purchases", tenant.records("purchases")) == []
    assert "purchases the warehouse holds were not listed by name; read by code" in caplog.text
