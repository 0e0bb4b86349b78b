"""transforms/ as a dbt project in its own right: dbt itself with the project's profile, the
descriptions, the package analysts install, and SQL that other warehouses parse.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlglot
import yaml

from certiverse_warehouse.pipelines.cli import main
from certiverse_warehouse.pipelines.context import RunContext, Warehouse
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.pipelines.transform import TRANSFORMS_DIR, marts_doc, release_duckdb
from certiverse_warehouse.pipelines.transform import profile as dbt_profile
from certiverse_warehouse.simulator import SimulatorApp, Tenant, serve

DBT = str(Path(sys.executable).with_name("dbt"))
MARTS = sorted(path.stem for path in (TRANSFORMS_DIR / "models" / "marts").glob("*.sql"))
DIALECTS = ("snowflake", "bigquery", "databricks")


def load(tenant: Tenant, pipeline: Any) -> Any:
    app = SimulatorApp(tenant)
    with serve(app) as url:
        run_load(pipeline, {"base_url": url, "api_token": app.token})
    return pipeline


def dbt_vars(tenant: Tenant) -> str:
    return f"{{as_of: '{tenant.today.isoformat()}'}}"


def dbt_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """dbt as an analyst runs it, from the virtualenv's console script."""
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    return subprocess.run([DBT, *args, "--no-send-anonymous-usage-stats"], capture_output=True, text=True,
                          cwd=cwd, env=env)


def dbt_in_process(*args: str) -> Any:
    """dbt's programmatic runner, for the tests that need its results (faster than a new process)."""
    from dbt.cli.main import dbtRunner

    try:
        result = dbtRunner().invoke([*args, "--no-send-anonymous-usage-stats", "--log-level", "warn"])
    finally:
        release_duckdb()
    assert result.success, result.exception or [r.message for r in result.result.results if r.status != "success"]
    return result


def relation_columns(pipeline: Any, schema: str) -> dict[str, list[str]]:
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "select table_name, column_name from information_schema.columns where table_schema = %s "
            "order by table_name, ordinal_position",
            schema,
        )
    columns: dict[str, list[str]] = {}
    for name, column in rows:
        columns.setdefault(name, []).append(column)
    return columns


def rows(pipeline: Any, relation: str) -> list[tuple]:
    with pipeline.sql_client() as client:
        return sorted(tuple(r) for r in client.execute_sql(f"select * from {relation}"))


# -- dbt with the project's profile ----------------------------------------------------------


@pytest.fixture(scope="module")
def tenant(small_tenant_template: Tenant) -> Tenant:
    return small_tenant_template


