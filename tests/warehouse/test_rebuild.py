"""`metrify warehouse rebuild`: dbt's full refresh of a selection, against real PostgreSQL and dbt.

The week of `test_marts_survive_cleanup.py` is built, its two oldest days deleted from `ops` as the
lifecycle deletes them; then the plan's promise is checked against what a full rebuild does: the
incremental marts it names lose those days, and no other does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
from typer.testing import CliRunner, Result

from metrify_assets.cli.main import app as cli
from metrify_assets.resources import PostgresResource
from metrify_assets.warehouse.rebuild import make_plan, trimmed_inputs
from metrify_assets.warehouse.results import node_result
from tests.warehouse.test_dbt_build import failures, run_dbt_build
from tests.warehouse.test_marts_survive_cleanup import ARCHIVED_LAST, archived_rows, clean_up, load

TRIMMED = frozenset({"ops.meter_readings", "ops.vee_days"})


def manifest() -> dict[str, Any]:
    """ops.meter_readings (trimmed) and ops.meters (not) -> stg (view) -> fct_a (incremental) ->
    fct_b (incremental) -> rollup (table); a snapshot of ops.meter_readings -> dim (incremental)."""

    def model(name: str, materialized: str) -> dict[str, Any]:
        return {"name": name, "resource_type": "model", "config": {"materialized": materialized}}

    nodes = {
        "model.p.stg": model("stg", "view"),
        "model.p.fct_a": model("fct_a", "incremental"),
        "model.p.fct_b": model("fct_b", "incremental"),
        "model.p.rollup": model("rollup", "table"),
        "model.p.dim": model("dim", "incremental"),
        "model.p.registry": model("registry", "incremental"),
        "snapshot.p.snap": {
            "name": "snap",
            "resource_type": "snapshot",
            "config": {"materialized": "snapshot"},
        },
        "seed.p.codes": {"name": "codes", "resource_type": "seed", "config": {"materialized": "seed"}},
        "test.p.not_null_fct_a": {"name": "not_null_fct_a", "resource_type": "test", "config": {}},
    }
    sources = {
        "source.p.ops.meter_readings": {
            "source_name": "ops",
            "name": "meter_readings",
            "identifier": "meter_readings",
        },
        "source.p.ops.meters": {"source_name": "ops", "name": "meters", "identifier": "meters"},
    }
    parents = {
        "model.p.stg": ["source.p.ops.meter_readings", "seed.p.codes"],
        "model.p.fct_a": ["model.p.stg"],
        "model.p.fct_b": ["model.p.fct_a"],
        "model.p.rollup": ["model.p.fct_b"],
        "snapshot.p.snap": ["source.p.ops.meter_readings"],
        "model.p.dim": ["snapshot.p.snap"],
        "model.p.registry": ["source.p.ops.meters"],
        "test.p.not_null_fct_a": ["model.p.fct_a"],
    }
    return {"nodes": nodes, "sources": sources, "parent_map": parents}


def test_a_model_loses_history_only_through_inputs_rebuilt_with_it_from_a_trimmed_table() -> None:
    m = manifest()
    assert trimmed_inputs(m, "model.p.fct_a", {"model.p.fct_a"}, TRIMMED) == {"ops.meter_readings"}
    # fct_a keeps its history unless it is rebuilt too
    assert trimmed_inputs(m, "model.p.fct_b", {"model.p.fct_b"}, TRIMMED) == set()
    assert trimmed_inputs(m, "model.p.fct_b", {"model.p.fct_a", "model.p.fct_b"}, TRIMMED) == {
        "ops.meter_readings"
    }
    assert trimmed_inputs(m, "model.p.dim", {"model.p.dim"}, TRIMMED) == set()  # a snapshot keeps history
    assert trimmed_inputs(m, "model.p.registry", {"model.p.registry"}, TRIMMED) == set()  # not trimmed
    chosen = ["model.p.fct_a", "model.p.fct_b", "model.p.rollup", "test.p.not_null_fct_a"]
    plan = make_plan(m, ["fct_a+"], chosen, TRIMMED)
    assert plan.models == ("fct_a", "fct_b", "rollup")
    assert plan.incremental == ("fct_a", "fct_b")
    assert plan.loses_history == {"fct_a": ("ops.meter_readings",), "fct_b": ("ops.meter_readings",)}


def test_dbt_result_lines_become_node_results_and_other_events_are_skipped() -> None:
    event = {
        "info": {
            "name": "LogModelResult",
            "msg": "1 of 4 OK created sql table model marts.x ..... [INSERT 0 16]",
        },
        "data": {
            "execution_time": 0.33,
            "node_info": {"node_name": "x", "node_status": "success", "resource_type": "model"},
        },
    }
    result = node_result(event)
    assert result is not None and (result.name, result.status, result.seconds) == ("x", "success", 0.33)
    failed = {
        "info": {"name": "LogTestResult", "msg": "2 of 4 FAIL 3 not_null_x_id ..... [FAIL 3]"},
        "data": {"node_info": {"node_name": "not_null_x_id", "node_status": "fail", "resource_type": "test"}},
    }
    assert node_result(failed) is not None and node_result(failed).status == "fail"  # type: ignore[union-attr]
    assert node_result({"info": {"name": "FoundStats", "msg": "Found 36 models"}, "data": {}}) is None


def cli_env(tmp_path: Path, url: str) -> dict[str, str]:
    """The CLI on this database, its home in `tmp_path`, wide enough that no message wraps."""
    home = str(tmp_path / "home")
    return {
        "METRIFY_HOME": home,
        "METRIFY_POSTGRES_URL": url,
        "METRIFY_DBT_TARGET": "postgres",
        "COLUMNS": "200",
        "ACTOR": f"tester-{tmp_path.name}",
    }


def rebuild(env: dict[str, str], *args: str) -> Result:
    """`metrify warehouse rebuild` as the test's own actor (the audit log outlives each test)."""
    return CliRunner().invoke(cli, ["warehouse", "rebuild", *args, "--by", env["ACTOR"]], env=env)


