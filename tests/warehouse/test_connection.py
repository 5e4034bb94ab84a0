"""dbt's environment: connection variables derived from PostgreSQL URLs, and a build's days (pure
functions, no database)."""

from __future__ import annotations

import os
from datetime import date

import pytest

from metrify_assets.warehouse.connection import FIRST_DAY, LAST_DAY, dbt_env, dbt_env_from_url, environment


def test_tcp_url() -> None:
    env = dbt_env_from_url("postgresql://metrify:s%40cret@db.internal:6543/warehouse")
    assert env == {
        "METRIFY_PG_HOST": "db.internal",
        "METRIFY_PG_PORT": "6543",
        "METRIFY_PG_USER": "metrify",
        "METRIFY_PG_PASSWORD": "s@cret",
        "METRIFY_PG_DBNAME": "warehouse",
    }


def test_tcp_url_defaults_port_and_database() -> None:
    env = dbt_env_from_url("postgres://analyst@localhost")
    assert env["METRIFY_PG_PORT"] == "5432"
    assert env["METRIFY_PG_DBNAME"] == "analyst"  # libpq: database defaults to the user name
    assert env["METRIFY_PG_PASSWORD"] == ""


def test_pgserver_unix_socket_url() -> None:
    env = dbt_env_from_url("postgresql://postgres:@/postgres?host=/tmp/pytest-of-me/pg0")
    assert env["METRIFY_PG_HOST"] == "/tmp/pytest-of-me/pg0"
    assert env["METRIFY_PG_USER"] == "postgres"
    assert env["METRIFY_PG_DBNAME"] == "postgres"
    assert env["METRIFY_PG_PORT"] == "5432"


def test_query_parameters_override_netloc() -> None:
    env = dbt_env_from_url("postgresql://u:p@ignored:1/db?host=/run/pg&port=5433&user=other")
    assert (env["METRIFY_PG_HOST"], env["METRIFY_PG_PORT"], env["METRIFY_PG_USER"]) == (
        "/run/pg",
        "5433",
        "other",
    )


def test_rejects_other_schemes() -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        dbt_env_from_url("mysql://root@localhost/db")


def test_environment_restores_previous_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRIFY_PG_HOST", "before")
    monkeypatch.delenv("METRIFY_PG_PORT", raising=False)
    with environment({"METRIFY_PG_HOST": "during", "METRIFY_PG_PORT": "1"}):
        assert os.environ["METRIFY_PG_HOST"] == "during"
        assert os.environ["METRIFY_PG_PORT"] == "1"
    assert os.environ["METRIFY_PG_HOST"] == "before"
    assert "METRIFY_PG_PORT" not in os.environ


def test_a_command_without_days_blanks_days_exported_in_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild (--full-refresh), the docs or the freshness check run with dbt_env(url): days left in
    the shell from a by-hand build must not narrow them (a full refresh of a mart would keep only those
    days, and days archived out of `ops` cannot be rebuilt)."""
    monkeypatch.setenv(FIRST_DAY, "2026-03-28")
    monkeypatch.setenv(LAST_DAY, "2026-03-28")
    url = "postgresql://u:p@db:5432/w"
    with environment(dbt_env(url)):
        assert (os.environ[FIRST_DAY], os.environ[LAST_DAY]) == ("", "")
        assert os.environ["METRIFY_PG_HOST"] == "db"
    assert os.environ[FIRST_DAY] == "2026-03-28"
    days = dbt_env(url, (date(2026, 3, 29), date(2026, 3, 30)))
    assert (days[FIRST_DAY], days[LAST_DAY]) == ("2026-03-29", "2026-03-30")
