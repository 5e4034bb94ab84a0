"""`grid_stability` on a real PostgreSQL: the Paris sample through the ingestion path, states and events
across midnight in any run order, open events, alerts of the newest state only, EN 50160's week."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
import pytest

from metrify_assets.alerts.store import list_alerts
from metrify_assets.contracts import GRID_STATUS
from metrify_assets.env import resolve_settings
from metrify_assets.grid.analysis import GridConfig
from metrify_assets.grid.area_history import area_changes, area_warnings
from metrify_assets.grid.assets import grid_stability
from metrify_assets.grid.store import run_days
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.lifecycle import retention
from metrify_assets.lifecycle.policy import Policy
from metrify_assets.lifecycle.tables import TABLES
from metrify_assets.lifecycle.tiers import copy_to_warm
from metrify_assets.orchestration.catchup import grid_area_warnings
from metrify_assets.partitions import partition_range_tags
from metrify_assets.resources import GridResource, PostgresResource
from metrify_assets.resources.lake import Lake
from tests.grid.series import profile, rows, samples
from tests.grid.test_stability import expected_paris_hours, paris

pytestmark = pytest.mark.postgres

DAY = date(2026, 1, 5)
NOW = datetime(2026, 1, 7, tzinfo=UTC)
MIDNIGHT = pd.Timestamp("2026-01-05T00:00:00Z")
CONFIG = GridConfig()


def store_samples(conn: psycopg.Connection, frame: pd.DataFrame, batch_id: str = "B-grid") -> None:
    """Insert raw samples into ops.grid_status as the validated asset would have stored them."""
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY ops.grid_status (grid_node_id, measured_at, frequency_hz, voltage_v, load_mw, capacity_mw, "
            "record_version, batch_id) FROM STDIN"
        ) as copy,
    ):
        for row in rows(frame):
            copy.write_row(
                (
                    row.grid_node_id,
                    row.measured_at.to_pydatetime(),
                    float(row.frequency_hz),
                    *(
                        None if v is None or pd.isna(v) else float(v)
                        for v in (row.voltage_v, row.load_mw, row.capacity_mw)
                    ),
                    1,
                    batch_id,
                )
            )
    conn.commit()


def query(conn: psycopg.Connection, sql: str, params: Any = None) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        assert cur.description is not None
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def events(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    rows = conn.execute(
        "SELECT grid_node_id, state, rule, started_at, ended_at, start_day FROM ops.grid_state_events "
        "ORDER BY grid_node_id, started_at"
    ).fetchall()
    return [
        (n, s, r, pd.Timestamp(a), None if b is None else pd.Timestamp(b), d) for n, s, r, a, b, d in rows
    ]


def grid_alerts(conn: psycopg.Connection, status: str = "all") -> list[tuple[str, str, str]]:
    return [
        (a.subject, a.severity, a.status)
        for a in list_alerts(conn, status="all", kind="grid_state")
        if status == "all" or a.status == status
    ]


def at(hours: float, minutes: float = 0) -> pd.Timestamp:
    return MIDNIGHT + pd.Timedelta(hours=hours, minutes=minutes)


def test_paris_sample_through_ingestion_equals_numpy_per_hour(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    frame = paris()
    messages = [
        json.dumps(
            {"grid_node_id": "RTE-PARIS", "measured_at": ts.isoformat(), "frequency_hz": 50 + mhz / 1000}
        )
        for ts, mhz in zip(frame["timestamp"], frame["mhz"], strict=True)
    ]
    spec = BatchSpec(GRID_STATUS, "paris-2014-01-10", "landing", "freq_paris_2014_10.csv", date(2014, 1, 10))
    now = pd.Timestamp("2026-01-01T00:00:00Z")
    ingested = process_batch(
        spec, messages, [1] * len(messages), Lake(str(tmp_path / "lake")), pg, now, backfill=True
    )
    pg.commit()
    assert ingested.ledger.accepted == 4999  # frequency-only: accepted without voltage or load

    result = dg.materialize(
        [grid_stability],
        resources={"postgres": pg_resource, "grid": GridResource()},
        partition_key="2014-01-10",
    )
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.passed
    metadata = result.asset_materializations_for_node("grid_stability")[0].metadata
    assert metadata["node_hours"].value == 14 and metadata["samples"].value == 4999
    assert metadata["events"].value == 0

    stored = query(pg, "SELECT * FROM ops.grid_stability ORDER BY hour_start")
    expected = expected_paris_hours(frame)
    assert len(stored) == len(expected) == 14
    assert (pd.to_datetime(stored["hour_start"], utc=True) == expected["hour_start"]).all()
    assert set(stored["day"]) == {date(2014, 1, 10)} and set(stored["grid_node_id"]) == {"RTE-PARIS"}
    for column in expected.columns.drop("hour_start"):
        np.testing.assert_allclose(
            stored[column].astype(float),
            expected[column].astype(float),
            rtol=1e-9,
            atol=1e-12,
            err_msg=column,
        )
    assert (stored["rocof_window_s"] == 10.0).all()
    for column in ("mean_voltage_v", "voltage_within_share", "voltage_week_within_share", "voltage_week_compliant",
                   "mean_load_mw", "capacity_mw", "min_load_margin_share", "risk_voltage", "risk_load"):  # fmt: skip
        assert stored[column].isna().all(), column
    assert (stored["voltage_week_windows"] == 0).all()
    assert set(stored["risk_components"]) == {"frequency"} and set(stored["worst_state"]) == {"normal"}
    assert events(pg) == [] and grid_alerts(pg) == []

    again = dg.materialize(
        [grid_stability],
        resources={"postgres": pg_resource, "grid": GridResource()},
        partition_key="2014-01-10",
    )
    assert again.success
    rerun = query(pg, "SELECT * FROM ops.grid_stability ORDER BY hour_start")
    pd.testing.assert_frame_equal(stored.drop(columns="processed_at"), rerun.drop(columns="processed_at"))


def excursion_across_midnight() -> pd.DataFrame:
    """GN-M, 10 s samples 22:00..02:00 around the night of 2026-01-04/05: 120 mHz from 23:50 to 00:20."""
    return samples(profile((110, 0.0), (30, 0.12), (100, 0.0)), node="GN-M", start=at(-2))


def test_states_carry_across_midnight_in_either_run_order(pg: psycopg.Connection) -> None:
    store_samples(pg, excursion_across_midnight())
    expected = [("GN-M", "alert", "beyond_half_max_steady_state", at(-1, 55), at(0, 20), date(2026, 1, 4))]
    outcomes = []
    for order in ([DAY - timedelta(days=1), DAY], [DAY, DAY - timedelta(days=1)]):
        pg.execute("TRUNCATE ops.grid_stability, ops.grid_state_events")
        pg.commit()
        for day in order:
            run_days(pg, day, day, CONFIG)
        assert events(pg) == expected, order
        outcomes.append(
            query(pg, "SELECT * FROM ops.grid_stability ORDER BY hour_start").drop(columns="processed_at")
        )
    pd.testing.assert_frame_equal(outcomes[0], outcomes[1])
    hours = outcomes[0].set_index(pd.to_datetime(outcomes[0]["hour_start"], utc=True))
    assert hours.loc[at(-1), "worst_state"] == "alert" and hours.loc[
        at(-1), "alert_minutes"
    ] == pytest.approx(5)
    assert hours.loc[at(0), "worst_state"] == "alert" and hours.loc[at(0), "alert_minutes"] == pytest.approx(
        20
    )
    assert set(hours.loc[[at(-2), at(1)], "worst_state"]) == {"normal"}

    # One run over both days gives the same.
    pg.execute("TRUNCATE ops.grid_stability, ops.grid_state_events")
    pg.commit()
    run = run_days(pg, DAY - timedelta(days=1), DAY, CONFIG)
    assert events(pg) == expected and run.carried == 0
    both = query(pg, "SELECT * FROM ops.grid_stability ORDER BY hour_start").drop(columns="processed_at")
    pd.testing.assert_frame_equal(both, outcomes[0])


def test_the_deployments_area_judges_the_nodes_unless_the_run_names_one(
    pg: psycopg.Connection, pg_resource: PostgresResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployment's area (the `grid` resource, from METRIFY_GRID_AREA) is the area where the run
    config names none: 120 mHz for 30 minutes is an alert in Continental Europe (beyond 100 mHz for
    over 5 minutes) and inside GB's +/-200 mHz. The asset reads no environment: the variable set to
    another area changes nothing."""
    store_samples(pg, excursion_across_midnight())
    monkeypatch.setenv("METRIFY_GRID_AREA", "continental_europe")
    judged, changed = {}, []
    for run_config in ({}, {"ops": {"grid_stability": {"config": {"area": "continental_europe"}}}}):
        result = dg.materialize(
            [grid_stability],
            resources={"postgres": pg_resource, "grid": GridResource(area="great_britain")},
            partition_key=DAY.isoformat(),
            run_config=run_config,
        )
        assert result.success
        hours = query(pg, "SELECT area, worst_state FROM ops.grid_stability")
        judged[hours["area"].unique().item()] = set(hours["worst_state"])
        (materialization,) = result.asset_materializations_for_node("grid_stability")
        changed.append(materialization.metadata["area_changed"].value)
    assert judged == {"great_britain": {"normal"}, "continental_europe": {"normal", "alert"}}
    # the second run re-judged the day under another area: said in its metadata (and logged as a warning)
    assert changed == ["no", "great_britain -> continental_europe (1 nodes)"]


