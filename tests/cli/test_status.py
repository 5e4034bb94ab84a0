"""`metrify status` says where the newest data lives once the lifecycle moved days to the lake: the
trial saw grid_status's newest record as `-` after retention, and weather's as a lone late record's
time while its data ran later, with no lifecycle line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest
from rich.console import Console
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.cli.status import lifecycle_line, newest_record, print_status
from metrify_assets.env import resolve_settings
from metrify_assets.orchestration.instance import local_instance
from metrify_assets.orchestration.status import JobStatus, Status
from metrify_assets.resources import PostgresResource
from metrify_assets.run_alerts import RANGE_END_TAG, RANGE_START_TAG, settle_missed
from metrify_assets.storage.days import LakeDays, holds_standing, lake_days
from metrify_platform.kafka_broker import free_port

pytestmark = [pytest.mark.postgres]
NOW = datetime(2032, 7, 1, 12, tzinfo=UTC)


def test_the_newest_record_says_which_days_are_in_the_lake() -> None:
    lake = LakeDays("grid_status", {"cold": 4}, 4, date(2032, 3, 31))
    assert newest_record(None, lake, NOW) == "- (none hot; lake through 2032-03-31)"
    late = datetime(2032, 3, 29, 8, tzinfo=UTC)  # a late record of a day that already left
    assert (
        newest_record(late, lake, NOW)
        == "2032-03-29 08:00 (94 d ago) (a late record; lake through 2032-03-31)"
    )
    hot = datetime(2032, 7, 1, 11, 30, tzinfo=UTC)
    assert (
        newest_record(hot, lake, NOW) == "2032-07-01 11:30 (30 min ago) (older days: lake through 2032-03-31)"
    )
    assert newest_record(hot, None, NOW) == "2032-07-01 11:30 (30 min ago)"
    assert (
        newest_record(hot, LakeDays("grid_status", {"warm": 2}, 0, None), NOW)
        == "2032-07-01 11:30 (30 min ago)"
    )


def test_lake_days_counts_tiers_and_days_out_of_postgresql_in_one_read(pg_resource: PostgresResource) -> None:
    """Days per tier, those whose hot rows left (a restored one does not count) and the newest of them;
    standing holds (not released ones). In one transaction, rolled back: the shared database keeps
    nothing of it."""
    with pg_resource.connect() as conn:
        before, holds_before = lake_days(conn), holds_standing(conn)
        rows = [
            ("2032-03-01", "archive", "2032-04-10", None),
            ("2032-03-02", "cold", "2032-04-10", None),
            ("2032-03-03", "cold", "2032-04-10", "2032-04-20"),  # restored since
            ("2032-03-04", "warm", None, None),  # still hot too
        ]
        for day, tier, deleted, restored in rows:
            conn.execute(
                "INSERT INTO ops.lifecycle_days (dataset, day, tier, storage_class, object_key, manifest_key, "
                "row_count, bytes, checksum, sha256, verified_at, moved_at, hot_deleted_at, restored_at) "
                "VALUES ('weather_observations', %s, %s, 'STANDARD', 'k', 'm', 1, 1, 'c', 's', now(), now(), %s, %s)",
                (day, tier, deleted, restored),
            )
        conn.execute(
            "INSERT INTO ops.legal_holds (dataset, first_day, last_day, reason, author) "
            "VALUES ('weather_observations', '2032-03-01', '2032-03-02', 'case', 'counsel')"
        )
        after = lake_days(conn)["weather_observations"]
        old = before.get("weather_observations", LakeDays("weather_observations", {}, 0, None))
        added = {tier: n - old.tiers.get(tier, 0) for tier, n in after.tiers.items()}
        assert {tier: n for tier, n in added.items() if n} == {"archive": 1, "cold": 2, "warm": 1}
        assert after.hot_deleted - old.hot_deleted == 2
        assert after.newest_hot_deleted is not None and after.newest_hot_deleted >= date(2032, 3, 2)
        assert holds_standing(conn) == holds_before + 1
        line = lifecycle_line({"weather_observations": after}, holds_before + 1)
        assert line.startswith("days in the lake: weather_observations ")
        assert f"({after.hot_deleted} out of PostgreSQL)" in line
        assert line.endswith(f"legal holds standing: {holds_before + 1}")
        conn.rollback()
    assert lifecycle_line({}, None) == "no day in the lake yet"
    waiting = lifecycle_line({"weather_observations": after}, 0, {"weather_observations": 1200})
    assert f"({after.hot_deleted} out of PostgreSQL, 1,200 late rows wait for a restore)" in waiting


def test_a_failed_run_whose_alert_is_not_recorded_is_owed_and_needs_attention(
    pg_resource: PostgresResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial's `metrify db stop` during `metrify run`: the jobs table said daily_job failed, but runs
    owed and open alerts said none and nothing needed attention until the reconcile sensor (5 min) or
    the next `metrify run` recorded its alert."""
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    days = {RANGE_START_TAG: "2033-05-03", RANGE_END_TAG: "2033-05-04"}

    @dg.op
    def build(fail: bool) -> None:
        if fail:
            raise RuntimeError("PostgreSQL went away")

    @dg.job(name="daily_job")
    def daily_job() -> None:
        build()

    def execute(fail: bool, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
        config = {"ops": {"build": {"inputs": {"fail": fail}}}}
        # As `execute_job` runs it, but without settling its alert: PostgreSQL was away when it ended.
        return daily_job.execute_in_process(config, instance=instance, tags=days, raise_on_error=False)

    def owed() -> tuple[list[dict[str, object]], list[str]]:
        found = json.loads(CliRunner().invoke(app, ["status", "--json"], catch_exceptions=False).stdout)
        mine = [run for run in found["owed"] if run["first"] == "2033-05-03"]
        return mine, [line for line in found["attention"] if "2033-05-03" in line]

    instance = local_instance(resolve_settings())
    execute(True, instance)
    runs, lines = owed()
    assert runs == [
        {"job": "daily_job", "first": "2033-05-03", "last": "2033-05-04", "alert_recorded": False}
    ]
    assert lines == [
        "daily_job failed for 2033-05-03..2033-05-04 and is owed (its alert is not recorded yet): the daemon "
        "or the next `metrify run` runs it again"
    ]
    text = CliRunner().invoke(app, ["status"], catch_exceptions=False).stdout
    assert "daily_job 2033-05-03..2033-05-04" in text and "nothing needs attention" not in text

    # A later success of those days makes up for it, its alert unrecorded all the same.
    assert execute(False, instance).success
    assert owed() == ([], [])
    # Failed again, then recorded (as the reconcile sensor does): owed once, by its alert.
    again = execute(True, instance)
    assert owed()[0][0]["alert_recorded"] is False
    record = instance.get_run_record_by_id(again.run_id)
    assert record is not None
    with pg_resource.connect() as conn:
        assert settle_missed(conn, instance, record, None) == again.run_id
    assert owed()[0] == [
        {"job": "daily_job", "first": "2033-05-03", "last": "2033-05-04", "alert_recorded": True}
    ]
    with pg_resource.connect() as conn:  # the shared database keeps no open alert of it
        conn.execute(
            "UPDATE ops.alerts SET resolved_at = now() WHERE resolved_at IS NULL AND kind = 'run_failure' "
            "AND details->>'first_partition' = '2033-05-03'"
        )


def test_the_jobs_table_says_which_time_is_a_start_and_which_an_end() -> None:
    """A trial read `refresh_job | last run 02:59 | success | last success 03:02`: a start beside an end."""
    started, ended = datetime(2032, 7, 1, 2, 59, tzinfo=UTC), datetime(2032, 7, 1, 3, 2, tzinfo=UTC)
    out = io.StringIO()
    print_status(
        Console(file=out, width=200),
        Status(at=NOW, jobs=[JobStatus("refresh_job", "success", started, ended)]),
    )
    lines = out.getvalue().splitlines()
    header = next(line for line in lines if "job" in line and "status" in line and "metrify" not in line)
    assert [cell.strip() for cell in header.split("┃")[1:-1]] == [
        "job",
        "last run started",
        "its status",
        "last success ended",
    ]
    row = next(line for line in lines if "refresh_job" in line)
    assert "2032-07-01 02:59" in row.split("│")[2] and "2032-07-01 03:02" in row.split("│")[4]


def test_a_kafka_that_is_down_is_said_once_not_in_the_clients_errors(
    pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """A trial's `metrify status` with the broker down printed 18 kafka-python ERROR lines (`Bootstrap
    failed`) before its table, which says that Kafka could not be read."""
    env = {
        **os.environ,
        "METRIFY_HOME": str(tmp_path / "home"),
        "METRIFY_POSTGRES_URL": pg_resource.get_url(),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",  # nothing listens there
    }
    env.pop("METRIFY_LOG_LEVEL", None)
    done = subprocess.run(
        [sys.executable, "-m", "metrify_assets.cli.main", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr  # a store could not be read
    assert "Kafka could not be read" in done.stdout
    # The project's own warning (the metrics collector's) alone: no line of kafka-python's logger.
    lines = done.stderr.splitlines()
    assert lines and all('"logger":"metrify_assets.' in line for line in lines), done.stderr


def test_status_without_kafka_configured_never_imports_kafka_python(
    pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """kafka-python cost `metrify status` about 0.3 s of imports (147 modules) through `errors`, the
    Kafka resource and the metrics' lag collector, though without brokers configured it reads no lag.
    A fresh interpreter runs the command and says whether `kafka` was loaded."""
    env = {
        **os.environ,
        "METRIFY_HOME": str(tmp_path / "home"),
        "METRIFY_POSTGRES_URL": pg_resource.get_url(),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    code = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from metrify_assets.cli.main import app\n"
        "result = CliRunner().invoke(app, ['status', '--json'], catch_exceptions=False)\n"
        "print(json.dumps({'sources': json.loads(result.stdout)['sources'], 'kafka': 'kafka' in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert {s["kafka_lag"] for s in found["sources"]} == {None}  # Kafka not configured: no lag read
    assert found["kafka"] is False


def test_a_home_that_remembers_its_grid_area_warns_of_days_judged_under_another(
    pg_resource: PostgresResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trial: the demo's home judged its grid under great_britain, and a later command without
    METRIFY_GRID_AREA judged it under the default continental_europe, unsaid by `metrify status`.
    Now the home remembers its area (HOME/settings.json, below the environment), and `metrify status`
    names the area in force, what chose it, and hours judged under another: here one node's day
    judged under continental_europe (a run with METRIFY_GRID_AREA=continental_europe) in a home that
    remembers great_britain. A unique node and a far day: the database is shared (rows removed after)."""
    import pandas as pd

    from metrify_assets.env import HOME_SETTINGS_FILE, remember
    from metrify_assets.grid.analysis import GridConfig
    from metrify_assets.grid.store import run_days
    from tests.grid.series import samples
    from tests.grid.test_assets import store_samples

    home, day = tmp_path / "home", date(2091, 5, 5)
    remember(home, "METRIFY_GRID_AREA", "great_britain")
    monkeypatch.setenv("METRIFY_HOME", str(home))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.delenv("METRIFY_GRID_AREA", raising=False)
    node = "GN-STATUS-AREA"
    with pg_resource.connect() as conn:
        try:
            store_samples(
                conn, samples([0.01] * 360, node=node, start=pd.Timestamp("2091-05-05T10:00Z")), node
            )
            run_days(conn, day, day, GridConfig(default_area="continental_europe"))
            found = json.loads(CliRunner().invoke(app, ["status", "--json"], catch_exceptions=False).stdout)
            text = CliRunner().invoke(app, ["status"], catch_exceptions=False).stdout
            monkeypatch.setenv("METRIFY_GRID_AREA", "continental_europe")
            consistent = json.loads(
                CliRunner().invoke(app, ["status", "--json"], catch_exceptions=False).stdout
            )
        finally:
            conn.execute("DELETE FROM ops.grid_stability WHERE grid_node_id = %s", (node,))
            conn.execute("DELETE FROM ops.grid_state_events WHERE grid_node_id = %s", (node,))
            conn.execute("DELETE FROM ops.alerts WHERE dedup_key = %s", (f"grid_state:{node}",))
            conn.execute("DELETE FROM ops.grid_status WHERE grid_node_id = %s", (node,))
            conn.commit()
    area = found["grid_area"]
    assert (area["area"], area["from"]) == ("great_britain", str(home / HOME_SETTINGS_FILE))
    (warning,) = area["warnings"]
    assert "1 grid node(s) have hours of 2091-05-05..2091-05-05 judged under continental_europe" in warning
    assert f"in force is great_britain ({home / HOME_SETTINGS_FILE})" in warning
    assert "Set METRIFY_GRID_AREA=continental_europe" in warning
    assert warning in found["attention"]
    assert "grid area mismatch" in text and "great_britain" in text
    # the environment is above the home's settings: the area it names agrees with the stored hours
    assert consistent["grid_area"] == {
        "area": "continental_europe",
        "from": "METRIFY_GRID_AREA",
        "warnings": [],
    }
