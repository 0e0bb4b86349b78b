"""Every run checks purchases' counters against the warehouse and repairs what disagrees."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from certiverse_warehouse.pipelines.cli import EXIT_OK, main
from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.simulator.model import ACTIVE, USED
from tests.helpers import current_rows, differences

CAP, PAGE = 400, 20
# So many nights in the rolling re-check that tonight's share of settled vouchers is next to nothing:
# what the nightly plan does not re-read must then come through the counter check.
LONG_RECHECK = 100_000


@pytest.fixture
def warehouse(tmp_path):
    return RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))


def load(pipeline, app, url, tenant):
    config = {"base_url": url, "api_token": app.token, "record_cap": CAP, "recheck_nights": LONG_RECHECK}
    return run_load(pipeline, config, as_of=tenant.now())


def disagreeing_by_the_api(tenant) -> set[str]:
    """Purchases whose own counters do not add up to their vouchers, as the API serves both."""
    vouchers = Counter(v["voucherPurchaseCode"] for v in tenant.records("vouchers"))
    used = Counter(v["voucherPurchaseCode"] for v in tenant.records("vouchers") if v["isUsed"])
    out = set()
    for p in tenant.records("purchases"):
        code = p["voucherPurchaseCode"]
        if (p["quantityUsed"] != used[code] or p["quantityRemaining"] != vouchers[code] - used[code]
                or (p["status"] == "Complete" and p["quantity"] != vouchers[code])):
            out.add(code)
    return out


def use(tenant, v: int) -> str:
    """Voucher ``v`` is (re-)activated and used today, as the API records it; returns its purchase code."""
    vs = tenant.vouchers
    now = tenant.now_ts()
    if vs.person[v] < 0:
        vs.person[v], vs.assigned[v] = 0, now - 3600
    vs.flags[v] = ACTIVE | USED
    vs.used_at[v] = now - 60
    tenant.deactivated.discard(v)
    purchase = tenant.purchases[vs.purchase[v]]
    purchase.used_count += 1
    tenant.version += 1
    return purchase.code


def test_a_settled_voucher_reactivated_and_used_is_repaired_in_the_same_run(small_tenant, simulator, warehouse):
    vs = small_tenant.vouchers
    with simulator(small_tenant, cap=CAP, page_size=PAGE) as (app, url):
        load(warehouse, app, url, small_tenant)
        deactivated = min(v for v in small_tenant.deactivated
                          if small_tenant.purchases[vs.purchase[v]].status == "Complete")
        voucher_id = small_tenant.voucher_record(deactivated)["id"]
        code = use(small_tenant, deactivated)
        result = load(warehouse, app, url, small_tenant)
    assert warehouse.pipeline.state["sources"]["certiverse"]["resources"]["vouchers"]["mode"] == "nightly"
    # In `repaired` only if the nightly plan itself left the purchase disagreeing.
    assert code in result.counter_check.repaired and code in result.counter_check.reread
    assert current_rows(warehouse, "vouchers")[voucher_id]["is_used"] is True
    assert differences(warehouse, "vouchers", small_tenant.records("vouchers")) == []


def test_disagreements_the_api_confirms_are_remembered_and_reread_only_when_their_counters_move(
    small_tenant, simulator, warehouse
):
    own_accounting = disagreeing_by_the_api(small_tenant)
    assert own_accounting, "the small tenant has no lagging counters: nothing to remember"
    vs = small_tenant.vouchers
    with simulator(small_tenant, cap=CAP, page_size=PAGE) as (app, url):
        first = load(warehouse, app, url, small_tenant)
        second = load(warehouse, app, url, small_tenant)
        # An open voucher of a lagging purchase is used: the plan reads it, the lag stays, the counters move.
        code = sorted(own_accounting)[0]
        purchase = small_tenant.purchase_by_code[code]
        open_voucher = next(v for v in small_tenant.purchases[purchase].voucher_indexes() if vs.flags[v] == ACTIVE
                            and vs.expires[v] > small_tenant.now_ts())
        use(small_tenant, open_voucher)
        third = load(warehouse, app, url, small_tenant)
    # The first run read every voucher afresh: nothing to re-read, every disagreement is the API's own.
    assert first.counter_check.reread == [] and first.counter_check.repaired == []
    assert set(first.counter_check.api_accounting) == own_accounting
    assert first.counter_check.checked == len(small_tenant.records("purchases"))
    assert second.counter_check.reread == [] and set(second.counter_check.api_accounting) == own_accounting
    assert third.counter_check.reread == [code] and set(third.counter_check.api_accounting) == own_accounting


def test_run_summary_and_status_report_the_counter_check(small_tenant_template, simulator, tmp_path, monkeypatch,
                                                         capsys):
    args = ["--duckdb-file", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "p")]
    own_accounting = disagreeing_by_the_api(small_tenant_template)
    with simulator(small_tenant_template) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        assert main(["load", "--json", "--base-url", url, *args]) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert summary["counter_check"] == {
        "purchases_checked": len(small_tenant_template.records("purchases")),
        "purchases_reread": 0,
        "purchases_repaired": 0,
        "purchases_api_accounting": len(own_accounting),
    }
    assert main(["status", "--json", *args]) == EXIT_OK
    status = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in status["counter_check"].items() if k != "checked_at"} == summary["counter_check"]
    assert main(["status", *args]) == EXIT_OK
    assert f"{len(own_accounting):,} differ by the API's own accounting" in capsys.readouterr().out
