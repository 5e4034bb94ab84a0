"""The grid stability run against PostgreSQL: read a run's samples, write figures, events and alerts.

A run over the UTC days `first`..`last` reads the samples of those days plus `lookback` (1 hour)
before the first: the states are decided on trailing windows of at most 20 minutes (Ireland's time to
restore frequency) and a minute, so the state at midnight is exact and carries across it. With them it
reads each node's `CADENCE_SPACINGS` samples before the lookback and its first `CONTEXT_AFTER` samples
after the last day (`read_context`), so each sample's cadence, duration and gaps, and whether a sample
awaiting review is left out as a fault (`analysis.excluded`, judged by its neighbours), are the same
whatever else the run read. A node still in alert or emergency at the end of what was read is read on, a day of its data at
a time from its next sample (at most `max_lookahead_days`), until its state ends or its data does, so
an event gets its end even when its day is re-run after the next day's data arrived.

A run goes through its days `chunk_days` at a time (`run_chunks`; the asset: `CHUNK_DAYS`), so its
memory is that of a chunk's samples whatever the range: each chunk reads and looks back as a run of
its days alone would (only the last reads on), and is one transaction, holding an advisory lock per
day of the chunk from before the read (`lock_days`), so runs that share a day take turns. Once the
run ends, the stored rows and events are those of the range run at once: an event going on past a
chunk's last day is stored open and ended by the next chunk (until that commits, or if the run fails
first, it reads as open), the weekly voltage figure takes the run's earlier days from the chunks
before, and the alerts are decided with the last chunk from what every chunk saw (`Sightings`). It
writes:
- `ops.grid_stability`: the hours of the run's days (delete + insert by day), with EN 50160's weekly
  figure over the 6 days before aggregated from their samples (`prior_voltage_days`);
- `ops.grid_excluded_samples`: the samples of the run's days left out as sensor faults (delete +
  insert by day, with the hours that count them in `excluded_samples`);
- `ops.grid_state_events`: an event belongs to the day it started. The run replaces the events that
  started on its days; the node's newest event that started earlier and was still open at the first
  midnight gets its end (and a larger peak) from this run; an earlier event still open although a gap
  in the node's data follows it is closed at its last sample before the gap (`close_at_gaps`);
- `ops.alerts` (`alerts.store`): for a node whose newest stored sample is the last one this run read,
  its state there opens or refreshes `grid_state:<node>` (warning for alert, critical for emergency)
  or resolves it (normal) once the node has been normal for its area's time to restore frequency.
  A run over old days does not touch the alerts of a node whose data goes on.
`processed_at` is the time each row was written (`clock_timestamp()`).

Each sample is read with `suspect` (`suspect_sql`): the record rules flagged its frequency and no
reviewer approved it. A decision stamps the sample's day in `ops.retouched_days`, and
`late_days_sensor` (or the hourly refresh) runs the day again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from metrify_assets.alerts.store import Alert, raise_alert, resolve_condition
from metrify_assets.grid.analysis import (
    INPUT_COLUMNS,
    NEIGHBOURS,
    SUSPECT,
    Analysis,
    GridConfig,
    analyse,
    joined,
    with_nodes_of,
)
from metrify_assets.grid.areas import area
from metrify_assets.grid.risk import RISK_COLUMNS
from metrify_assets.grid.stability import FIGURE_COLUMNS, VoltageConfig, weekly_voltage_compliance
from metrify_assets.grid.states import EVENT_COLUMNS, NORMAL, STATES
from metrify_assets.grid.timeline import CADENCE_SPACINGS
from metrify_assets.storage.frames import read_frame

LOOKBACK = timedelta(hours=1)
# Samples read after a run's end: the last sample's successor (its duration, a gap) and the neighbours
# that decide whether the samples up to the end, and those the end's successor may be, are faults.
CONTEXT_AFTER = 2 * NEIGHBOURS + 1
MAX_LOOKAHEAD_DAYS = 7
LOCK_SPACE = 0x67726964  # "grid": first key of the grid write's advisory locks (second: the day)
MAX_LOCKED_DAYS = 31  # a longer run locks the whole grid write instead of each of its days
ALERT_KIND = "grid_state"
SEVERITY = {"alert": "warning", "emergency": "critical"}

VOLTAGE_DAY_COLUMNS = ["grid_node_id", "day", "voltage_windows", "voltage_windows_within"]
WEEKLY_COLUMNS = ["voltage_week_windows", "voltage_week_within_share", "voltage_week_compliant"]
STABILITY_WRITE = ["day", *FIGURE_COLUMNS, *WEEKLY_COLUMNS, *RISK_COLUMNS]
EVENTS_WRITE = [*EVENT_COLUMNS, "start_day"]
EXCLUDED_WRITE = ["day", "grid_node_id", "measured_at"]  # ops.grid_excluded_samples (migration 0033)


def alert_key(node: str) -> str:
    return f"{ALERT_KIND}:{node}"


CHUNK_DAYS = 1  # days the asset analyses and commits at a time: its memory is one day's samples
VOLTAGE_WEEK_BEFORE = 6  # days before a day that its weekly EN 50160 figure takes in


@dataclass(frozen=True)
class GridRun:
    first: date
    last: date
    figures: pd.DataFrame  # the rows written to ops.grid_stability
    events: pd.DataFrame  # the events written (started on its days; one going on past them is ended
    # by the next chunk: `stored_events`)
    carried: int  # events of days before the run whose end or peak this run updated
    closed: int  # events of earlier days left open that this run closed at a gap
    lookahead_days: int  # days read on past the last day
    raised: list[str] = field(default_factory=list)  # nodes whose grid_state alert was opened or refreshed
    resolved: list[str] = field(default_factory=list)  # nodes whose grid_state alert was resolved


def suspect_sql(alias: str = "") -> str:
    """The select expression `suspect` of a row of `ops.grid_status` (named `alias`): its frequency is
    flagged (`frequency_out_of_range`) and its review item, of the stored version's batch, is not
    approved (pending; a rejected sample is no longer stored). The queue is probed only for flagged
    samples, through the index of approved grid items by batch (migration 0032)."""
    g = f"{alias}." if alias else ""
    return (
        f"CASE WHEN {g}quality_flags LIKE '%%frequency_out_of_range%%' THEN NOT EXISTS ("
        f"SELECT 1 FROM ops.review_queue q WHERE q.batch_id = {g}batch_id AND q.source = 'grid_status' "
        f"AND q.status = 'approved' AND split_part(q.record_key, '|', 1) = {g}grid_node_id "
        f"AND split_part(q.record_key, '|', 2)::timestamptz = {g}measured_at) ELSE false END AS {SUSPECT}"
    )


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def read_samples(
    conn: psycopg.Connection, start: datetime, end: datetime, nodes: Iterable[str] | None = None
) -> pd.DataFrame:
    """Samples with `start <= measured_at < end` (of `nodes`, default all), INPUT_COLUMNS and SUSPECT."""
    node_list = None if nodes is None else list(nodes)
    frame = read_frame(
        conn,
        f"SELECT {', '.join(INPUT_COLUMNS)}, {suspect_sql()} FROM ops.grid_status "
        "WHERE measured_at >= %(start)s AND measured_at < %(end)s "
        "AND (%(nodes)s::text[] IS NULL OR grid_node_id = ANY(%(nodes)s))",
        {"start": start, "end": end, "nodes": node_list},
    )
    return _normalised(frame)


def read_context(conn: psycopg.Connection, nodes: list[str], start: datetime, end: datetime) -> pd.DataFrame:
    """Per node, the `CADENCE_SPACINGS` samples before `start` (the cadence of the first samples read
    is taken over them, so it does not depend on where the read begins) and the first `CONTEXT_AFTER`
    at or after `end` (what the last sample read stands for, whether a gap follows it, and the
    neighbours that judge the last samples awaiting review): index probes."""
    columns = ", ".join(f"g.{c}" for c in INPUT_COLUMNS) + f", {suspect_sql('g')}"
    frame = read_frame(
        conn,
        f"SELECT {columns} FROM unnest(%(nodes)s::text[]) AS n(node) CROSS JOIN LATERAL ("
        "SELECT * FROM ops.grid_status WHERE grid_node_id = n.node AND measured_at < %(start)s "
        "ORDER BY measured_at DESC LIMIT %(before)s) g "
        f"UNION ALL SELECT {columns} FROM unnest(%(nodes)s::text[]) AS n(node) CROSS JOIN LATERAL ("
        "SELECT * FROM ops.grid_status WHERE grid_node_id = n.node AND measured_at >= %(end)s "
        "ORDER BY measured_at LIMIT %(after)s) g",
        {"nodes": nodes, "start": start, "end": end, "before": CADENCE_SPACINGS, "after": CONTEXT_AFTER},
    )
    return _normalised(frame)


def following_day(conn: psycopg.Connection, since: dict[str, datetime]) -> pd.DataFrame:
    """Per node, the day of samples from its first sample at or after `since[node]` (a gap skipped):
    24 hours, as the caller moves on by, whatever the session's time zone (`+ interval '1 day'` is 23
    or 25 hours across its daylight-saving changes)."""
    columns = ", ".join(f"g.{c}" for c in INPUT_COLUMNS) + f", {suspect_sql('g')}"
    frame = read_frame(
        conn,
        f"SELECT {columns} FROM unnest(%(nodes)s::text[], %(since)s::timestamptz[]) AS n(node, since) "
        "CROSS JOIN LATERAL (SELECT min(measured_at) AS t0 FROM ops.grid_status "
        "WHERE grid_node_id = n.node AND measured_at >= n.since) f "
        "JOIN ops.grid_status g ON g.grid_node_id = n.node AND g.measured_at >= f.t0 "
        "AND g.measured_at < f.t0 + interval '24 hours'",
        {"nodes": list(since), "since": list(since.values())},
    )
    return _normalised(frame)


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=[*INPUT_COLUMNS, SUSPECT])
    return frame.assign(measured_at=pd.to_datetime(frame["measured_at"], utc=True))


def _after_read(raw: pd.DataFrame, more: pd.DataFrame) -> pd.DataFrame:
    """The rows of `more` later than the last sample `raw` holds of their node (lookahead reads only
    forward, so the rest are samples already read)."""
    if more.empty:
        return more
    last_read = raw.groupby("grid_node_id")["measured_at"].max()
    known = more["grid_node_id"].map(last_read)
    return more[known.isna().to_numpy() | (more["measured_at"] > known).to_numpy()]


def read_and_analyse(
    conn: psycopg.Connection,
    first: date,
    last: date,
    config: GridConfig,
    lookback: timedelta = LOOKBACK,
    max_lookahead_days: int = MAX_LOOKAHEAD_DAYS,
) -> tuple[Analysis, int]:
    """The analysis of the run's samples (with each node's context, `read_context`); a node still in
    alert or emergency at the end of what was read is read on, a day of its data at a time, and
    analysed again alone -> (analysis, days read on)."""
    read_start, read_end = day_start(first) - lookback, day_start(last + timedelta(days=1))
    raw = read_samples(conn, read_start, read_end)
    nodes = sorted(str(n) for n in raw["grid_node_id"].unique())
    context = read_context(conn, nodes, read_start, read_end) if nodes else raw.iloc[0:0]
    if len(context):
        raw = pd.concat([raw, context], ignore_index=True)
    analysis = analyse(raw, config)
    frontier: dict[str, datetime] = {}
    days = 0
    while days < max_lookahead_days and (still_open := analysis.nodes_open_at_end()):
        fetched = following_day(conn, {n: frontier.get(n, read_end) for n in still_open})
        starts = fetched["measured_at"].groupby(fetched["grid_node_id"]).min()
        frontier.update({str(n): (t + pd.Timedelta(days=1)).to_pydatetime() for n, t in starts.items()})
        more = _after_read(raw, fetched)  # without the next sample `read_context` already read
        if more.empty:
            break
        raw = pd.concat([raw, more], ignore_index=True)
        days += 1
        extended = sorted(str(n) for n in more["grid_node_id"].unique())
        analysis = analysis.replaced(analyse(raw[raw["grid_node_id"].isin(extended)], config), extended)
    return analysis, days


def prior_voltage_days(
    conn: psycopg.Connection,
    nodes: list[str],
    first: date,
    voltage: VoltageConfig,
    before: date | None = None,
) -> pd.DataFrame:
    """Per node and day of the 6 days before `first` (and before `before`, default `first`): the
    count of its 10-minute voltage means (clock-aligned, of the samples with a voltage) and of those
    within tolerance, aggregated from ops.grid_status itself, so the weekly figure of a day does not
    depend on which days ran before. One index range per node over 6 days; at most 6 rows per node."""
    return read_frame(
        conn,
        "SELECT grid_node_id, (to_timestamp(w * 600) AT TIME ZONE 'UTC')::date AS day, "
        "count(*) AS voltage_windows, "
        "count(*) FILTER (WHERE abs(mean_v - %(nominal)s) / %(nominal)s <= %(tolerance)s) "
        "AS voltage_windows_within "
        "FROM (SELECT grid_node_id, floor(extract(epoch FROM measured_at) / 600) AS w, "
        "avg(voltage_v) AS mean_v FROM ops.grid_status "
        "WHERE grid_node_id = ANY(%(nodes)s) AND measured_at >= %(start)s AND measured_at < %(end)s "
        "AND voltage_v IS NOT NULL GROUP BY grid_node_id, w) AS means "
        "GROUP BY grid_node_id, day",
        {
            "nodes": nodes,
            "start": day_start(first - timedelta(days=VOLTAGE_WEEK_BEFORE)),
            "end": day_start(min(first, before or first)),
            "nominal": voltage.nominal_v,
            "tolerance": voltage.tolerance,
        },
    )


def run_figures(
    conn: psycopg.Connection,
    analysis: Analysis,
    first: date,
    last: date,
    config: GridConfig,
    run_first: date | None = None,
    earlier: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The hours of the days `first`..`last`, with the weekly EN 50160 figures (STABILITY_WRITE
    columns), and those days' voltage counts (VOLTAGE_DAY_COLUMNS). In a run from `run_first` taken
    in chunks, `earlier` holds the counts of its days before `first` as the earlier chunks found
    them (as a run of all its days at once has them); only days before `run_first` are read."""
    figures = analysis.figures
    hours = pd.to_datetime(figures["hour_start"], utc=True)
    inside = (hours >= day_start(first)) & (hours < day_start(last + timedelta(days=1)))
    figures = figures[inside.to_numpy()].assign(day=hours[inside].dt.date.to_numpy())
    if figures.empty:
        return pd.DataFrame(columns=STABILITY_WRITE), pd.DataFrame(columns=VOLTAGE_DAY_COLUMNS)
    daily = figures.groupby(["grid_node_id", "day"], as_index=False)[VOLTAGE_DAY_COLUMNS[2:]].sum()
    nodes = sorted(daily["grid_node_id"].unique())
    parts = [prior_voltage_days(conn, nodes, first, config.voltage, before=run_first), daily]
    if earlier is not None:
        parts.append(earlier[earlier["grid_node_id"].isin(nodes)])
    weekly = weekly_voltage_compliance(joined(parts, daily), config.voltage)
    weekly = weekly.rename(
        columns={
            "week_windows": "voltage_week_windows",
            "week_within_share": "voltage_week_within_share",
            "week_compliant": "voltage_week_compliant",
        }
    )
    figures = figures.merge(weekly, on=["grid_node_id", "day"], how="left")
    figures["voltage_week_windows"] = figures["voltage_week_windows"].fillna(0).astype(int)
    return figures[STABILITY_WRITE], daily


