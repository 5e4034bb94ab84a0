"""The grid stability run against PostgreSQL: read a run's samples, write figures, events and alerts.

A run over the UTC days `first`..`last` reads the samples of those days plus `lookback` (1 hour)
before the first: the states are decided on trailing windows of at most 20 minutes (Ireland's time to
restore frequency) and a minute, so the state at midnight is exact and carries across it. A node still
in alert or emergency at the end of what was read is read on, a day of its data at a time from its
next sample (at most `max_lookahead_days`), until its state ends or its data does, so an event gets
its end even when its day is re-run after the next day's data arrived.

Writes, in one transaction:
- `ops.grid_stability`: the hours of the run's days (delete + insert by day), with EN 50160's weekly
  figure from the stored hours of the 6 days before;
- `ops.grid_state_events`: an event belongs to the day it started. The run replaces the events that
  started on its days; an event that started earlier and was still open at the first midnight gets
  its end (and a larger peak) from this run;
- `ops.alerts` (`alerts.store`): for a node whose newest stored sample is the last one this run read,
  its state there opens or refreshes `grid_state:<node>` (warning for alert, critical for emergency)
  or resolves it (normal). A run over old days does not touch the alerts of a node whose data goes on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from metrify_assets.alerts.store import Alert, raise_alert, resolve_condition
from metrify_assets.grid.analysis import INPUT_COLUMNS, Analysis, GridConfig, analyse
from metrify_assets.grid.areas import area
from metrify_assets.grid.risk import RISK_COLUMNS
from metrify_assets.grid.stability import FIGURE_COLUMNS, weekly_voltage_compliance
from metrify_assets.grid.states import EVENT_COLUMNS
from metrify_assets.storage.frames import read_frame

LOOKBACK = timedelta(hours=1)
MAX_LOOKAHEAD_DAYS = 7
ALERT_KIND = "grid_state"
SEVERITY = {"alert": "warning", "emergency": "critical"}

WEEKLY_COLUMNS = ["voltage_week_windows", "voltage_week_within_share", "voltage_week_compliant"]
STABILITY_WRITE = ["day", *FIGURE_COLUMNS, *WEEKLY_COLUMNS, *RISK_COLUMNS]
EVENTS_WRITE = [*EVENT_COLUMNS, "start_day"]


def alert_key(node: str) -> str:
    return f"{ALERT_KIND}:{node}"


@dataclass(frozen=True)
class GridRun:
    first: date
    last: date
    analysis: Analysis  # everything read (lookback and lookahead included)
    figures: pd.DataFrame  # the rows written to ops.grid_stability
    events: pd.DataFrame  # the events written (started on the run's days)
    carried: int  # events of earlier days whose end or peak this run updated
    lookahead_days: int
    raised: list[str] = field(default_factory=list)  # nodes whose grid_state alert was opened or refreshed
    resolved: list[str] = field(default_factory=list)  # nodes whose grid_state alert was resolved


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def read_samples(
    conn: psycopg.Connection, start: datetime, end: datetime, nodes: Iterable[str] | None = None
) -> pd.DataFrame:
    """Samples with `start <= measured_at < end` (of `nodes`, default all), INPUT_COLUMNS."""
    node_list = None if nodes is None else list(nodes)
    frame = read_frame(
        conn,
        f"SELECT {', '.join(INPUT_COLUMNS)} FROM ops.grid_status "
        "WHERE measured_at >= %(start)s AND measured_at < %(end)s "
        "AND (%(nodes)s::text[] IS NULL OR grid_node_id = ANY(%(nodes)s))",
        {"start": start, "end": end, "nodes": node_list},
    )
    return frame if len(frame) else pd.DataFrame(columns=INPUT_COLUMNS)


def following_day(conn: psycopg.Connection, since: dict[str, datetime]) -> pd.DataFrame:
    """Per node, the day of samples from its first sample at or after `since[node]` (a gap skipped)."""
    columns = ", ".join(f"g.{c}" for c in INPUT_COLUMNS)
    frame = read_frame(
        conn,
        f"SELECT {columns} FROM unnest(%(nodes)s::text[], %(since)s::timestamptz[]) AS n(node, since) "
        "CROSS JOIN LATERAL (SELECT min(measured_at) AS t0 FROM ops.grid_status "
        "WHERE grid_node_id = n.node AND measured_at >= n.since) f "
        "JOIN ops.grid_status g ON g.grid_node_id = n.node AND g.measured_at >= f.t0 "
        "AND g.measured_at < f.t0 + interval '1 day'",
        {"nodes": list(since), "since": list(since.values())},
    )
    return frame if len(frame) else pd.DataFrame(columns=INPUT_COLUMNS)


def read_and_analyse(
    conn: psycopg.Connection,
    first: date,
    last: date,
    config: GridConfig,
    lookback: timedelta = LOOKBACK,
    max_lookahead_days: int = MAX_LOOKAHEAD_DAYS,
) -> tuple[Analysis, int]:
    """The analysis of the run's samples; a node still in alert or emergency at the end of what was
    read is read on, a day of its data at a time, and analysed again alone -> (analysis, days read on)."""
    read_end = day_start(last + timedelta(days=1))
    raw = read_samples(conn, day_start(first) - lookback, read_end)
    analysis = analyse(raw, config)
    frontier: dict[str, datetime] = {}
    days = 0
    while days < max_lookahead_days and (still_open := analysis.nodes_open_at_end()):
        more = following_day(conn, {n: frontier.get(n, read_end) for n in still_open})
        if more.empty:
            break
        starts = pd.to_datetime(more["measured_at"], utc=True).groupby(more["grid_node_id"]).min()
        frontier.update({str(n): (t + pd.Timedelta(days=1)).to_pydatetime() for n, t in starts.items()})
        raw = pd.concat([raw, more], ignore_index=True)
        days += 1
        extended = list(starts.index.astype(str))
        analysis = analysis.replaced(analyse(raw[raw["grid_node_id"].isin(extended)], config), extended)
    return analysis, days


def _history(conn: psycopg.Connection, first: date) -> pd.DataFrame:
    """10-minute voltage-mean counts per node and day of the 6 stored days before `first`."""
    return read_frame(
        conn,
        "SELECT grid_node_id, day, sum(voltage_windows) AS voltage_windows, "
        "sum(voltage_windows_within) AS voltage_windows_within FROM ops.grid_stability "
        "WHERE day >= %s AND day < %s GROUP BY grid_node_id, day",
        (first - timedelta(days=6), first),
    )


def run_figures(
    conn: psycopg.Connection, analysis: Analysis, first: date, last: date, config: GridConfig
) -> pd.DataFrame:
    """The hours of the run's days, with the weekly EN 50160 figures (STABILITY_WRITE columns)."""
    figures = analysis.figures
    hours = pd.to_datetime(figures["hour_start"], utc=True)
    inside = (hours >= day_start(first)) & (hours < day_start(last + timedelta(days=1)))
    figures = figures[inside.to_numpy()].assign(day=hours[inside].dt.date.to_numpy())
    if figures.empty:
        return pd.DataFrame(columns=STABILITY_WRITE)
    daily = figures.groupby(["grid_node_id", "day"], as_index=False)[
        ["voltage_windows", "voltage_windows_within"]
    ].sum()
    history = _history(conn, first)
    weekly = weekly_voltage_compliance(pd.concat([history, daily], ignore_index=True), config.voltage)
    weekly = weekly.rename(
        columns={
            "week_windows": "voltage_week_windows",
            "week_within_share": "voltage_week_within_share",
            "week_compliant": "voltage_week_compliant",
        }
    )
    figures = figures.merge(weekly, on=["grid_node_id", "day"], how="left")
    figures["voltage_week_windows"] = figures["voltage_week_windows"].fillna(0).astype(int)
    return figures[STABILITY_WRITE]


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