def test_a_new_day_judged_under_another_area_than_the_days_before_it_is_warned(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """The demo's home: its days judged under great_britain, then `metrify run` without
    METRIFY_GRID_AREA judges a new day under the default continental_europe. Only the run's own days
    were compared before, so a new day's change of standards went unsaid ("no")."""
    store_samples(pg, excursion_across_midnight())  # 2026-01-04 22:00 .. 2026-01-05 02:00
    changed = []
    for day, area in ((DAY - timedelta(days=1), "great_britain"), (DAY, None)):
        result = dg.materialize(
            [grid_stability],
            resources={"postgres": pg_resource, "grid": GridResource(area=area)},
            partition_key=day.isoformat(),
        )
        assert result.success
        (materialization,) = result.asset_materializations_for_node("grid_stability")
        changed.append(materialization.metadata["area_changed"].value)
    assert changed == ["no", "great_britain -> continental_europe (1 nodes)"]
    (warning,) = area_warnings(
        area_changes(pg, DAY, DAY, lambda node: CONFIG.area_of(node).name), "the default"
    )
    assert "1 grid node(s) have hours of 2026-01-04..2026-01-04 judged under great_britain" in warning
    assert "in force is continental_europe (the default)" in warning
    assert "Set METRIFY_GRID_AREA=great_britain" in warning
    # the month before a run is compared, not the history: a day judged 32 days later is not warned
    assert (
        area_changes(
            pg, DAY + timedelta(days=32), DAY + timedelta(days=32), lambda node: CONFIG.area_of(node).name
        )
        == {}
    )
    # `metrify run` repeats it in its summary, naming what chose the area in force
    settings = resolve_settings({"METRIFY_HOME": str(tmp_path / "home")})
    assert grid_area_warnings(pg, settings, [(DAY, DAY)]) == [warning]


def test_an_event_open_at_midnight_ends_when_the_next_day_runs_and_its_alert_resolves(
    pg: psycopg.Connection,
) -> None:
    data = excursion_across_midnight()
    store_samples(pg, data[data["measured_at"] < MIDNIGHT])
    yesterday = run_days(pg, DAY - timedelta(days=1), DAY - timedelta(days=1), CONFIG)
    assert events(pg) == [
        ("GN-M", "alert", "beyond_half_max_steady_state", at(-1, 55), None, date(2026, 1, 4))
    ]
    assert yesterday.raised == ["GN-M"]  # its newest sample is in alert
    assert grid_alerts(pg) == [("GN-M", "warning", "open")]
    (alert,) = list_alerts(pg, kind="grid_state")
    assert alert.dedup_key == "grid_state:GN-M" and "alert" in alert.summary
    assert alert.details["rule"] == "beyond_half_max_steady_state"

    store_samples(pg, data[data["measured_at"] >= MIDNIGHT], batch_id="B-next")
    today = run_days(pg, DAY, DAY, CONFIG)
    assert today.carried == 1 and today.events.empty
    assert events(pg) == [
        ("GN-M", "alert", "beyond_half_max_steady_state", at(-1, 55), at(0, 20), date(2026, 1, 4))
    ]
    assert today.resolved == ["GN-M"]
    assert grid_alerts(pg) == [("GN-M", "warning", "resolved")]


def test_a_backfill_of_an_old_day_reads_on_to_end_its_event_and_leaves_alerts_alone(
    pg: psycopg.Connection,
) -> None:
    old = excursion_across_midnight()
    store_samples(pg, old)
    # The node's newest data is days later, in alert: the old day's run must not decide its alert.
    store_samples(pg, samples(profile((10, 0.0), (7, 0.12)), node="GN-M", start=at(72)), batch_id="B-late")
    run = run_days(pg, DAY - timedelta(days=1), DAY - timedelta(days=1), CONFIG)
    assert run.lookahead_days == 1  # read on into the next day to find the end
    assert events(pg) == [
        ("GN-M", "alert", "beyond_half_max_steady_state", at(-1, 55), at(0, 20), date(2026, 1, 4))
    ]
    assert run.raised == [] and run.resolved == [] and grid_alerts(pg) == []
    newest = run_days(pg, DAY + timedelta(days=3), DAY + timedelta(days=3), CONFIG)
    assert newest.raised == ["GN-M"] and grid_alerts(pg) == [("GN-M", "warning", "open")]


def test_emergency_at_the_newest_sample_is_a_critical_alert_refreshed_not_repeated(
    pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    store_samples(pg, samples(profile((30, 0.0), (5, -0.3)), node="GN-E", start=at(9)))
    for _ in range(2):
        result = dg.materialize(
            [grid_stability],
            resources={"postgres": pg_resource, "grid": GridResource()},
            partition_key=DAY.isoformat(),
        )
        assert result.success
    (alert,) = list_alerts(pg, kind="grid_state")
    assert (alert.subject, alert.severity, alert.status, alert.occurrences) == ("GN-E", "critical", "open", 2)
    assert alert.details["state"] == "emergency" and alert.details["rule"] == "steady_state_beyond_max"
    ((state, rule, ended),) = pg.execute("SELECT state, rule, ended_at FROM ops.grid_state_events").fetchall()
    assert (state, rule, ended) == ("emergency", "steady_state_beyond_max", None)
    hour = query(pg, "SELECT worst_state, risk_frequency, risk_score FROM ops.grid_stability WHERE hour_start = %s",
                 (at(9).to_pydatetime(),))  # fmt: skip
    assert hour.to_dict("records") == [{"worst_state": "emergency", "risk_frequency": 1.0, "risk_score": 1.0}]


def test_voltage_week_and_risk_components_from_stored_days(
    pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    """A node with voltage and load, 1-minute samples over 7 days; on the third day 50 of its 144
    10-minute voltage means are 12 % high."""
    first = DAY - timedelta(days=6)
    minutes = 7 * 1440
    voltage = np.full(minutes, 232.0)
    voltage[2 * 1440 : 2 * 1440 + 500] = 257.6  # 12 % high: minutes 0..499 of the third day (50 windows)
    raw = samples(
        np.zeros(minutes),
        node="GN-V",
        start=pd.Timestamp(first.isoformat(), tz="UTC"),
        step_s=60,
        voltage_v=voltage.tolist(),
        load_mw=[30.0] * minutes,
        capacity_mw=40.0,
    )
    store_samples(pg, raw)
    tags = partition_range_tags(first, DAY - timedelta(days=1))
    assert dg.materialize(
        [grid_stability], resources={"postgres": pg_resource, "grid": GridResource()}, tags=tags
    ).success
    assert dg.materialize(
        [grid_stability],
        resources={"postgres": pg_resource, "grid": GridResource()},
        partition_key=DAY.isoformat(),
    ).success
    rows = query(pg, "SELECT * FROM ops.grid_stability ORDER BY hour_start")
    assert len(rows) == 7 * 24
    days = rows.groupby("day").agg(
        windows=("voltage_week_windows", "first"),
        share=("voltage_week_within_share", "first"),
        compliant=("voltage_week_compliant", "first"),
        day_windows=("voltage_windows", "sum"),
    )
    assert days["day_windows"].tolist() == [144] * 7
    assert days["windows"].tolist() == [144 * k for k in range(1, 8)]
    share, compliant = days["share"].to_dict(), days["compliant"].to_dict()
    assert share[DAY] == pytest.approx(1 - 50 / (7 * 144))  # 95.0 %: complies
    assert bool(compliant[DAY])
    assert not bool(compliant[DAY - timedelta(days=2)])  # 50 of 5 x 144: 93.1 %
    assert set(rows["risk_components"]) == {"frequency,voltage,load"}
    # Load at 75 % of capacity is below the load ramp; the 12 % hours are at the voltage limit.
    assert (rows["risk_load"] == 0.0).all()
    assert rows["risk_score"].max() == 1.0 and rows["risk_score"].min() == 0.0


def test_an_event_before_a_silent_day_ends_where_its_data_stops(pg: psycopg.Connection) -> None:
    store_samples(pg, samples(profile((10, 0.12)), node="GN-G", start=at(-1, 50)))
    store_samples(pg, samples(profile((30, 0.0)), node="GN-G", start=at(34)), batch_id="B-later")
    run = run_days(pg, DAY - timedelta(days=1), DAY - timedelta(days=1), CONFIG)
    # Nothing on 2026-01-05: the node's next sample (on the 6th, read with the day) follows a gap.
    assert run.lookahead_days == 0
    # Alert from 23:55; the last sample (23:59:50) before the gap stands for its 10 s.
    assert events(pg) == [
        ("GN-G", "alert", "beyond_half_max_steady_state", at(-1, 55), at(0), date(2026, 1, 4))
    ]


def test_a_day_whose_samples_are_gone_is_emptied_and_a_short_lookback_is_refused(
    pg: psycopg.Connection,
) -> None:
    store_samples(pg, samples(profile((30, 0.0), (10, 0.12)), node="GN-D", start=at(9)))
    run_days(pg, DAY, DAY, CONFIG)
    assert pg.execute("SELECT count(*) FROM ops.grid_stability").fetchone() == (1,)
    assert len(events(pg)) == 1
    pg.execute("DELETE FROM ops.grid_status")
    pg.commit()
    run = run_days(pg, DAY, DAY, CONFIG)
    assert run.figures.empty and run.events.empty
    assert pg.execute("SELECT count(*) FROM ops.grid_stability").fetchone() == (0,)
    assert events(pg) == []
    with pytest.raises(ValueError, match="longest window"):
        run_days(pg, DAY, DAY, GridConfig(node_areas={"X": "ireland"}), lookback=timedelta(minutes=20))


def test_a_day_without_samples_is_skipped_with_why_and_nothing_is_written_for_it(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """Like VEE on a day whose readings are gone: no figures judged from nothing (a run over a day
    without samples used to succeed with 0 nodes and 0 hours, every state count 0 and its check passed,
    which reads as a quiet grid), a skip the metadata names with why, and nothing written for the day."""
    store_samples(pg, samples(profile((30, 0.0), (5, -0.3)), node="GN-E", start=at(9)))

    def run(first: date, last: date) -> dict[str, Any]:
        result = dg.materialize(
            [grid_stability],
            resources={"postgres": pg_resource, "grid": GridResource()},
            tags=partition_range_tags(first, last),
        )
        assert result.success
        return {
            k: v.value
            for k, v in result.asset_materializations_for_node("grid_stability")[0].metadata.items()
        }

    stored = run(DAY, DAY)
    assert (stored["days_analysed"], stored["days_skipped"], stored["node_hours"]) == (1, 0, 1)
    hours = query(pg, "SELECT * FROM ops.grid_stability ORDER BY hour_start").drop(columns="processed_at")
    state = (events(pg), grid_alerts(pg))
    assert state[1] == [("GN-E", "critical", "open")]

    # The next day has no sample: skipped, said why; the stored day, its event and its alert stand.
    empty = run(DAY + timedelta(days=1), DAY + timedelta(days=1))
    assert (empty["days_analysed"], empty["days_skipped"], empty["nodes"], empty["node_hours"]) == (
        0,
        1,
        0,
        0,
    )
    assert f"| {DAY + timedelta(days=1)} | no samples in ops.grid_status |" in empty["skipped"]
    # Over both days: the first judged, the second skipped.
    both = run(DAY, DAY + timedelta(days=1))
    assert (both["days_analysed"], both["days_skipped"], both["node_hours"]) == (1, 1, 1)
    after = query(pg, "SELECT * FROM ops.grid_stability ORDER BY hour_start").drop(columns="processed_at")
    pd.testing.assert_frame_equal(after, hours)
    assert (events(pg), grid_alerts(pg)) == state

    # The day's samples leave PostgreSQL (lifecycle): its figures stand, the run says why it skipped it.
    lake = Lake(str(tmp_path / "lake"))
    assert copy_to_warm(pg, lake, TABLES["grid_status"], DAY, NOW).action == "copied"
    pg.commit()
    policy = Policy().with_ages("grid_status", hot_days=1, warm_days=90)
    (deleted,) = [
        o for o in retention.clean_hot(pg, lake, policy, DAY + timedelta(days=1), NOW) if o.day == DAY
    ]
    assert deleted.action == "deleted_hot"
    gone = run(DAY, DAY)
    assert (gone["days_analysed"], gone["days_skipped"]) == (0, 1)
    assert "its samples left PostgreSQL (lifecycle)" in gone["skipped"]
    kept = query(pg, "SELECT * FROM ops.grid_stability ORDER BY hour_start").drop(columns="processed_at")
    pd.testing.assert_frame_equal(kept, hours)
    # A late sample of that day alone does not replace what the day's samples gave: left to a restore.
    store_samples(pg, samples(profile((1, 0.0)), node="GN-E", start=at(15)), batch_id="B-late")
    late = run(DAY, DAY)
    assert (late["days_analysed"], late["days_skipped"]) == (0, 1)
    late_rows = query(pg, "SELECT * FROM ops.grid_stability ORDER BY hour_start").drop(columns="processed_at")
    pd.testing.assert_frame_equal(late_rows, hours)
    assert (events(pg), grid_alerts(pg)) == state


def test_figures_of_samples_taken_out_otherwise_are_removed_and_the_day_is_skipped(
    pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    """A day whose samples are gone but not to the lake (a rollback took its only batch out): what an
    earlier run stored from them goes, and the run says it skipped the day and what it removed."""
    store_samples(pg, samples(profile((30, 0.0), (10, 0.12)), node="GN-D", start=at(9)))
    resources = {"postgres": pg_resource, "grid": GridResource()}
    assert dg.materialize([grid_stability], resources=resources, partition_key=DAY.isoformat()).success
    assert pg.execute("SELECT count(*) FROM ops.grid_stability").fetchone() == (1,)
    pg.execute("DELETE FROM ops.grid_status")
    pg.commit()
    result = dg.materialize([grid_stability], resources=resources, partition_key=DAY.isoformat())
    assert result.success
    metadata = result.asset_materializations_for_node("grid_stability")[0].metadata
    assert metadata["days_skipped"].value == 1
    assert "no samples in ops.grid_status; 1 hours an earlier run stored" in str(metadata["skipped"].value)
    assert pg.execute("SELECT count(*) FROM ops.grid_stability").fetchone() == (0,)
    assert events(pg) == []