def _value(value: Any) -> Any:
    """A frame value as psycopg adapts it: None for NaN/NaT, Python scalars for numpy ones."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return _value(value.item())
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def _copy(cur: psycopg.Cursor[Any], table: str, columns: list[str], frame: pd.DataFrame) -> None:
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in frame[columns].astype(object).itertuples(index=False, name=None):
            copy.write_row(tuple(_value(v) for v in row))


def lock_days(conn: psycopg.Connection, first: date, last: date) -> None:
    """Serialise grid runs per day until the transaction ends: each run holds an exclusive advisory
    lock per day of its own (taken in day order) and a shared lock on the whole grid write; a run of
    more than `MAX_LOCKED_DAYS` days takes the whole grid write exclusively instead. Two runs over a
    common day (the hourly refresh and the nightly job both cover yesterday) run one after the other,
    the second reading what the first wrote; runs over different days do not wait for each other."""
    days = (last - first).days + 1
    if days > MAX_LOCKED_DAYS:
        conn.execute("SELECT pg_advisory_xact_lock(%s::int, 0)", (LOCK_SPACE,))
        return
    conn.execute("SELECT pg_advisory_xact_lock_shared(%s::int, 0)", (LOCK_SPACE,))
    for k in range(days):
        conn.execute(
            "SELECT pg_advisory_xact_lock(%s::int, %s::int)",
            (LOCK_SPACE, (first + timedelta(days=k)).toordinal()),
        )


def _try_lock_day(conn: psycopg.Connection, day: date) -> bool:
    """Lock an earlier day whose event this run updates, unless another run holds it: that run
    re-derives the day's events itself (reading on as far as needed), so this one leaves them to it
    rather than wait (waiting could deadlock two runs that each hold a day of the other's events)."""
    row = conn.execute(
        "SELECT pg_try_advisory_xact_lock(%s::int, %s::int)", (LOCK_SPACE, day.toordinal())
    ).fetchone()
    return bool(row and row[0])


def write(
    conn: psycopg.Connection,
    first: date,
    last: date,
    figures: pd.DataFrame,
    analysis: Analysis,
    run_first: date | None = None,
) -> tuple[pd.DataFrame, int, int]:
    """Replace the hours of the days `first`..`last`, the samples they left out and the events that
    started on them; close the
    earlier events a gap ended, end the event carried in from before -> (events written, events
    carried in from before the run and updated (counted by its first chunk, from `run_first`, default
    `first`), earlier events closed at a gap). Does not commit."""
    start, end = day_start(first), day_start(last + timedelta(days=1))
    run_start = day_start(run_first or first)
    found = analysis.events.assign(
        started_at=pd.to_datetime(analysis.events["started_at"], utc=True),
        ended_at=pd.to_datetime(analysis.events["ended_at"], utc=True),
    )
    owned = found[(found["started_at"] >= start) & (found["started_at"] < end)]
    owned = owned.assign(start_day=owned["started_at"].dt.date)
    carried_in = found[
        (found["started_at"] < start) & (found["ended_at"].isna() | (found["ended_at"] >= start))
    ]
    with conn.cursor() as cur:
        cur.execute("DELETE FROM ops.grid_stability WHERE day BETWEEN %s AND %s", (first, last))
        _copy(cur, "ops.grid_stability", STABILITY_WRITE, figures)
        cur.execute("DELETE FROM ops.grid_excluded_samples WHERE day BETWEEN %s AND %s", (first, last))
        _copy(cur, "ops.grid_excluded_samples", EXCLUDED_WRITE, excluded_samples(analysis, start, end))
        cur.execute("DELETE FROM ops.grid_state_events WHERE start_day BETWEEN %s AND %s", (first, last))
        _copy(cur, "ops.grid_state_events", EVENTS_WRITE, owned)
    closed = close_at_gaps(conn, analysis, start)
    carried = sum(_carry(conn, event, start) for event in carried_in.itertuples(index=False))
    # A later chunk carries on the run's own events, or one from before the run the first chunk counted.
    return owned[EVENTS_WRITE], carried if start == run_start else 0, closed


def excluded_samples(analysis: Analysis, start: datetime, end: datetime) -> pd.DataFrame:
    """The samples with `start <= measured_at < end` that the analysis left out as sensor faults
    (EXCLUDED_WRITE): stored beside the hours that count them, so the mart leaves out the same ones."""
    samples = analysis.samples
    times = pd.to_datetime(samples["measured_at"], utc=True)
    chosen = (samples["excluded"].astype(bool) & (times >= start) & (times < end)).to_numpy()
    return pd.DataFrame(
        {
            "day": times[chosen].dt.date,
            "grid_node_id": samples["grid_node_id"][chosen],
            "measured_at": times[chosen],
        }
    )


def close_at_gaps(conn: psycopg.Connection, analysis: Analysis, start: datetime) -> int:
    """End the stored events that started before `start` and are still open although the node's data,
    as this run read it, has a gap after their start and before `start` (and before the node's next
    event): a gap breaks every state, so such an event ended with the sample before the gap, at that
    sample + its duration (its cadence).
    This is how an event left open when a node went silent is closed by the run that reads the node's
    data resume, however long the silence (the day it started is not run again) -> events closed."""
    samples = analysis.samples
    times = pd.to_datetime(samples["measured_at"], utc=True)
    gaps = samples[(samples["gap_after"].astype(bool) & (times < start)).to_numpy()]
    if gaps.empty:
        return 0
    gap_times = pd.to_datetime(gaps["measured_at"], utc=True)
    stale = conn.execute(
        "SELECT grid_node_id, started_at, start_day, (SELECT min(n.started_at) "
        "FROM ops.grid_state_events n WHERE n.grid_node_id = e.grid_node_id "
        "AND n.started_at > e.started_at) AS next_started "
        "FROM ops.grid_state_events e WHERE grid_node_id = ANY(%s) AND ended_at IS NULL AND started_at < %s",
        (sorted(gaps["grid_node_id"].unique()), start),
    ).fetchall()
    closed = 0
    for node, started, day, next_started in stale:
        within = (gaps["grid_node_id"] == node) & (gap_times >= started)
        if next_started is not None:  # it ended before the node's next event: a later gap is not its end
            within &= gap_times < next_started
        after = gaps[within.to_numpy()]
        if after.empty or not _try_lock_day(conn, day):
            continue
        last = after.iloc[0]
        ended = pd.Timestamp(last["measured_at"]) + pd.Timedelta(seconds=float(last["duration_s"]))
        cur = conn.execute(
            "UPDATE ops.grid_state_events SET ended_at = %s, processed_at = clock_timestamp() "
            "WHERE grid_node_id = %s AND started_at = %s AND ended_at IS NULL",
            (ended.to_pydatetime(), node, started),
        )
        closed += cur.rowcount
    return closed


def _carry(conn: psycopg.Connection, event: Any, start: datetime) -> int:
    """Give the event this run saw in progress at `start` its end and peak on the stored event it
    continues: the node's newest event that started before `start`, if it is in the same state, did
    not start after what this run saw and had not ended before `start` (never an older event left
    open) -> rows updated (0 or 1)."""
    row = conn.execute(
        "SELECT started_at, start_day, state, ended_at FROM ops.grid_state_events "
        "WHERE grid_node_id = %s AND started_at < %s ORDER BY started_at DESC LIMIT 1",
        (event.grid_node_id, start),
    ).fetchone()
    if row is None:
        return 0
    started, day, state, ended = row
    if state != event.state or started > event.started_at or (ended is not None and ended < start):
        return 0
    if not _try_lock_day(conn, day):
        return 0
    cur = conn.execute(
        "UPDATE ops.grid_state_events SET ended_at = %(ended)s, processed_at = clock_timestamp(), "
        "peak_deviation_hz = CASE WHEN abs(%(peak)s) > abs(peak_deviation_hz) THEN %(peak)s "
        "ELSE peak_deviation_hz END WHERE grid_node_id = %(node)s AND started_at = %(started)s",
        {
            "ended": _value(event.ended_at),
            "peak": _value(event.peak_deviation_hz),
            "node": event.grid_node_id,
            "started": started,
        },
    )
    return cur.rowcount


def newest_samples(conn: psycopg.Connection, nodes: list[str]) -> dict[str, pd.Timestamp]:
    """Each node's newest stored sample time (one index probe per node)."""
    rows = conn.execute(
        "SELECT n, (SELECT max(measured_at) FROM ops.grid_status WHERE grid_node_id = n) "
        "FROM unnest(%s::text[]) AS n",
        (nodes,),
    ).fetchall()
    return {node: pd.Timestamp(newest) for node, newest in rows if newest is not None}


def _in_progress(events: pd.DataFrame, node: str, at: pd.Timestamp) -> pd.DataFrame:
    """The node's events (EVENT_COLUMNS) in progress at `at`."""
    started, ended = (
        pd.to_datetime(events["started_at"], utc=True),
        pd.to_datetime(events["ended_at"], utc=True),
    )
    return events[
        ((events["grid_node_id"] == node) & (started <= at) & (ended.isna() | (ended > at))).to_numpy()
    ]


@dataclass(frozen=True)
class Sightings:
    """What the alerts need of what a run read, a few rows per node, so that a run in chunks carries
    it from chunk to chunk instead of every sample: each node's last sample read and its state
    (`ends`, END_COLUMNS), its last sample in alert or emergency (`bad`: grid_node_id, measured_at,
    state name) and the events as read in progress at those samples (`events`, EVENT_COLUMNS: an
    event whose day is not stored is known only so)."""

    ends: pd.DataFrame
    bad: pd.DataFrame
    events: pd.DataFrame

    @classmethod
    def of(cls, analysis: Analysis, end: datetime) -> Sightings:
        """The sightings of a chunk whose days end at `end`, keeping too the events in progress there
        (the next chunk's `then` looks them up)."""
        s = analysis.samples
        bad = s.loc[(s["state"] != NORMAL).to_numpy(), ["grid_node_id", "measured_at", "state"]]
        bad = bad.groupby("grid_node_id", sort=True).tail(1).reset_index(drop=True)
        bad = bad.assign(state=[STATES[int(c)] for c in bad["state"]])
        last = pd.Timestamp(end) - pd.Timedelta(1)
        times = [(str(n), last) for n in analysis.events["grid_node_id"].unique()]
        return cls(analysis.ends, bad, _events_at(analysis.events, analysis.ends, bad, times))

    def then(self, later: Sightings, start: datetime) -> Sightings:
        """These sightings (of a run's earlier chunks) followed by those of the chunk from `start`. The
        chunk read an event in progress at `start` only from its lookback: its start, rule and peak
        so far are what the earlier chunks saw of it."""
        events = later.events.copy()
        started = pd.to_datetime(events["started_at"], utc=True)
        for label in events.index[(started < start).to_numpy()]:
            row = events.loc[label]
            before = _in_progress(
                self.events, str(row["grid_node_id"]), pd.Timestamp(start) - pd.Timedelta(1)
            )
            before = before[(before["state"] == row["state"]).to_numpy()]
            if len(before):
                seen = before.iloc[-1]
                peak = max(seen["peak_deviation_hz"], row["peak_deviation_hz"], key=abs)
                events.loc[label, ["started_at", "rule", "peak_deviation_hz"]] = [
                    seen["started_at"],
                    seen["rule"],
                    peak,
                ]

        def latest(mine: pd.DataFrame, theirs: pd.DataFrame) -> pd.DataFrame:
            merged = with_nodes_of(mine, theirs, theirs["grid_node_id"])
            return merged.sort_values("grid_node_id", ignore_index=True)

        ends, bad = latest(self.ends, later.ends), latest(self.bad, later.bad)
        return Sightings(ends, bad, joined((_events_at(self.events, ends, bad), events), events))


def _events_at(
    events: pd.DataFrame,
    ends: pd.DataFrame,
    bad: pd.DataFrame,
    times: list[tuple[str, pd.Timestamp]] | None = None,
) -> pd.DataFrame:
    """The events in progress at the samples of `ends` and `bad`, and at `times` (node, time)."""
    wanted = [*zip(ends["grid_node_id"], ends["last_sample_at"], strict=True)]
    wanted += [*zip(bad["grid_node_id"], bad["measured_at"], strict=True), *(times or [])]
    seen = joined(
        (_in_progress(events, str(n), pd.Timestamp(t)).tail(1) for n, t in wanted), events.iloc[0:0]
    )
    return seen.drop_duplicates(ignore_index=True)


def _event_at(
    conn: psycopg.Connection, sightings: Sightings, node: str, at: pd.Timestamp
) -> tuple[Any, ...] | None:
    """(started_at, state, rule, peak, area) of the node's event in progress at `at`: as stored, or as
    the run saw it when the day it started has not been processed."""
    row = conn.execute(
        "SELECT started_at, state, rule, peak_deviation_hz, area FROM ops.grid_state_events "
        "WHERE grid_node_id = %(node)s AND started_at <= %(at)s AND (ended_at IS NULL OR ended_at > %(at)s) "
        "ORDER BY started_at DESC LIMIT 1",
        {"node": node, "at": at.to_pydatetime()},
    ).fetchone()
    if row is not None:
        return tuple(row)
    seen = _in_progress(sightings.events, node, at)
    if seen.empty:
        return None
    last = seen.iloc[-1]
    return (last["started_at"], last["state"], last["rule"], last["peak_deviation_hz"], last["area"])


def _alert(node: str, state: str, event: tuple[Any, ...] | None, at: pd.Timestamp) -> Alert:
    started, _, rule, peak, zone = event if event is not None else (None, state, None, None, None)
    return Alert(
        kind=ALERT_KIND,
        severity=SEVERITY[state],
        subject=node,
        dedup_key=alert_key(node),
        summary=f"Grid node {node} in {state} state"
        + (f" since {started.isoformat()}" if started else "")
        + (f" ({rule}, peak deviation {1000 * peak:+.0f} mHz)" if rule else ""),
        details={
            "state": state,
            "rule": rule,
            "started_at": started.isoformat() if started else None,
            "peak_deviation_hz": peak,
            "area": zone,
            "last_sample_at": at.isoformat(),
        },
    )


def update_alerts(
    conn: psycopg.Connection, sightings: Sightings, config: GridConfig
) -> tuple[list[str], list[str]]:
    """Open/refresh or resolve the grid_state alert of every node whose newest stored sample this
    run read -> (nodes raised, nodes resolved). Does not commit.

    Times are the samples' times: an alert is raised (or refreshed) at the newest sample, and a node
    back in normal resolves it only once its last sample in alert or emergency is at least the area's
    time to restore frequency before its newest sample (`resolve_condition`'s `quiet`), so a node that
    keeps dipping in and out of alert stays one alert instead of paging on every run. A state that
    began and ended within what this run read is raised too (then resolved), unless an alert of the
    node already saw it: an hour-long run must not swallow an emergency that lasted ten minutes."""
    ends = sightings.ends
    if ends.empty:
        return [], []
    newest = newest_samples(conn, ends["grid_node_id"].tolist())
    raised, resolved = [], []
    for node, at, state in zip(ends["grid_node_id"], ends["last_sample_at"], ends["state"], strict=True):
        if newest.get(node) != at:
            continue  # the node's data goes on past this run: a later run decides
        at = pd.Timestamp(at)
        if state == "normal":
            bad = sightings.bad[(sightings.bad["grid_node_id"] == node).to_numpy()]
            if len(bad):  # still seen in this run: the alert stays open at least until then
                seen_at, seen_state = pd.Timestamp(bad["measured_at"].iloc[-1]), str(bad["state"].iloc[-1])
                row = conn.execute(  # the newest sighting of any alert of the node, open or resolved
                    "SELECT max(last_seen_at) FROM ops.alerts WHERE dedup_key = %s", (alert_key(node),)
                ).fetchone()
                if row is None or row[0] is None or row[0] < seen_at:
                    event = _event_at(conn, sightings, node, seen_at)
                    if raise_alert(
                        conn, _alert(node, seen_state, event, seen_at), at=seen_at.to_pydatetime()
                    ).new:
                        raised.append(node)
            quiet = timedelta(seconds=config.area_of(node).time_to_restore_s)
            if resolve_condition(
                conn,
                alert_key(node),
                f"{node} back to normal (sample of {at.isoformat()})",
                at=at.to_pydatetime(),
                quiet=quiet,
            ):
                resolved.append(node)
            continue
        raise_alert(
            conn, _alert(node, state, _event_at(conn, sightings, node, at), at), at=at.to_pydatetime()
        )
        raised.append(node)
    return raised, resolved


def required_lookback(config: GridConfig) -> timedelta:
    """The longest window a state depends on, over the areas in use: the lookback must cover it."""
    areas = [area(name) for name in {config.default_area, *config.node_areas.values()}]
    longest = max(max(a.time_to_restore_s, a.alert_trigger_s) for a in areas)
    return timedelta(seconds=longest + config.states.steady_window_s)


def run_chunks(
    conn: psycopg.Connection,
    first: date,
    last: date,
    config: GridConfig,
    lookback: timedelta = LOOKBACK,
    max_lookahead_days: int = MAX_LOOKAHEAD_DAYS,
    chunk_days: int | None = None,
) -> Iterator[GridRun]:
    """Analyse the UTC days `first`..`last` and store figures, events and alerts, `chunk_days` days
    at a time (default all at once), each chunk in one transaction holding its days' locks
    (`lock_days`) from before its read to its commit -> each chunk's run, once committed. What a
    chunk passes on is small: its last 6 days' voltage counts and the nodes' `Sightings`; the last
    chunk reads on past `last` and updates the alerts."""
    if lookback < required_lookback(config):
        raise ValueError(
            f"lookback {lookback} is shorter than the states' longest window {required_lookback(config)}"
        )
    span = timedelta(days=(chunk_days or (last - first).days + 1) - 1)
    voltage_days = pd.DataFrame(columns=VOLTAGE_DAY_COLUMNS)
    sightings: Sightings | None = None
    a = first
    while a <= last:
        b = min(a + span, last)
        with conn.transaction():
            lock_days(conn, a, b)
            # An event going on past a chunk's last day is ended by the next chunk (`_carry`): only
            # the last chunk reads on.
            reads_on = max_lookahead_days if b == last else 0
            analysis, lookahead = read_and_analyse(conn, a, b, config, lookback, reads_on)
            figures, daily = run_figures(conn, analysis, a, b, config, run_first=first, earlier=voltage_days)
            events, carried, closed = write(conn, a, b, figures, analysis, run_first=first)
            seen = Sightings.of(analysis, day_start(b + timedelta(days=1)))
            del analysis
            sightings = seen if sightings is None else sightings.then(seen, day_start(a))
            raised, resolved = update_alerts(conn, sightings, config) if b == last else ([], [])
        conn.commit()
        voltage_days = joined((voltage_days, daily), voltage_days)
        voltage_days = voltage_days[voltage_days["day"] > b - timedelta(days=VOLTAGE_WEEK_BEFORE)]
        yield GridRun(a, b, figures, events, carried, closed, lookahead, raised, resolved)
        a = b + timedelta(days=1)


def run_days(
    conn: psycopg.Connection,
    first: date,
    last: date,
    config: GridConfig,
    lookback: timedelta = LOOKBACK,
    max_lookahead_days: int = MAX_LOOKAHEAD_DAYS,
) -> GridRun:
    """`run_chunks` in one chunk: the whole range in memory (tests, short ranges)."""
    (run,) = run_chunks(conn, first, last, config, lookback, max_lookahead_days)
    return run


def sampled_days(conn: psycopg.Connection, first: date, last: date) -> list[date]:
    """The UTC days of `first`..`last` with at least one sample in `ops.grid_status` (a probe of each
    day's first sample by the time index, not a read of the days)."""
    rows = conn.execute(
        "SELECT d::date FROM generate_series(%s::timestamp, %s::timestamp, interval '1 day') d "
        "WHERE EXISTS (SELECT 1 FROM ops.grid_status WHERE measured_at >= (d AT TIME ZONE 'UTC') "
        "AND measured_at < ((d + interval '1 day') AT TIME ZONE 'UTC')) ORDER BY 1",
        (first, last),
    ).fetchall()
    return [d for (d,) in rows]


def clear_days(conn: psycopg.Connection, first: date, last: date) -> int:
    """Remove the hours of the days `first`..`last`, the samples they left out and the events that
    started on them, stored from samples no longer there (a rollback took them out), under the days'
    locks; commits -> hours removed."""
    with conn.transaction():
        lock_days(conn, first, last)
        removed = conn.execute(
            "DELETE FROM ops.grid_stability WHERE day BETWEEN %s AND %s", (first, last)
        ).rowcount
        conn.execute("DELETE FROM ops.grid_excluded_samples WHERE day BETWEEN %s AND %s", (first, last))
        conn.execute("DELETE FROM ops.grid_state_events WHERE start_day BETWEEN %s AND %s", (first, last))
    conn.commit()
    return removed


def stored_events(conn: psycopg.Connection, first: date, last: date, limit: int) -> tuple[pd.DataFrame, int]:
    """The first `limit` events that started on the days `first`..`last` as stored (ended by a later
    chunk where they went on past theirs), and how many of the days' events are still open."""
    events = read_frame(
        conn,
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM ops.grid_state_events "
        "WHERE start_day BETWEEN %(first)s AND %(last)s ORDER BY started_at, grid_node_id LIMIT %(limit)s",
        {"first": first, "last": last, "limit": limit},
    )
    row = conn.execute(
        "SELECT count(*) FROM ops.grid_state_events WHERE start_day BETWEEN %s AND %s AND ended_at IS NULL",
        (first, last),
    ).fetchone()
    return events, int(row[0]) if row else 0
