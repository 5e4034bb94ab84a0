"""Which synchronous area each node's stored hours were judged under, against the area that applies
now: the grid area mismatch a run logs and `metrify status` lists (docs/grid.md#synchronous-areas).

Apart from the grid's analysis (no pandas), so `metrify status` reads it without importing the
analysis. The caller says which area applies to a node (`area_of`: `GridConfig.area_of`'s name, or
the deployment's area).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import psycopg

AREA_MEMORY_DAYS = 31  # days before a run's first day whose stored areas its nodes are compared with


@dataclass(frozen=True)
class AreaChange:
    """Nodes whose stored hours were judged under one area while another applies now, and the days
    (`first`..`last`) of those hours."""

    nodes: int
    first: date
    last: date


def area_changes(
    conn: psycopg.Connection,
    first: date,
    last: date,
    area_of: Callable[[str], str],
    memory_days: int = AREA_MEMORY_DAYS,
) -> dict[tuple[str, str], AreaChange]:
    """(area stored, area applied) -> `AreaChange`, for the nodes with hours of `first`..`last`,
    or of the `memory_days` before, judged under another synchronous area. Re-running a deployment's
    days without its area re-judges them, and judging its new days so mixes two areas' standards in
    one node's history (the demo's `great_britain` days, then `metrify run` without
    METRIFY_GRID_AREA): either deserves a warning. Reads those days' hours by the day index."""
    rows = conn.execute(
        "SELECT grid_node_id, area, min(day), max(day) FROM ops.grid_stability "
        "WHERE day BETWEEN %s AND %s GROUP BY grid_node_id, area",
        (first - timedelta(days=memory_days), last),
    ).fetchall()
    changes: dict[tuple[str, str], AreaChange] = {}
    for node, stored, a, b in rows:
        applied = area_of(node)
        if stored != applied:
            seen = changes.get((stored, applied))
            changes[stored, applied] = (
                AreaChange(1, a, b)
                if seen is None
                else AreaChange(seen.nodes + 1, min(seen.first, a), max(seen.last, b))
            )
    return changes


def chosen_by(area_from: str | None) -> str:
    """What chose the area in force, as the warnings and `metrify status` name it: METRIFY_GRID_AREA,
    the home's settings file or the run config (`area_from`), else the default."""
    return area_from or "the default"


def area_warnings(changes: dict[tuple[str, str], AreaChange], area_from: str | None) -> list[str]:
    """One line per (stored, applied) pair of `area_changes`, saying what chose the area applied
    (`chosen_by(area_from)`) and
    the setting that keeps the stored area's standards."""
    return [
        f"grid area mismatch: {change.nodes} grid node(s) have hours of {change.first}..{change.last} judged "
        f"under {stored}, but the area in force is {applied} ({chosen_by(area_from)}): their new days and days run "
        f"again are judged by {applied}'s standards, not {stored}'s. Set METRIFY_GRID_AREA={stored} to keep "
        f"{stored}'s, or run those days again under {applied} (a backfill of grid_stability in `metrify ui`; "
        "docs/grid.md#synchronous-areas)"
        for (stored, applied), change in sorted(changes.items())
    ]


def judged_under_another(conn: psycopg.Connection, area_name: str) -> tuple[str, date] | None:
    """An area other than `area_name` that stored hours were judged under, and a day of them (None:
    there are none): a home whose grid data is another network's. Stops at the first such hour."""
    row = conn.execute(
        "SELECT area, day FROM ops.grid_stability WHERE area <> %s LIMIT 1", (area_name,)
    ).fetchone()
    return None if row is None else (row[0], row[1])


def newest_judged_day(conn: psycopg.Connection) -> date | None:
    """The newest day with stored hours (the day index's last entry)."""
    row = conn.execute("SELECT max(day) FROM ops.grid_stability").fetchone()
    return None if row is None else row[0]