def write(
    conn: psycopg.Connection, first: date, last: date, figures: pd.DataFrame, analysis: Analysis
) -> tuple[pd.DataFrame, int]:
    """Replace the run's hours and the events that started on its days; end the events carried in
    from before -> (events written, events carried in and updated). Does not commit."""
    start, end = day_start(first), day_start(last + timedelta(days=1))
    found = analysis.events.assign(
        started_at=pd.to_datetime(analysis.events["started_at"], utc=True),
        ended_at=pd.to_datetime(analysis.events["ended_at"], utc=True),
    )
    owned = found[(found["started_at"] >= start) & (found["started_at"] < end)]
    owned = owned.assign(start_day=owned["started_at"].dt.date)
    carried_in = found[
        (found["started_at"] < start) & (found["ended_at"].isna() | (found["ended_at"] >= start))
    ]
    carried = 0
    with conn.cursor() as cur:
        cur.execute("DELETE FROM ops.grid_stability WHERE day BETWEEN %s AND %s", (first, last))
        _copy(cur, "ops.grid_stability", STABILITY_WRITE, figures)
        cur.execute("DELETE FROM ops.grid_state_events WHERE start_day BETWEEN %s AND %s", (first, last))
        _copy(cur, "ops.grid_state_events", EVENTS_WRITE, owned)
        for event in carried_in.itertuples(index=False):
            cur.execute(
                "UPDATE ops.grid_state_events SET ended_at = %(ended)s, processed_at = now(), "
                "peak_deviation_hz = CASE WHEN abs(%(peak)s) > abs(peak_deviation_hz) THEN %(peak)s "
                "ELSE peak_deviation_hz END "
                "WHERE grid_node_id = %(node)s AND state = %(state)s AND started_at < %(start)s "
                "AND (ended_at IS NULL OR ended_at >= %(start)s)",
                {
                    "ended": _value(event.ended_at),
                    "peak": _value(event.peak_deviation_hz),
                    "node": event.grid_node_id,
                    "state": event.state,
                    "start": start,
                },
            )
            carried += cur.rowcount
    return owned[EVENTS_WRITE], carried


