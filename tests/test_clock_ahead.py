"""A wrong clock loses no changes: "now" is the earlier of the API's Date and this machine's clock."""

from __future__ import annotations

import datetime as dt
import re

from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.pipelines.reporting.status import format_status, pipeline_status
from certiverse_warehouse.pipelines.reporting.summary import CommandSummary, format_summary
from certiverse_warehouse.simulator import Tenant, WorldShape
from tests.helpers import RESOURCES, current_rows, differences

AHEAD = dt.timedelta(days=400)  # past every open voucher's expiry
PAGE = 20


def test_an_api_clock_far_ahead_misses_no_change_to_open_vouchers_and_is_reported(simulator, tmp_path):
    # The tenant lives on this machine's day (the truth); only the API's Date header is wrong.
    tenant = Tenant.generate("small", seed=42, shape=WorldShape(start_day=dt.datetime.now(dt.timezone.utc).date()))
    pipeline = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    with simulator(tenant, page_size=PAGE, date_offset=AHEAD) as (app, url):
        run_load(pipeline, {"base_url": url, "api_token": app.token})
        rows = current_rows(pipeline, "vouchers")
        open_before = {vid for vid, row in rows.items()
                       if row["is_active"] and not row["is_used"] and row["expiration_date_utc"] > tenant.now()}
        activity = tenant.advance_day()
        nightly = run_load(pipeline, {"base_url": url, "api_token": app.token})
    assert activity["vouchers_used"] and activity["vouchers_assigned"] and activity["vouchers_deactivated"]
    state = pipeline.pipeline.state["sources"]["certiverse"]["resources"]["vouchers"]
    assert state["mode"] == "nightly"
    for resource in ("partners", "programs", "purchases"):
        assert differences(pipeline, resource, tenant.records(resource)) == []
    problems = differences(pipeline, "vouchers", tenant.records("vouchers"), limit=100_000)
    # Vouchers open at the last run are re-read every night: none of them may lag (settled ones may, until
    # the rolling re-check reaches them).
    assert [p for p in problems if p.split()[1] in open_before or "missing" in p] == []
    # The tenant's day ends at 23:59:59: its Date is up to a day (and one more after advance_day) past AHEAD.
    note = re.compile(r"Clocks: the API's clock is 40[0-2]\.\d days ahead of this machine's")
    assert note.search(format_summary(CommandSummary("load", nightly.seconds, nightly.phases, load=nightly)))
    assert note.search(format_status(pipeline_status(pipeline)))
