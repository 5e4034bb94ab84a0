"""`grid/store.py` on a real PostgreSQL: a day's rows do not depend on what else a run read (cadence,
EN 50160's week), events left open when a node goes silent get their end, overlapping runs take turns,
and a node dipping in and out of alert stays one alert."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
import pytest

from metrify_assets.alerts.store import list_alerts
from metrify_assets.grid import store
from metrify_assets.grid.assets import grid_stability
from metrify_assets.grid.store import run_days
from metrify_assets.partitions import partition_range_tags
from metrify_assets.resources import GridResource, PostgresResource
from tests.grid.series import profile, samples
from tests.grid.test_assets import CONFIG, DAY, at, events, grid_alerts, query, store_samples

pytestmark = pytest.mark.postgres


def stored_day(conn: psycopg.Connection, day: date) -> pd.DataFrame:
    return query(
        conn, "SELECT * FROM ops.grid_stability WHERE day = %s ORDER BY grid_node_id, hour_start", (day,)
    ).drop(columns="processed_at")


def reset(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE ops.grid_stability, ops.grid_state_events, ops.alerts CASCADE")
    conn.commit()


def test_a_switch_from_1_s_to_10_s_sampling_at_midnight_gives_the_same_day_however_it_is_run(
    pg: psycopg.Connection,
) -> None:
    """GN-C samples every second from 21:00 the day before, every 10 s from midnight, and is 120 mHz
    off from 06:00 to 06:10. Over both days most spacings read are 1 s: a cadence taken over the whole
    read made every 10 s spacing a gap (6 covered minutes an hour, no state could last)."""
    yesterday = samples(np.zeros(3 * 3600), node="GN-C", start=at(-3), step_s=1.0)
    today = samples(profile((360, 0.0), (10, 0.12), (350, 0.0)), node="GN-C", start=at(0))
    store_samples(pg, pd.concat([yesterday, today], ignore_index=True))

    alone = run_days(pg, DAY, DAY, CONFIG)
    rows_alone, events_alone = stored_day(pg, DAY), events(pg)
    reset(pg)
    both = run_days(pg, DAY - timedelta(days=1), DAY, CONFIG)
    pd.testing.assert_frame_equal(stored_day(pg, DAY), rows_alone)
    assert (
        events(pg)
        == events_alone
        == [("GN-C", "alert", "beyond_half_max_steady_state", at(6, 5), at(6, 10), DAY)]
    )
    assert len(alone.figures) == 12 and len(both.figures) == 3 + 12
    covered = rows_alone.set_index(pd.to_datetime(rows_alone["hour_start"], utc=True))["covered_minutes"]
    assert covered[at(0)] == pytest.approx(60 - 4 * 9 / 60)  # 4 spacings after the switch read as gaps
    assert (covered[covered.index > at(0)] == 60.0).all()
    assert set(rows_alone["rocof_window_s"]) == {10.0}
    assert rows_alone["max_abs_steady_state_hz"].notna().all()


def silent_then_back() -> tuple[pd.DataFrame, pd.DataFrame]:
    """GN-S: 120 mHz from 19:50 (alert from 19:55) until its feed stops at 20:10 on 2026-01-05; it
    comes back five days later, normal, at 10:00."""
    before = samples(profile((10, 0.0), (20, 0.12)), node="GN-S", start=at(19, 40))
    after = samples(profile((30, 0.0)), node="GN-S", start=at(5 * 24 + 10))
    return before, after


def test_an_event_left_open_when_a_node_went_silent_ends_when_its_data_resumes(
    pg: psycopg.Connection,
) -> None:
    before, after = silent_then_back()
    store_samples(pg, before)
    run_days(pg, DAY, DAY, CONFIG)
    open_event = ("GN-S", "alert", "beyond_half_max_steady_state", at(19, 55), None, DAY)
    assert events(pg) == [open_event] and grid_alerts(pg) == [("GN-S", "warning", "open")]
    for day in range(1, 4):  # the nightly runs over the silent days find nothing
        run_days(pg, DAY + timedelta(days=day), DAY + timedelta(days=day), CONFIG)
    assert events(pg) == [open_event]

    store_samples(pg, after, batch_id="B-back")
    back = run_days(pg, DAY + timedelta(days=5), DAY + timedelta(days=5), CONFIG)
    # Its last sample before the silence (20:09:50) stands for its 10 s.
    assert events(pg) == [("GN-S", "alert", "beyond_half_max_steady_state", at(19, 55), at(20, 10), DAY)]
    assert back.closed == 1 and back.resolved == ["GN-S"]
    assert grid_alerts(pg) == [("GN-S", "warning", "resolved")]


def test_a_re_run_that_does_not_read_on_still_sees_the_gap_after_an_open_event(
    pg: psycopg.Connection,
) -> None:
    before, after = silent_then_back()
    store_samples(pg, pd.concat([before, after], ignore_index=True))
    run = run_days(pg, DAY, DAY, CONFIG, max_lookahead_days=0)
    assert run.lookahead_days == 0  # the node's next sample, read with the day, follows a gap
    assert events(pg) == [("GN-S", "alert", "beyond_half_max_steady_state", at(19, 55), at(20, 10), DAY)]


def test_the_next_event_across_midnight_ends_only_itself(pg: psycopg.Connection) -> None:
    """After the silence GN-S is back at 120 mHz from 23:50 on day 5 to 00:20 on day 6: its end must
    not be stamped on the event left open before the silence, nor on an older one left open."""
    before, _ = silent_then_back()
    later = samples(profile((110, 0.0), (30, 0.12), (100, 0.0)), node="GN-S", start=at(5 * 24 + 22))
    store_samples(pg, before)
    run_days(pg, DAY, DAY, CONFIG)
    pg.execute(  # an older event left open (by an earlier release, say) that no run has data to end
        "INSERT INTO ops.grid_state_events (grid_node_id, started_at, ended_at, state, rule, area, "
        "start_day, peak_deviation_hz) VALUES ('GN-S', %s, NULL, 'alert', 'beyond_standard_range', "
        "'continental_europe', %s, 0.07)",
        (at(-24 * 10).to_pydatetime(), DAY - timedelta(days=10)),
    )
    pg.commit()
    store_samples(pg, later, batch_id="B-later")
    for day in (5, 6):
        run_days(pg, DAY + timedelta(days=day), DAY + timedelta(days=day), CONFIG)
    assert events(pg) == [
        ("GN-S", "alert", "beyond_standard_range", at(-240), None, DAY - timedelta(days=10)),
        ("GN-S", "alert", "beyond_half_max_steady_state", at(19, 55), at(20, 10), DAY),
        (
            "GN-S",
            "alert",
            "beyond_half_max_steady_state",
            at(5 * 24 + 23, 55),
            at(6 * 24, 20),
            DAY + timedelta(days=5),
        ),
    ]


def test_reading_on_across_a_daylight_saving_change_of_the_session_time_zone_misses_no_hour(
    pg: psycopg.Connection,
) -> None:
    """A server whose time zone is Europe/Amsterdam (its default, or the session's): GN-D, 1-minute
    samples, is 120 mHz off from 22:00 UTC on 2026-03-28 until 00:30 UTC on 03-30, across the night
    the clocks go forward (01:00 UTC on 03-29). The run over 03-28 reads on a day at a time; a day
    read as `+ interval '1 day'` in the session's zone was 23 hours there, and the hour it skipped
    (23:00-24:00 UTC) read as a gap that ended the event at 23:00 on 03-29."""
    pg.execute("SET TIME ZONE 'Europe/Amsterdam'")
    pg.commit()
    start = pd.Timestamp("2026-03-28T22:00:00Z")
    minutes = int((pd.Timestamp("2026-03-30T01:00:00Z") - start) / pd.Timedelta(minutes=1))
    deviation = np.where(np.arange(minutes) < minutes - 30, 0.12, 0.0)
    store_samples(pg, samples(deviation, node="GN-D", start=start, step_s=60))
    run = run_days(pg, date(2026, 3, 28), date(2026, 3, 28), CONFIG)
    assert run.lookahead_days == 2
    assert events(pg) == [
        (
            "GN-D",
            "alert",
            "beyond_half_max_steady_state",
            pd.Timestamp("2026-03-28T22:05:00Z"),
            pd.Timestamp("2026-03-30T00:30:00Z"),
            date(2026, 3, 28),
        )
    ]


def voltage_week() -> pd.DataFrame:
    """GN-V, 1-minute samples over the 7 days ending DAY; on the third day 50 of its 144 10-minute
    voltage means are 12 % high."""
    first = DAY - timedelta(days=6)
    minutes = 7 * 1440
    voltage = np.full(minutes, 232.0)
    voltage[2 * 1440 : 2 * 1440 + 500] = 257.6
    return samples(
        np.zeros(minutes),
        node="GN-V",
        start=pd.Timestamp(first.isoformat(), tz="UTC"),
        step_s=60,
        voltage_v=voltage.tolist(),
    )


def test_the_weekly_voltage_figure_of_a_day_does_not_depend_on_which_days_ran_before(
    pg: psycopg.Connection,
) -> None:
    store_samples(pg, voltage_week())
    run_days(pg, DAY, DAY, CONFIG)  # the last day first, on an empty ops.grid_stability
    first_alone = stored_day(pg, DAY)
    assert set(first_alone["voltage_week_windows"]) == {7 * 144}
    assert first_alone["voltage_week_within_share"].tolist() == pytest.approx([1 - 50 / (7 * 144)] * 24)
    reset(pg)
    run_days(pg, DAY - timedelta(days=6), DAY, CONFIG)
    pd.testing.assert_frame_equal(stored_day(pg, DAY), first_alone)


def test_overlapping_runs_take_turns_and_stamp_rows_when_they_write(
    pg: psycopg.Connection, pg_resource: PostgresResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hourly refresh (yesterday and today) and the nightly job (the three days up to yesterday)
    both write yesterday; the write of the first is held open for a while so the second overlaps."""
    store_samples(
        pg, pd.concat([samples(profile((240, 0.0), (8, 0.12)), node=n, start=at(-3)) for n in ("A", "B")])
    )
    run_days(pg, DAY - timedelta(days=2), DAY, CONFIG)
    reference_rows = query(pg, "SELECT * FROM ops.grid_stability ORDER BY grid_node_id, hour_start")
    reference_events = events(pg)
    reset(pg)

    write = store.write

    def slow_write(*args: Any, **kwargs: Any) -> Any:
        written = write(*args, **kwargs)
        time.sleep(1.0)  # rows written, not committed
        return written

    monkeypatch.setattr(store, "write", slow_write)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(first: date, last: date) -> Callable[[], None]:
        def target() -> None:
            try:
                with pg_resource.connect() as conn:
                    start.wait()
                    run_days(conn, first, last, CONFIG)
            except BaseException as err:  # noqa: BLE001 - reported by the test
                errors.append(err)

        return target

    threads = [
        threading.Thread(target=run(DAY - timedelta(days=1), DAY)),
        threading.Thread(target=run(DAY - timedelta(days=2), DAY - timedelta(days=1))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    rows = query(pg, "SELECT * FROM ops.grid_stability ORDER BY grid_node_id, hour_start")
    pd.testing.assert_frame_equal(
        rows.drop(columns="processed_at"), reference_rows.drop(columns="processed_at")
    )
    assert events(pg) == reference_events


def test_a_run_of_more_than_31_days_locks_the_grid_write_as_a_whole(pg: psycopg.Connection) -> None:
    store_samples(pg, samples(profile((30, 0.0), (8, 0.12)), node="GN-L", start=at(9)))
    run_days(pg, DAY, DAY, CONFIG)
    one_day = stored_day(pg, DAY)
    reset(pg)
    with pg.transaction():
        store.lock_days(pg, DAY - timedelta(days=40), DAY)
        held = pg.execute(
            "SELECT objid, mode FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::int::oid "
            "AND pid = pg_backend_pid()",
            (store.LOCK_SPACE,),
        ).fetchall()
    assert held == [(0, "ExclusiveLock")]
    run_days(pg, DAY - timedelta(days=40), DAY, CONFIG)
    pd.testing.assert_frame_equal(stored_day(pg, DAY), one_day)


def test_processed_at_is_when_the_rows_were_written_not_when_the_run_began(
    pg: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_samples(pg, samples(profile((30, 0.0), (8, 0.12)), node="GN-P", start=at(9)))
    read = store.read_and_analyse

    def slow_read(*args: Any, **kwargs: Any) -> Any:
        analysed = read(*args, **kwargs)
        time.sleep(1.0)  # a long analysis
        return analysed

    monkeypatch.setattr(store, "read_and_analyse", slow_read)
    began = time.time()
    run_days(pg, DAY, DAY, CONFIG)
    ((hours,),) = pg.execute(
        "SELECT min(extract(epoch FROM processed_at)) FROM ops.grid_stability"
    ).fetchall()
    ((event,),) = pg.execute(
        "SELECT min(extract(epoch FROM processed_at)) FROM ops.grid_state_events"
    ).fetchall()
    assert float(hours) >= began + 1.0 and float(event) >= began + 1.0


def test_a_node_dipping_in_and_out_of_alert_every_hour_stays_one_alert(pg: psycopg.Connection) -> None:
    """GN-F is 120 mHz off from :40 to :58 every hour (alert from :45), normal otherwise; its data
    arrives in pieces and the day is run after each. A run whose newest sample is normal again resolves
    the alert only once the node has been normal for Continental Europe's time to restore frequency
    (15 minutes)."""
    hour = profile((40, 0.0), (18, 0.12), (2, 0.0))
    data = samples(np.tile(hour, 3), node="GN-F", start=at(0))
    cutoffs = [at(0, 50), at(1, 5), at(1, 50), at(2, 5), at(2, 50)]
    stored = at(0)
    outcomes = []
    for cutoff in [*cutoffs, at(3)]:
        piece = data[(data["measured_at"] >= stored) & (data["measured_at"] < cutoff)]
        store_samples(pg, piece, batch_id=f"B-{cutoff:%H%M}")
        stored = cutoff
        run = run_days(pg, DAY, DAY, CONFIG)
        outcomes.append((run.raised, run.resolved))
    assert outcomes[:5] == [(["GN-F"], []), ([], []), (["GN-F"], []), ([], []), (["GN-F"], [])]
    assert grid_alerts(pg) == [("GN-F", "warning", "open")]  # at 03:00, normal for 2 minutes only
    (alert,) = list_alerts(pg, kind="grid_state")
    assert pd.Timestamp(alert.last_seen_at) == at(2, 57 + 50 / 60)  # the last sample in alert

    normal = samples(profile((20, 0.0)), node="GN-F", start=at(3))
    store_samples(pg, normal, batch_id="B-normal")
    assert run_days(pg, DAY, DAY, CONFIG).resolved == ["GN-F"]  # normal since 02:58, now 03:19:50
    (alert,) = list_alerts(pg, "all", kind="grid_state")
    assert alert.status == "resolved" and alert.resolved_at == at(3, 19 + 50 / 60)


def test_an_alert_state_that_began_and_ended_within_a_run_is_raised_and_resolved_once(
    pg: psycopg.Connection,
) -> None:
    """GN-S is 120 mHz off for 10 minutes at 12:00 (alert after 5), normal for the rest of the day: a
    run over the whole day still raises the alert, resolved at once, and the next day's run, whose
    lookback no longer reaches it, raises nothing more."""
    day = profile((12 * 60, 0.0), (10, 0.12), (11 * 60 + 50, 0.0))
    store_samples(pg, samples(day, node="GN-S", start=at(0)), batch_id="B-day")
    first = run_days(pg, DAY, DAY, CONFIG)
    assert (first.raised, first.resolved) == (["GN-S"], ["GN-S"])
    (alert,) = list_alerts(pg, "all", kind="grid_state")
    assert alert.status == "resolved" and at(12, 5) <= pd.Timestamp(alert.last_seen_at) <= at(12, 10)

    again = run_days(pg, DAY, DAY, CONFIG)  # a re-run of the same day: the alert already saw it
    assert (again.raised, again.resolved) == ([], [])
    store_samples(pg, samples(profile((60, 0.0)), node="GN-S", start=at(24)), batch_id="B-next")
    nxt = run_days(pg, DAY + timedelta(days=1), DAY + timedelta(days=1), CONFIG)
    assert nxt.raised == [] and len(list_alerts(pg, "all", kind="grid_state")) == 1


SECONDS_20 = pd.Timedelta(seconds=20)  # the steady-state median is back under 200 mHz 20 s after the samples


def four_nodes_over_four_days() -> pd.DataFrame:
    """10 s samples of 2026-01-04 .. 01-07 (the run is 01-05 .. 01-07, its days 0, 1 and 2):
    GN-A 120 mHz from 23:30 on day 0 to 01:00 on day 2, 160 mHz at noon on day 1, its voltage 12 %
    high for 3 hours of each day; GN-B 120 mHz from 23:50 on day 1 to 00:20 on day 2, 150 mHz from
    00:05; GN-C 120 mHz from 23:00 on the day before the run to 00:40 on day 0; GN-D 250 mHz (an
    emergency) from 10:00 to 10:10 on day 0, normal after; GN-E 120 mHz from 23:00 on the day before
    the run to 02:00 on day 1, 150 mHz at 23:30 on that day before. Each node's newest sample is the
    run's last."""
    n = 4 * 8640
    start = at(-24)

    def index(hours: float) -> int:
        return round((hours + 24) * 360)

    nodes = []
    for node, spans in {
        "GN-A": [(23.5, 49, 0.12), (36, 36 + 1 / 6, 0.16)],
        "GN-B": [(47 + 5 / 6, 48 + 1 / 3, 0.12), (48 + 1 / 12, 48.25, 0.15)],
        "GN-C": [(-1, 2 / 3, 0.12)],
        "GN-D": [(10, 10 + 1 / 6, 0.25)],
        "GN-E": [(-1, 26, 0.12), (-0.5, -0.5 + 1 / 6, 0.15)],
    }.items():
        deviation = 0.01 * np.sin(np.arange(n) / 50)
        for a, b, dev in spans:
            deviation[index(a) : index(b)] = dev
        voltage = np.full(n, 231.0)
        if node == "GN-A":
            for day in range(4):
                voltage[day * 8640 + 3600 : day * 8640 + 4680] = 257.6
        nodes.append(samples(deviation, node=node, start=start, voltage_v=voltage.tolist()))
    return pd.concat(nodes, ignore_index=True)


def test_a_range_run_in_chunks_of_a_day_stores_what_the_range_at_once_does(pg: psycopg.Connection) -> None:
    """Chunks of one day (what the asset runs) against one chunk over the three days: the same hours
    (weekly voltage figures included), the same events (GN-A's spanning two chunk boundaries stays
    one, GN-B's peak comes from the next chunk, GN-C's from before the run is carried in once) and
    the same alerts (GN-D's emergency on day 0 is raised and resolved by the last chunk; GN-E's, as
    though the day before the run had not been processed, has its start and peak from the first
    chunk, though the second saw it last)."""
    store_samples(pg, four_nodes_over_four_days())
    first, last = DAY, DAY + timedelta(days=2)

    def stored() -> tuple[pd.DataFrame, list[tuple[object, ...]], dict[str, float], pd.DataFrame]:
        hours = query(pg, "SELECT * FROM ops.grid_stability ORDER BY grid_node_id, hour_start")
        peaks = pg.execute("SELECT grid_node_id, peak_deviation_hz FROM ops.grid_state_events").fetchall()
        alerts = query(pg, "SELECT * FROM ops.alerts WHERE kind = 'grid_state' ORDER BY dedup_key")
        return (
            hours.drop(columns="processed_at"),
            events(pg),
            {node: round(float(peak), 6) for node, peak in peaks},
            alerts.drop(columns="alert_id"),
        )

    outcomes = []
    for chunk_days in (None, 1):
        reset(pg)
        run_days(pg, first - timedelta(days=1), first - timedelta(days=1), CONFIG)  # stores GN-C's event
        pg.execute("DELETE FROM ops.grid_state_events WHERE grid_node_id = 'GN-E'")
        pg.commit()
        runs = list(store.run_chunks(pg, first, last, CONFIG, chunk_days=chunk_days))
        assert sum(r.carried for r in runs) == 1  # GN-C's, not an event of the run's own earlier chunk
        assert runs[-1].raised == runs[-1].resolved == ["GN-A", "GN-B", "GN-C", "GN-D", "GN-E"]
        assert [(r.first, r.last, len(r.figures)) for r in runs] == (
            [(first, last, 5 * 72)] if chunk_days is None else [(d, d, 5 * 24) for d in days_of(first, last)]
        )
        outcomes.append(stored())
    (whole_hours, whole_events, whole_peaks, whole_alerts), (hours, found, peaks, alerts) = outcomes
    pd.testing.assert_frame_equal(hours, whole_hours)
    pd.testing.assert_frame_equal(alerts, whole_alerts)
    assert (found, peaks) == (whole_events, whole_peaks)
    assert found == [
        ("GN-A", "alert", "beyond_half_max_steady_state", at(23, 35), at(49), DAY),
        ("GN-B", "alert", "beyond_half_max_steady_state", at(47, 55), at(48, 20), DAY + timedelta(days=1)),
        ("GN-C", "alert", "beyond_half_max_steady_state", at(-1, 5), at(0, 40), DAY - timedelta(days=1)),
        ("GN-D", "emergency", "steady_state_beyond_max", at(10, 0.5), at(10, 10) + SECONDS_20, DAY),
    ]
    assert peaks == {"GN-A": 0.16, "GN-B": 0.15, "GN-C": 0.12, "GN-D": 0.25}
    e = alerts.set_index("subject").loc["GN-E", "details"]
    assert (e["started_at"], round(e["peak_deviation_hz"], 6)) == (at(-1, 5).isoformat(), 0.15)
    # The week of day 2 counts day 0's windows (an earlier chunk) and the day before the run's (read).
    week = hours[(hours["grid_node_id"] == "GN-A") & (hours["day"] >= first)].groupby("day")
    assert week["voltage_week_windows"].first().to_dict() == dict(
        zip(days_of(first, last), (288, 432, 576), strict=True)
    )
    assert set(week["voltage_week_within_share"].first().round(3)) == {0.875}  # 18 of 144 a day high


def test_an_event_from_before_the_run_is_carried_in_once_however_many_chunks_it_spans(
    pg: psycopg.Connection,
) -> None:
    """GN-C's event (from the day before the run to day 0) and GN-E's (to day 1: two chunks of a day)
    are the run's two carried in, whether it runs in chunks of a day or at once."""
    store_samples(pg, four_nodes_over_four_days())
    first, last = DAY, DAY + timedelta(days=2)
    carried = []
    for chunk_days in (None, 1):
        reset(pg)
        run_days(pg, first - timedelta(days=1), first - timedelta(days=1), CONFIG)
        carried.append(
            sum(r.carried for r in store.run_chunks(pg, first, last, CONFIG, chunk_days=chunk_days))
        )
    assert carried == [2, 2]


def test_the_asset_over_a_range_logs_each_chunk_and_sums_its_metadata(
    pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    """`grid_stability` over the three days in chunks of a day and in one: the same metadata (counts,
    tables, chart, check), the events open as stored at the end (none: GN-A's event was open at the
    end of its first two chunks), and a log line per chunk."""
    store_samples(pg, four_nodes_over_four_days())
    tags = partition_range_tags(DAY, DAY + timedelta(days=2))
    metadata, logs = [], []
    for chunk_days in (3, 1):
        reset(pg)
        instance = dg.DagsterInstance.ephemeral()
        config = {"ops": {"grid_stability": {"config": {"chunk_days": chunk_days}}}}
        result = dg.materialize(
            [grid_stability],
            resources={"postgres": pg_resource, "grid": GridResource()},
            tags=tags,
            run_config=config,
            instance=instance,
        )
        assert result.success
        materialized = result.asset_materializations_for_node("grid_stability")
        assert len(materialized) == 3  # one per day of the range, with the run's metadata
        metadata.append({k: v.value for k, v in materialized[0].metadata.items()})
        logs.append([r.user_message for r in instance.all_logs(result.run_id)])
    assert metadata[1] == metadata[0]
    # GN-C's and GN-E's events started the day before: not the run's, and not stored to carry on.
    assert (metadata[1]["node_hours"], metadata[1]["events"], metadata[1]["events_open"]) == (5 * 72, 3, 0)
    chunks = [m for m in logs[1] if "(days" in m]
    assert [m.split(":")[0] for m in chunks] == [
        f"grid stability {d}..{d} (days {k + 1} of 3)" for k, d in enumerate(days_of(DAY, DAY + timedelta(2)))
    ]


def days_of(first: date, last: date) -> list[date]:
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def test_a_flagged_sample_at_midnight_is_judged_by_its_neighbours_whichever_days_a_run_reads(
    pg: psycopg.Connection,
) -> None:
    """GN-FLAG-MID drops 600 mHz at 23:59 for 7 minutes, every sample of it flagged and pending. The
    23:59 sample stands by its two neighbours after midnight: a run of its day alone reads them too
    (`CONTEXT_AFTER`), so the day's rows are those of a run over both days."""
    day = date(2026, 5, 11)
    start = pd.Timestamp("2026-05-11T22:00:00Z")
    raw = samples(
        profile((119, 0.0), (7, -0.6), (114, 0.0), step_s=60.0), node="GN-FLAG-MID", start=start, step_s=60.0
    )
    store_samples(pg, raw, batch_id="B-grid-flag-mid")
    pg.execute(
        "UPDATE ops.grid_status SET quality_flags = 'frequency_out_of_range' "
        "WHERE grid_node_id = 'GN-FLAG-MID' AND abs(frequency_hz - 50) > 0.5"
    )
    pg.commit()

    run_days(pg, day, day, CONFIG)
    alone = stored_day(pg, day)
    assert alone["excluded_samples"].tolist() == [0, 0]
    run_days(pg, day, day + timedelta(days=1), CONFIG)
    pd.testing.assert_frame_equal(stored_day(pg, day), alone)
    midnight = pd.Timestamp("2026-05-12T00:00:00Z")
    assert [e for e in events(pg) if e[0] == "GN-FLAG-MID"] == [
        (
            "GN-FLAG-MID",
            "emergency",
            "steady_state_beyond_max",
            midnight,
            midnight + pd.Timedelta(minutes=7),
            day + timedelta(days=1),
        )
    ]
