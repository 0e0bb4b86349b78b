"""The planners on tenants shaped unlike ours (simulator.shape.GRID, small sizes), end to end.

Each shape: a first load, a simulated day, a nightly load. Both cost no more requests
than the naive plan, the first load ends equal to the API, the nightly one equal but
for settled vouchers (which may lag a rolling re-check). No ``as_of`` anywhere: "now"
is the API's Date header, and one shape's clock is months away from this machine's.
Also: activity while the reads are under way, and a clock months behind the loader's.
"""

from __future__ import annotations

import datetime as dt

import pytest

from benchmarks.grid import run_shape
from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.simulator import Tenant
from certiverse_warehouse.simulator.shape import GRID
from tests.helpers import RESOURCES, current_rows, differences

# The small tenant is ~20x smaller than the default one: caps and pages shrink with it, so that
# the cap bites and the plans split as they would at full size. Not below the largest purchase
# (1,000 vouchers), whose open vouchers no query can narrow further.
SMALL_CAP, PAGE_DIVISOR = 1_000, 5
NIGHTS = 7


def small(shape):
    return shape.with_(cap=min(shape.cap, SMALL_CAP), page_size=max(5, shape.page_size // PAGE_DIVISOR))


def settled_ids(pipeline, as_of: dt.datetime) -> set[str]:
    """Vouchers the warehouse holds as used, deactivated, or expired unused at ``as_of``."""
    return {vid for vid, row in current_rows(pipeline, "vouchers").items()
            if row["is_used"] or not row["is_active"] or row["expiration_date_utc"] < as_of}


def lagging(pipeline, tenant) -> set[str]:
    """Ids whose warehouse row differs from the API; no voucher missing or extra, other tables exact."""
    for resource in ("partners", "programs", "purchases"):
        assert differences(pipeline, resource, tenant.records(resource)) == [], resource
    problems = differences(pipeline, "vouchers", tenant.records("vouchers"), limit=100_000)
    assert not any("missing" in p or "not in the API" in p for p in problems), problems[:3]
    return {p.split()[1] for p in problems}


@pytest.mark.parametrize("shape", GRID, ids=lambda s: s.name)
def test_each_shape_costs_no_more_than_naive_and_ends_exact(shape, tmp_path, monkeypatch):
    checked = {}

    def check_before_nightly(pipeline, tenant):  # the warehouse after the first load, before the day
        assert lagging(pipeline, tenant) == set()
        checked["settled"] = settled_ids(pipeline, tenant.now())

    result = run_shape(small(shape), "small", tmp_path, nights=NIGHTS, after_full=check_before_nightly,
                       after_nightly=lambda pipeline, tenant: checked.update(behind=lagging(pipeline, tenant)))
    assert result["full"]["ours"] <= result["full"]["naive"], result["full"]
    assert result["nightly"]["ours"] <= result["nightly"]["naive"], result["nightly"]
    assert checked["behind"] <= checked["settled"], sorted(checked["behind"] - checked["settled"])[:3]


def test_the_grid_holds_at_least_eight_shapes_unlike_each_other_and_the_default():
    from certiverse_warehouse.simulator.shape import DEFAULT

    knobs = [{k: v for k, v in vars(s).items() if k != "name"} for s in GRID]
    assert len(GRID) >= 8
    assert all(k != {k2: v for k2, v in vars(DEFAULT).items() if k2 != "name"} for k in knobs)
    assert len({tuple(sorted(k.items())) for k in knobs}) == len(GRID)


def _load(pipeline, app, url, **options):
    return run_load(pipeline, {"base_url": url, "api_token": app.token, "record_cap": app.cap,
                               "recheck_nights": NIGHTS, **options})


def test_activity_during_reads_loses_nothing_and_the_next_quiet_run_ends_exact(simulator, tmp_path):
    shape = small(GRID[0]).with_(name="busy", activity_every_pages=2, page_size=20)
    tenant = Tenant.generate("small", seed=5, shape=shape)
    pipeline = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    with simulator(tenant) as (app, url):
        existed = {v["id"] for v in tenant.records("vouchers")}
        _load(pipeline, app, url)
        first = dict(app.activity)
        assert existed <= set(current_rows(pipeline, "vouchers")), "the first run lost vouchers"
        tenant.advance_day()
        existed = {v["id"] for v in tenant.records("vouchers")}
        _load(pipeline, app, url)
        assert existed <= set(current_rows(pipeline, "vouchers")), "the nightly run lost vouchers"
        settled = settled_ids(pipeline, tenant.now())
        app.activity_every_pages = 0  # the tenant goes quiet
        _load(pipeline, app, url)
    assert first["vouchers_used"] > 0 and first["vouchers_deactivated"] > 0, first
    assert lagging(pipeline, tenant) <= settled


def test_a_nightly_run_with_the_apis_clock_months_behind_the_loaders_ends_exact(simulator, tmp_path):
    months_behind = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=150)
    shape = small(GRID[0]).with_(name="clock_behind", start_day=months_behind, page_size=20)
    tenant = Tenant.generate("small", seed=42, shape=shape)
    pipeline = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    with simulator(tenant) as (app, url):
        _load(pipeline, app, url)
        for night in range(1, 4):
            settled = settled_ids(pipeline, tenant.now())
            activity = tenant.advance_day()
            _load(pipeline, app, url)
            behind = lagging(pipeline, tenant)
            assert behind <= settled, f"night {night}: open vouchers lag: {sorted(behind - settled)[:3]}"
    assert activity["vouchers_used"] and activity["vouchers_assigned"]
    state = pipeline.pipeline.state["sources"]["certiverse"]["resources"]["vouchers"]
    assert state["mode"] == "nightly"
    assert dt.datetime.fromisoformat(state["read_at"]).date() == tenant.today


def test_full_refresh_on_a_shape_ends_equal_to_the_api(simulator, tmp_path):
    tenant = Tenant.generate("small", seed=42, shape=small(GRID[1]))
    pipeline = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    with simulator(tenant) as (app, url):
        _load(pipeline, app, url)
        tenant.advance_day()
        run_load(pipeline, {"base_url": url, "api_token": app.token, "record_cap": app.cap}, full_refresh=True)
    for resource in RESOURCES:
        assert differences(pipeline, resource, tenant.records(resource)) == [], resource