def newest_samples(conn: psycopg.Connection, nodes: list[str]) -> dict[str, pd.Timestamp]:
    """Each node's newest stored sample time (one index probe per node)."""
    rows = conn.execute(
        "SELECT n, (SELECT max(measured_at) FROM ops.grid_status WHERE grid_node_id = n) "
        "FROM unnest(%s::text[]) AS n",
        (nodes,),
    ).fetchall()
    return {node: pd.Timestamp(newest) for node, newest in rows if newest is not None}


def update_alerts(conn: psycopg.Connection, analysis: Analysis) -> tuple[list[str], list[str]]:
    """Open/refresh or resolve the grid_state alert of every node whose newest stored sample this
    run read -> (nodes raised, nodes resolved). Does not commit."""
    ends = analysis.ends
    if ends.empty:
        return [], []
    newest = newest_samples(conn, ends["grid_node_id"].tolist())
    raised, resolved = [], []
    for node, at, state in zip(ends["grid_node_id"], ends["last_sample_at"], ends["state"], strict=True):
        if newest.get(node) != at:
            continue  # the node's data goes on past this run: a later run decides
        if state == "normal":
            if resolve_condition(
                conn, alert_key(node), f"{node} back to normal (sample of {at.isoformat()})"
            ):
                resolved.append(node)
            continue
        row = conn.execute(
            "SELECT started_at, rule, peak_deviation_hz, area FROM ops.grid_state_events "
            "WHERE grid_node_id = %s AND ended_at IS NULL ORDER BY started_at DESC LIMIT 1",
            (node,),
        ).fetchone()
        if row is None:  # the day it started was not processed: what this run saw of it
            seen = analysis.events[
                (analysis.events["grid_node_id"] == node) & analysis.events["ended_at"].isna()
            ]
            last_seen = seen.iloc[-1]
            row = (
                last_seen["started_at"],
                last_seen["rule"],
                last_seen["peak_deviation_hz"],
                last_seen["area"],
            )
        started, rule, peak, zone = row
        raise_alert(
            conn,
            Alert(
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
            ),
        )
        raised.append(node)
    return raised, resolved


def required_lookback(config: GridConfig) -> timedelta:
    """The longest window a state depends on, over the areas in use: the lookback must cover it."""
    areas = [area(name) for name in {config.default_area, *config.node_areas.values()}]
    longest = max(max(a.time_to_restore_s, a.alert_trigger_s) for a in areas)
    return timedelta(seconds=longest + config.states.steady_window_s)


def run_days(
    conn: psycopg.Connection,
    first: date,
    last: date,
    config: GridConfig,
    lookback: timedelta = LOOKBACK,
    max_lookahead_days: int = MAX_LOOKAHEAD_DAYS,
) -> GridRun:
    """Analyse the UTC days `first`..`last` and store figures, events and alerts in one transaction."""
    if lookback < required_lookback(config):
        raise ValueError(
            f"lookback {lookback} is shorter than the states' longest window {required_lookback(config)}"
        )
    analysis, lookahead = read_and_analyse(conn, first, last, config, lookback, max_lookahead_days)
    figures = run_figures(conn, analysis, first, last, config)
    with conn.transaction():
        events, carried = write(conn, first, last, figures, analysis)
        raised, resolved = update_alerts(conn, analysis)
    conn.commit()
    return GridRun(first, last, analysis, figures, events, carried, lookahead, raised, resolved)
