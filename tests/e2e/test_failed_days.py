"""A downstream run that fails under `metrify run` raises its alert, and the next `metrify run` runs
it again (found by a new-user trial: the day stayed stale, with exit code 0 and no alert)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.env import resolve_settings
from metrify_assets.resources.build import postgres_resource
from metrify_assets.storage.embedded_server import stop_embedded

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
SIMULATE = ["simulate", "--meters", "4", "--days", "1", "--seed", "5", "--no-registry"]
REGISTRY = "meter_id,segment,region,weather_station_id,grid_node_id,tariff,timezone,installed_on\n"


@pytest.fixture(autouse=True)
def stop_home_server(tmp_path: Path) -> Iterator[None]:
    yield
    stop_embedded(resolve_settings({"METRIFY_HOME": str(tmp_path)}).pg_data_dir)


def test_a_failed_day_raises_an_alert_and_the_next_run_runs_it_again(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("METRIFY_HOME", str(tmp_path))
        mp.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
        runner = CliRunner()
        simulated = runner.invoke(
            app, [*SIMULATE, "--sources", "weather_observations"], catch_exceptions=False
        )
        assert simulated.exit_code == 0, simulated.output
        # A registry file PostgreSQL refuses (a date that is none): refresh_job's first step fails.
        registry = tmp_path / "landing" / "reference" / "meters.csv"
        registry.parent.mkdir(parents=True, exist_ok=True)
        registry.write_text(REGISTRY + "MTR-000001,residential,north,,,standard,UTC,not-a-date\n")

        first = runner.invoke(app, ["run", "--json"], catch_exceptions=False)
        assert first.exit_code == 1, first.output
        ran = json.loads(first.stdout.strip().splitlines()[-1])
        ((day, last),) = ran["day_ranges"]
        assert (ran["jobs"], ran["skipped"]) == ([], [f"daily_job {day}..{last}"])  # not on stale readings
        # The changed registry is loaded before the ingest (and fails first), then refresh_job fails on it.
        registry_failure, failure = ran["failed"]
        assert registry_failure.startswith("meter_registry_job failed") and "not-a-date" in registry_failure
        assert failure.startswith("refresh_job failed") and "not-a-date" in failure

        again = runner.invoke(app, ["run", "--json"], catch_exceptions=False)
        assert again.exit_code == 1, again.output
        retried = json.loads(again.stdout.strip().splitlines()[-1])
        assert (retried["batch_ids"], retried["jobs"], retried["skipped"]) == (
            [],
            [],
            [f"daily_job {day}..{last}"],
        )
        assert retried["retried"] == [f"refresh_job {day}..{last}"] and len(retried["failed"]) == 2
        assert "on an earlier run: running it again" in " ".join(again.output.split())  # wrapped

        alerts = runner.invoke(app, ["alerts", "list", "--status", "all"], catch_exceptions=False)
        assert alerts.exit_code == 0 and "refresh_job" in alerts.output
    with postgres_resource(resolve_settings({"METRIFY_HOME": str(tmp_path)})).connect() as conn:
        rows = conn.execute(
            "SELECT subject, occurrences FROM ops.alerts WHERE kind = 'run_failure' AND resolved_at IS NULL"
        ).fetchall()
        assert conn.execute("SELECT count(*) FROM ops.run_alerts").fetchone() == (4,)  # 2 runs x 2 jobs
    subject = f"refresh_job [{day}]" if day == last else f"refresh_job [{day}..{last}]"
    assert sorted(rows) == [("meter_registry_job", 2), (subject, 2)]