@pytest.fixture(scope="module")
def dbt_built_duckdb(tenant: Tenant, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The small tenant loaded into DuckDB, then `dbt build` run by hand with the project's profile."""
    root = tmp_path_factory.mktemp("dbt_duckdb")
    pipeline = load(tenant, RunContext.from_config("duckdb", str(root / "w.duckdb"), pipelines_dir=str(root / "pd")))
    assert main(["dbt-profile", "--duckdb-file", str(root / "w.duckdb"), "--profiles-dir", str(root / "profile")]) == 0
    built = dbt_cli("build", "--project-dir", str(TRANSFORMS_DIR), "--profiles-dir", str(root / "profile"),
                    "--target-path", str(root / "target"), "--log-path", str(root / "logs"), "--vars", dbt_vars(tenant))
    assert built.returncode == 0, built.stdout[-3000:]
    return pipeline, root


def test_dbt_build_with_the_project_profile_passes_on_duckdb(dbt_built_duckdb: tuple[Any, Path]) -> None:
    pipeline, root = dbt_built_duckdb
    assert set(MARTS) <= set(relation_columns(pipeline, "certiverse"))
    freshness = dbt_cli("source", "freshness", "--project-dir", str(TRANSFORMS_DIR), "--profiles-dir",
                        str(root / "profile"), "--target-path", str(root / "target"), "--log-path", str(root / "logs"))
    assert freshness.returncode == 0, freshness.stdout[-3000:]
    assert "PASS freshness of certiverse._dlt_loads" in freshness.stdout


@pytest.mark.postgres
def test_dbt_build_with_the_project_profile_passes_on_postgres(
    tenant: Tenant, postgres_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres_server.create_database("certiverse_dbt"))
    pipeline = load(tenant, RunContext.from_config("postgres", pipelines_dir=str(tmp_path / "pd")))
    assert main(["dbt-profile", "--destination", "postgres", "--profiles-dir", str(tmp_path / "profile")]) == 0
    built = dbt_cli("build", "--project-dir", str(TRANSFORMS_DIR), "--profiles-dir", str(tmp_path / "profile"),
                    "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
                    "--vars", dbt_vars(tenant))
    assert built.returncode == 0, built.stdout[-3000:]
    assert "ERROR=0" in built.stdout and "WARN=0" in built.stdout
    assert set(MARTS) <= set(relation_columns(pipeline, "certiverse"))


def test_every_mart_column_has_a_description(dbt_built_duckdb: tuple[Any, Path]) -> None:
    pipeline, _ = dbt_built_duckdb
    described = marts_doc.model_properties(TRANSFORMS_DIR / "models")
    built = relation_columns(pipeline, "certiverse")
    for mart in MARTS:
        columns = described[mart]["columns"]
        assert [c["name"] for c in columns] == built[mart], f"{mart}: schema.yml lists other columns"
        assert all(c.get("description", "").strip() for c in columns), mart
        assert described[mart].get("description", "").startswith("One row per"), f"{mart}: state the grain"


def test_docs_marts_md_is_generated_from_the_dbt_descriptions() -> None:
    assert marts_doc.MARTS_DOC.read_text() == marts_doc.render(), "run `python -m certiverse_warehouse.pipelines.transform.marts_doc`"


def test_the_profile_is_written_privately_and_only_its_path_is_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    secret = "pg-secret-" + os.urandom(4).hex()
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", f"postgresql://someone:{secret}@127.0.0.1:5/db")
    assert main(["dbt-profile", "--destination", "postgres", "--profiles-dir", str(tmp_path / "p")]) == 0
    printed = capsys.readouterr()
    assert secret not in printed.out + printed.err
    path = tmp_path / "p" / "profiles.yml"
    assert printed.out.strip() == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    outputs = yaml.safe_load(path.read_text())["certiverse"]["outputs"]
    assert outputs["dataset"]["password"] == secret and outputs["dataset"]["schema"] == "certiverse"
    assert outputs["build"]["schema"] == "certiverse_build"


def test_the_duckdb_profile_takes_the_load_memory_limit_and_no_extension(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DESTINATION__DUCKDB__MEMORY_LIMIT", "64MB")
    warehouse = Warehouse.from_config("duckdb", str(tmp_path / "w.duckdb"))
    output = dbt_profile.profile(warehouse)["certiverse"]["outputs"]["dataset"]
    assert output["path"] == str(tmp_path / "w.duckdb")
    assert output["settings"]["memory_limit"] == "64MB"
    assert output["settings"]["autoinstall_known_extensions"] == "false"
    assert "extensions" not in output and output["keep_open"] is False


# -- a package for analysts' own projects ----------------------------------------------------


def test_an_analysts_project_installs_the_marts_as_a_local_package_and_builds_them(
    dbt_built_duckdb: tuple[Any, Path], tenant: Tenant, tmp_path: Path
) -> None:
    pipeline, root = dbt_built_duckdb
    project = tmp_path / "analytics"
    project.mkdir()
    (project / "dbt_project.yml").write_text(yaml.safe_dump({
        "name": "analytics", "version": "1.0.0", "config-version": 2, "profile": "analytics",
        # where dlt loaded the raw tables; the marts go to the analyst's own schema
        "vars": {"certiverse_schema": "certiverse", "as_of": tenant.today.isoformat()},
    }))
    (project / "packages.yml").write_text(yaml.safe_dump({"packages": [{"local": str(TRANSFORMS_DIR)}]}))
    profile = yaml.safe_load((root / "profile" / "profiles.yml").read_text())["certiverse"]["outputs"]["dataset"]
    (project / "profiles.yml").write_text(yaml.safe_dump(
        {"analytics": {"target": "dev", "outputs": {"dev": {**profile, "schema": "analytics"}}}}
    ))
    common = ["--project-dir", str(project), "--profiles-dir", str(project)]
    dbt_in_process("deps", *common)
    result = dbt_in_process("build", *common)
    built = {r.node.name for r in result.result.results if r.node.resource_type == "model"}
    assert set(MARTS) <= built
    for mart in MARTS:
        assert rows(pipeline, f"analytics.{mart}") == rows(pipeline, f"certiverse.{mart}"), mart


# -- portable SQL ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled_models(dbt_built_duckdb: tuple[Any, Path], tenant: Tenant) -> dict[str, str]:
    """Every model's and test's SQL as dbt compiles it: name -> SQL."""
    _, root = dbt_built_duckdb
    target = root / "compiled_target"
    dbt_in_process("compile", "--project-dir", str(TRANSFORMS_DIR), "--profiles-dir", str(root / "profile"),
                   "--target-path", str(target), "--log-path", str(root / "logs"), "--vars", dbt_vars(tenant))
    compiled = {path.stem: path.read_text() for path in (target / "compiled" / "certiverse").rglob("*.sql")}
    assert {p.stem for p in (TRANSFORMS_DIR / "models").rglob("*.sql")} <= set(compiled)
    assert {p.stem for p in (TRANSFORMS_DIR / "tests").glob("*.sql")} <= set(compiled)
    return compiled


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_compiled_model_and_test_parses_in_other_warehouses_dialects(compiled_models: dict[str, str], dialect: str) -> None:
    failed = {}
    for name, sql in compiled_models.items():
        try:
            [statement] = sqlglot.parse(sql, read=dialect)
            assert statement is not None and statement.find(sqlglot.exp.Select) is not None
        except (sqlglot.errors.ParseError, AssertionError, ValueError) as exc:
            failed[name] = str(exc).splitlines()[0]
    assert not failed, f"sqlglot {sqlglot.__version__} ({dialect}): {failed}"


def test_as_of_must_be_a_date(dbt_built_duckdb: tuple[Any, Path], tmp_path: Path) -> None:
    _, root = dbt_built_duckdb
    compiled = dbt_cli("compile", "--select", "voucher_status", "--project-dir", str(TRANSFORMS_DIR),
                       "--profiles-dir", str(root / "profile"), "--target-path", str(tmp_path / "t"),
                       "--log-path", str(tmp_path / "logs"), "--vars", "{as_of: 'yesterday'}")
    assert compiled.returncode != 0 and "as_of must be a YYYY-MM-DD date" in compiled.stdout

