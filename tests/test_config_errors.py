"""Bad configuration gets one clear line, the right exit code, and no retries."""

from __future__ import annotations

import httpx
import pytest
import respx

from certiverse_warehouse.pipelines.cli import EXIT_API, EXIT_AUTH, EXIT_CONFIG, main
from certiverse_warehouse.sources.certiverse.client import CertiverseClient, Query

BASE = "https://tenant.example.test"
PARTNERS = BASE + "/api/vouchers/partners"
RETRY_BUDGET = 0.5  # seconds
HTML = "<!DOCTYPE html><html><head><title>Sign in</title></head><body>" + "<p>Welcome to the portal</p>" * 400


def load(tmp_path, *extra: str) -> int:
    return main(["load", "--duckdb-file", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "p"), *extra])


@pytest.fixture
def api(monkeypatch):
    """Every request to the tenant goes to respx routes; the token and quick retries come from the environment."""
    monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", "tok")
    monkeypatch.setenv("SOURCES__CERTIVERSE__RETRY_BUDGET", str(RETRY_BUDGET))
    monkeypatch.setenv("SOURCES__CERTIVERSE__RETRY_BACKOFF", "0.01")
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.mark.parametrize("token", ["  tok", "tok\n", "\ttok \r\n"])
@respx.mock
def test_whitespace_around_a_token_is_stripped(token):
    route = respx.get(url__startswith=PARTNERS).mock(return_value=httpx.Response(200, json={"data": []}))
    with CertiverseClient(BASE, token) as client:
        assert list(client.pages(Query("partners"))) == [[]]
    assert route.calls[0].request.headers["Authorization"] == "Bearer tok"


@pytest.mark.parametrize("token", ["to\nk", "to k", "tok\x7f", "Bearer tok"])
def test_a_token_that_is_not_one_is_refused_once_with_the_auth_code(token, api, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", token)
    route = api.get(url__startswith=BASE).mock(return_value=httpx.Response(200, json={"data": []}))
    assert load(tmp_path, "--base-url", BASE) == EXIT_AUTH
    err = capsys.readouterr().err
    assert route.call_count == 0
    assert err.count("\n") == 1 and "token" in err and "retry" not in err


@pytest.mark.parametrize("path", ["/api/vouchers", "/api/vouchers/partners", "/certiverse", "/?x=1"])
def test_a_base_url_with_a_path_is_refused_naming_the_root(path, api, tmp_path, capsys):
    route = api.get(url__startswith=BASE).mock(return_value=httpx.Response(200, json={"data": []}))
    assert load(tmp_path, "--base-url", BASE + path) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert route.call_count == 0
    assert err.count("\n") == 1 and f"use {BASE}," in err


@pytest.mark.parametrize("status", [200, 404])
def test_a_server_answering_html_is_named_with_status_type_and_a_short_excerpt(status, api, tmp_path, capsys):
    route = api.get(url__startswith=PARTNERS).mock(
        return_value=httpx.Response(status, text=HTML, headers={"Content-Type": "text/html; charset=utf-8"}))
    assert load(tmp_path, "--base-url", BASE) == EXIT_API
    err = capsys.readouterr().err
    assert route.call_count == 1
    assert f"HTTP {status}, text/html; charset=utf-8: 'Sign in - Welcome to the portal" in err
    assert err.count("\n") == 1 and len(err) < 400 and "Welcome to the portal</p><p>Welcome" not in err


def test_a_proxy_error_page_is_retried_as_a_5xx_and_then_described_briefly(api, tmp_path, capsys):
    route = api.get(url__startswith=PARTNERS).mock(
        return_value=httpx.Response(502, text=HTML, headers={"Content-Type": "text/html"}))
    assert load(tmp_path, "--base-url", BASE) == EXIT_API
    err = capsys.readouterr().err.splitlines()
    assert route.call_count > 1
    assert (f"giving up after {RETRY_BUDGET:g}s of retries (retry_budget); last problem: HTTP 502, text/html: "
            "'Sign in - Welcome to the portal") in err[-1]
    assert len(err[-1]) < 400


def test_a_missing_base_url_is_one_line_and_dlts_explanation_needs_verbose(api, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SOURCES__CERTIVERSE__BASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no .dlt/config.toml here that could name one
    assert load(tmp_path) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith("error: no base URL") and err.count("\n") == 1
    assert "Environment Variables" not in err
    # -v: the same code, and dlt's list of where it looked
    assert main(["-v", "load", "--duckdb-file", str(tmp_path / "w.duckdb"),
                 "--pipelines-dir", str(tmp_path / "p")]) == EXIT_CONFIG
    verbose = capsys.readouterr().err
    assert "ConfigFieldMissingException" in verbose and "base_url" in verbose and "Environment Variables" in verbose