def last_json(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_full_rebuild_loses_exactly_the_days_its_plan_names(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    load(pg)
    url = pg_resource.get_url()
    assert failures(run_dbt_build(url, tmp_path / "dbt", "--full-refresh")) == {}
    before = archived_rows(pg)
    clean_up(pg, ARCHIVED_LAST)
    env = cli_env(tmp_path, url)

    # A mart rebuilt from marts that keep their history loses nothing, and needs no --yes.
    alone = rebuild(env, "fct_weather_impact", "--json")
    assert alone.exit_code == 0, alone.output
    assert last_json(alone)["plan"]["loses_history"] == {} and last_json(alone)["ok"]
    assert len(archived_rows(pg)["fct_weather_impact"]) == len(before["fct_weather_impact"]) > 0

    # Several selectors are one selection (dagster-dbt reads one value after --select).
    pair = rebuild(env, "fct_weather_impact", "fct_grid_stability", "--dry-run", "--json")
    assert pair.exit_code == 0, pair.output
    assert {"fct_weather_impact", "fct_grid_stability"} <= set(last_json(pair)["plan"]["models"])

    # Every mart at once: the plan names what is lost; without a terminal it wants --yes.
    refused = rebuild(env, "path:models/marts")
    assert refused.exit_code == 2 and "--yes" in refused.output
    dry = rebuild(env, "path:models/marts", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    plan = last_json(dry)["plan"]
    assert archived_rows(pg) == {**before, "fct_weather_impact": archived_rows(pg)["fct_weather_impact"]}
    done = rebuild(env, "path:models/marts", "--yes", "--json")
    assert done.exit_code == 0, done.output
    after = archived_rows(pg)
    lost = {m for m in plan["incremental"] if m in before and len(after[m]) < len(before[m])}
    assert lost == set(plan["loses_history"]) and "fct_consumption_daily" in lost
    # dim_meter's reading span adds up int_meter_reading_days, which keeps its history: unchanged.
    assert "dim_meter" in plan["models"] and after["dim_meter"] == before["dim_meter"]
    results = last_json(done)["results"]
    assert {r["name"] for r in results if r["resource_type"] == "model"} == set(plan["models"])
    assert all(r["status"] in ("success", "pass") for r in results)
    entries = pg.execute(
        "SELECT target, affected FROM ops.audit_log WHERE action = 'warehouse.rebuild' AND actor = %s "
        "ORDER BY id",
        (env["ACTOR"],),
    ).fetchall()
    assert entries == [("fct_weather_impact", 1), ("path:models/marts", len(plan["models"]))]


def test_a_rebuild_drops_a_column_the_model_no_longer_has_and_reports_a_failed_model(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """The case incremental runs cannot mend: a column removed from a model stays in its table (dbt's
    `append_new_columns` only adds). And a build that fails says which model and why, exit 1."""
    load(pg)
    url = pg_resource.get_url()
    assert failures(run_dbt_build(url, tmp_path / "dbt", "--full-refresh")) == {}
    env = cli_env(tmp_path, url)

    def columns() -> list[str]:
        rows = pg.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' "
            "AND table_name = 'fct_forecast_accuracy'"
        ).fetchall()
        pg.commit()
        return [r[0] for r in rows]

    pg.execute("ALTER TABLE marts.fct_forecast_accuracy ADD COLUMN retired_metric double precision")
    pg.commit()
    done = rebuild(env, "fct_forecast_accuracy")
    assert done.exit_code == 0, done.output
    assert "retired_metric" not in columns() and "selected_by_default" in columns()

    # VEE's day summary no longer matches its intervals (one of them gone): the mart's test fails, the
    # build says so.
    pg.execute(
        "DELETE FROM ops.vee_readings WHERE (meter_id, reading_start) = (SELECT meter_id, reading_start "
        "FROM ops.vee_readings WHERE status = 'actual' ORDER BY meter_id, reading_start LIMIT 1)"
    )
    pg.commit()
    failed = rebuild(env, "fct_consumption_daily", "--yes")
    assert failed.exit_code == 1, failed.output
    assert "--vars" not in failed.output and "dbt CLI process" not in failed.output
    assert "models rebuilt │ 1 of 1" in failed.output and "[31m" not in failed.output
    assert "fct_consumption_daily_valued_counts_match_the_intervals" in failed.output  # the test
    assert "Got 1 result, configured to fail if != 0" in failed.output  # and dbt's words
    ok = pg.execute(
        "SELECT details->>'ok' FROM ops.audit_log WHERE action = 'warehouse.rebuild' AND actor = %s "
        "ORDER BY id",
        (env["ACTOR"],),
    ).fetchall()
    assert ok == [("true",), ("false",)]

    # A selector dbt refuses: dbt's words, not its command line.
    bad = rebuild(env, "bogus:x", "--dry-run")
    assert bad.exit_code == 2 and "'bogus' is not a valid method name" in bad.output
    assert "--select" not in bad.output and "dbt CLI process" not in bad.output
