"""Whether the store knows an id (a meter, a grid node, a weather station): one answer for the API's
404 on an id never seen (an empty page would hide a mistyped id) and the CLI's checks of a meter id.

An id is known when any table a trace of it is kept in has a row of it. The `ops` tables come first
(each probed by an index leading with the id); dbt's marts follow, only once built, because they keep
a node's or a station's history after retention has emptied its `ops` rows. The marts have no index
on the id, so only an id no `ops` table holds costs a scan of them (PostgreSQL stops at the first
EXISTS that holds).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class Kind:
    """A kind of id and the tables (`schema.table`, each with the id in `column`) that keep a trace of one."""

    name: str
    column: str
    tables: tuple[str, ...]
    absent: str  # what no trace means, for the message

    def unknown_message(self, value: str) -> str:
        return f"no {self.name} {value!r}: {self.absent}"


METER = Kind(
    "meter",
    "meter_id",
    ("ops.meters", "ops.meter_readings", "ops.vee_readings"),
    "not registered, no reading or VEE interval stored",
)
GRID_NODE = Kind(
    "grid node",
    "grid_node_id",
    (
        "ops.grid_status",
        "ops.grid_stability",
        "ops.grid_state_events",
        "marts.fct_grid_stability",
        "marts.fct_grid_state_events",
    ),
    "no measurement, stability figure or state event stored",
)
WEATHER_STATION = Kind(
    "weather station",
    "station_id",
    ("ops.weather_observations", "marts.fct_weather_conditions"),
    "no observation or classified hour stored",
)


def known(conn: psycopg.Connection, kind: Kind, value: str) -> bool:
    """Whether any of `kind`'s tables that exist has a row of `value` (two queries: which tables
    exist, then one EXISTS per table, in order)."""
    exists = conn.execute(
        "SELECT t FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, n) WHERE to_regclass(t) IS NOT NULL ORDER BY n",
        (list(kind.tables),),
    ).fetchall()
    probes = [
        sql.SQL("EXISTS (SELECT 1 FROM {} WHERE {} = %(v)s)").format(
            sql.Identifier(*table.split(".")), sql.Identifier(kind.column)
        )
        for (table,) in exists
    ]
    if not probes:
        return False
    row = conn.execute(sql.SQL("SELECT ") + sql.SQL(" OR ").join(probes), {"v": value}).fetchone()
    return bool(row and row[0])
