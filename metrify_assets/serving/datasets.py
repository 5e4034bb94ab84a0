"""What the data API serves: each dataset is a relation, its sort key and the filters it accepts.

One definition per dataset, read by the generic routes (routes/data.py), so paging, filters, formats,
meter-level access and caching behave the same everywhere. The marts are dbt's (schema `marts`,
contracts enforced, so their columns are stable); the operational tables are `ops`.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
from psycopg import sql

from metrify_assets.contracts import CONTRACTS, UNREGISTERED
from metrify_assets.forecasting.methods import METHODS
from metrify_assets.grid.states import STATES
from metrify_assets.serving.errors import ApiError, check_text, field_detail, not_one_of
from metrify_assets.serving.pagination import CursorError, cursor_scope, decode_cursor, encode_cursor
from metrify_assets.storage.known import GRID_NODE, WEATHER_STATION, Kind


@dataclass(frozen=True)
class Filter:
    """A query parameter and the condition it adds: `column op value`."""

    param: str
    column: str
    op: str = "="  # =, >=, <
    description: str = ""
    kind: str = "text"  # text, date, timestamp (aware), utc (a mart's naive UTC timestamp), bool
    # A closed set of values (sources, forecast methods, ...): any other is a 422 listing these rather
    # than an empty page. () for an open set (regions, segments, meters).
    allowed: tuple[str, ...] = ()
    # The value that also selects rows where the column is null: the name the rollups give them.
    null_as: str | None = None
    # A local-day filter's column of UTC instants (a naive UTC timestamp) that it also bounds, a day
    # wider: no UTC offset reaches a day, so the bound keeps every row the day holds, and lets an index
    # on those instants (a page order) serve the filter. PostgreSQL does not know the two go together.
    bounds_utc: str | None = None


SOURCES = tuple(CONTRACTS)  # what `source` takes wherever a filter has it (ledger, quality, review)


@dataclass(frozen=True)
class Dataset:
    name: str
    path: str  # the API route; a `{...}` segment selects `path_filter`
    schema: str
    table: str
    key: tuple[str, ...]  # unique, the page order
    description: str
    filters: tuple[Filter, ...] = ()
    path_kind: Kind | None = None  # a path parameter selects one of these (a node, a station): 404 if unknown
    # The column naming the meter each row belongs to: a meter-limited token reads its meters' rows.
    # None: the rows are not one meter's, and such a token is refused (routes/data.py `data_access`).
    meter_column: str | None = None
    columns: tuple[str, ...] = field(default=())  # () = every column (marts: their contract's)

    @property
    def per_meter(self) -> bool:
        return self.meter_column is not None

    @property
    def path_filter(self) -> str | None:
        """The column the path parameter selects, named as the parameter."""
        return self.path_kind.column if self.path_kind else None


# Per-meter rows keep a meter's region and segment null when it is not in the registry; the rollups
# (`/v1/consumption/regions`) call them `unknown`, so `unknown` selects them here too.
UNREGISTERED_AS_UNKNOWN = tuple(
    Filter(
        name,
        name,
        description=f"Rows of this {name}; `unknown`: meters without one (not in the registry), as "
        "/v1/consumption/regions names them.",
        null_as=UNREGISTERED,
    )
    for name in ("region", "segment")
)


def _range(column: str, what: str, kind: str, bounds_utc: str | None = None) -> tuple[Filter, Filter]:
    return (
        Filter("from", column, ">=", f"First {what} (inclusive).", kind, bounds_utc=bounds_utc),
        Filter("to", column, "<", f"End {what} (exclusive).", kind, bounds_utc=bounds_utc),
    )


# The names of the local-day filters, beside `from` and `to`.
LOCAL_DAYS = ("from_local_date", "to_local_date")


def local_days(bounds_utc: str | None = None) -> tuple[Filter, Filter]:
    """`from_local_date` and `to_local_date`: the meter's local days (its registry time zone, UTC for a
    meter not in it), as /daily counts them. A UTC range cuts a local day that is not on UTC (a day of
    BST starts at 23:00 UTC the day before; the day summer time ends has 25 hours)."""
    return (
        Filter(
            LOCAL_DAYS[0],
            "local_date",
            ">=",
            "First local day of the meter (inclusive), YYYY-MM-DD.",
            "date",
            bounds_utc=bounds_utc,
        ),
        Filter(
            LOCAL_DAYS[1],
            "local_date",
            "<",
            "End local day of the meter (exclusive), YYYY-MM-DD.",
            "date",
            bounds_utc=bounds_utc,
        ),
    )


def one_kind_of_range(raw: dict[str, str | None]) -> None:
    """422 for a range given both as UTC instants (`from`, `to`) and as local days (`raw`: each
    parameter's value as given, None when absent): which one bounds it would be a guess (a UTC `from`
    with a local `to_local_date` is no span a client means). The rule of every route taking both."""
    instants, days = ("from", "to"), LOCAL_DAYS
    given = {k: v for k in (*instants, *days) if (v := raw.get(k)) is not None}
    if not given.keys() & set(instants) or not given.keys() & set(days):
        return
    message = (
        f"{' and '.join(given)} select the range two ways: from and to are UTC instants, "
        f"{days[0]} and {days[1]} the meter's local days; give one kind"
    )
    details = [field_detail(("query", name), message, "conflict", value) for name, value in given.items()]
    raise ApiError(422, "invalid_parameter", message, details)


def utc_bound(day: date, op: str) -> datetime | None:
    """The naive UTC instant a local-day bound `column op day` implies, a day wider
    (`Filter.bounds_utc`); None at the calendar's ends (0001-01-01, 9999-12-31), where it bounds nothing."""
    try:
        return datetime.combine(day + timedelta(days=-1 if op == ">=" else 1), time())
    except OverflowError:
        return None


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "consumption_daily",
            "/v1/consumption/daily",
            "marts",
            "fct_consumption_daily",
            ("local_date", "meter_id"),
            "Billing-grade energy per meter and local day (VEE), with completeness and the billing gate.",
            (
                *_range("local_date", "local day", "date"),
                Filter("meter_id", "meter_id"),
                *UNREGISTERED_AS_UNKNOWN,
            ),
            meter_column="meter_id",
        ),
        Dataset(
            "consumption_hourly",
            "/v1/consumption/hourly",
            "marts",
            "fct_consumption_hourly",
            ("hour_start_utc", "meter_id"),
            "Billing-grade energy per meter and UTC hour, with the time-of-use period.",
            (
                *_range("hour_start_utc", "UTC hour", "utc"),
                *local_days("hour_start_utc"),
                Filter("meter_id", "meter_id"),
                *UNREGISTERED_AS_UNKNOWN,
            ),
            meter_column="meter_id",
        ),
        Dataset(
            "consumption_by_region",
            "/v1/consumption/regions",
            "marts",
            "fct_consumption_daily_by_region",
            ("local_date", "region", "segment"),
            "Energy per region, segment and local day.",
            (
                *_range("local_date", "local day", "date"),
                Filter("region", "region"),
                Filter("segment", "segment"),
            ),
        ),
        Dataset(
            "peak_demand",
            "/v1/consumption/peaks",
            "marts",
            "fct_peak_demand",
            ("local_date", "meter_id"),
            "Peak demand (kW) per meter and local day.",
            (
                *_range("local_date", "local day", "date"),
                Filter("meter_id", "meter_id"),
                *UNREGISTERED_AS_UNKNOWN,
            ),
            meter_column="meter_id",
        ),
        Dataset(
            "quality_daily",
            "/v1/quality/daily",
            "marts",
            "fct_data_quality_daily",
            ("activity_date", "source"),
            "Data quality per processing day and source: ledger counts, quarantine, anomaly rate.",
            (*_range("activity_date", "processing day", "date"), Filter("source", "source", allowed=SOURCES)),
        ),
        Dataset(
            "weather_impact",
            "/v1/weather/impact",
            "marts",
            "fct_weather_impact",
            ("local_date", "region", "segment"),
            "Consumption against temperature and degree-days per region, customer segment and local day.",
            (
                *_range("local_date", "local day", "date"),
                Filter("region", "region"),
                Filter("segment", "segment"),
            ),
        ),
        Dataset(
            "load_forecasts",
            "/v1/forecasts/load",
            "marts",
            "fct_load_forecast",
            ("reading_start_utc", "region", "segment", "method"),
            "Quarter-hourly load forecasts per region x segment and method (P10/P50/P90, the chosen "
            "method marked `selected`), with the actual, the error and the P10..P90 hit once known.",
            (
                *_range("local_date", "forecast day", "date", bounds_utc="reading_start_utc"),
                Filter("region", "region"),
                Filter("segment", "segment"),
                Filter("method", "method", allowed=METHODS),
                Filter("selected", "selected", description="Only the chosen method (true).", kind="bool"),
            ),
        ),
        Dataset(
            "forecast_accuracy",
            "/v1/forecasts/accuracy",
            "marts",
            "fct_forecast_accuracy",
            ("local_date", "region", "segment", "method"),
            "Realised accuracy of each method's forecast per region x segment and day (MAE, MAPE, sMAPE, "
            "P10..P90 coverage) beside the backtest's expectation; `selected_by_default` marks a chosen "
            "method the backtest could not compare (a young series: a default, not a win).",
            (
                *_range("local_date", "forecast day", "date"),
                Filter("region", "region"),
                Filter("segment", "segment"),
                Filter("method", "method", allowed=METHODS),
            ),
        ),
        Dataset(
            "meters",
            "/v1/meters",
            "marts",
            "dim_meter",
            ("meter_id", "version_number"),
            "The meter registry with its history (one row per version) and each meter's reading span.",
            (
                Filter("meter_id", "meter_id"),
                Filter("region", "region"),
                Filter("segment", "segment"),
                Filter("is_current", "is_current", kind="bool"),
            ),
            meter_column="meter_id",
        ),
        Dataset(
            "grid_status",
            "/v1/grid/nodes/{grid_node_id}/status",
            "ops",
            "grid_status",
            ("measured_at",),
            "A grid node's measurements (frequency, voltage, load) as received.",
            _range("measured_at", "time (ISO 8601)", "timestamp"),
            path_kind=GRID_NODE,
            columns=(*CONTRACTS["grid_status"].columns, "quality_flags"),
        ),
        Dataset(
            "grid_states",
            "/v1/grid/nodes/{grid_node_id}/states",
            "marts",
            "fct_grid_state_events",
            ("started_at_utc",),
            "A grid node's system-state events (ENTSO-E states: alert, emergency, ...).",
            (*_range("started_at_utc", "start time (UTC)", "utc"), Filter("state", "state", allowed=STATES)),
            path_kind=GRID_NODE,
        ),
        Dataset(
            "grid_stability",
            "/v1/grid/nodes/{grid_node_id}/stability",
            "marts",
            "fct_grid_stability",
            ("hour_start_utc",),
            "A grid node's stability figures per UTC hour.",
            _range("hour_start_utc", "UTC hour", "utc"),
            path_kind=GRID_NODE,
        ),
        Dataset(
            "weather_observations",
            "/v1/weather/stations/{station_id}/observations",
            "ops",
            "weather_observations",
            ("observed_at",),
            "A weather station's observations as received.",
            _range("observed_at", "time (ISO 8601)", "timestamp"),
            path_kind=WEATHER_STATION,
            columns=(*CONTRACTS["weather_observations"].columns, "quality_flags"),
        ),
        Dataset(
            "weather_conditions",
            "/v1/weather/stations/{station_id}/conditions",
            "marts",
            "fct_weather_conditions",
            ("hour_start_utc",),
            "A weather station's hours: aggregates, classes and extreme-weather flags.",
            _range("hour_start_utc", "UTC hour", "utc"),
            path_kind=WEATHER_STATION,
        ),
    )
}


@dataclass(frozen=True)
class Page:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    next_cursor: str | None


def _select(
    dataset: Dataset,
    params: dict[str, Any],
    path_value: str | None,
    meters: frozenset[str] | None,
    cursor: str | None,
) -> tuple[sql.Composed, list[Any], str]:
    """The query of `dataset`'s rows in key order after `cursor`, without a LIMIT: its SQL, its values
    and the scope of its cursors."""
    conditions: list[sql.Composable] = []
    values: list[Any] = []
    if dataset.path_filter is not None:
        conditions.append(sql.SQL("{} = %s").format(sql.Identifier(dataset.path_filter)))
        values.append(path_value)
    for f in dataset.filters:
        if params.get(f.param) is not None:
            condition = sql.SQL("{} " + f.op + " %s").format(sql.Identifier(f.column))
            if f.null_as is not None and params[f.param] == f.null_as:
                condition = sql.SQL("({} OR {} IS NULL)").format(condition, sql.Identifier(f.column))
            conditions.append(condition)
            values.append(params[f.param])
            if f.bounds_utc is not None and (bound := utc_bound(params[f.param], f.op)) is not None:
                conditions.append(sql.SQL("{} " + f.op + " %s").format(sql.Identifier(f.bounds_utc)))
                values.append(bound)
    if meters is not None:
        if dataset.meter_column is None:  # refused before this (403): never all rows for a limited token
            raise ValueError(f"{dataset.name} has no meter column to limit to meters")
        conditions.append(sql.SQL("{} = ANY(%s)").format(sql.Identifier(dataset.meter_column)))
        values.append(sorted(meters))
    key = sql.SQL(", ").join(sql.Identifier(c) for c in dataset.key)
    scope = cursor_scope(
        dataset.name, {"path": path_value, **{f.param: params.get(f.param) for f in dataset.filters}}
    )
    if cursor is not None:
        after = decode_cursor(cursor, scope, len(dataset.key))
        conditions.append(
            sql.SQL("({}) > ({})").format(key, sql.SQL(", ").join(sql.Placeholder() * len(after)))
        )
        values.extend(after)
    columns = (
        sql.SQL(", ").join(sql.Identifier(c) for c in dataset.columns) if dataset.columns else sql.SQL("*")
    )
    where = sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("true")
    query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {}").format(
        columns, sql.Identifier(dataset.schema, dataset.table), where, key
    )
    return query, values, scope


def query_page(
    conn: psycopg.Connection,
    dataset: Dataset,
    params: dict[str, Any],
    *,
    path_value: str | None = None,
    meters: frozenset[str] | None = None,
    cursor: str | None = None,
    limit: int,
) -> Page:
    """One page of `dataset`, filtered by `params` (values already parsed), in key order after
    `cursor`; `meters` limits the rows to those meters (a meter-limited token; only a dataset with a
    `meter_column` can be limited)."""
    query, values, scope = _select(dataset, params, path_value, meters, cursor)
    with conn.cursor() as cur:
        try:
            cur.execute(sql.SQL("{} LIMIT %s").format(query), [*values, limit + 1])
        except (psycopg.errors.DataError, psycopg.errors.UndefinedFunction) as err:
            if cursor is None:
                raise
            raise CursorError("cursor values do not fit this endpoint's key") from err
        names = [d.name for d in cur.description or []]
        rows = cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more and rows:
        last = dict(zip(names, rows[-1], strict=True))
        next_cursor = encode_cursor(scope, [last[c] for c in dataset.key])
    return Page(names, rows, next_cursor)


def count_rows(
    conn: psycopg.Connection,
    dataset: Dataset,
    params: dict[str, Any],
    *,
    path_value: str | None = None,
    meters: frozenset[str] | None = None,
    up_to: int,
) -> int:
    """How many rows `query_page`'s pages of these filters hold, counted up to `up_to` (a whole-result
    CSV download's bound: reading further would only say "more")."""
    query, values, _ = _select(dataset, params, path_value, meters, None)
    counted = sql.SQL("SELECT count(*) FROM ({} LIMIT %s) AS q").format(query)
    row = conn.execute(counted, [*values, up_to]).fetchone()
    return int(row[0]) if row else 0


# What a value of each kind must look like: the message of every filter that does not parse, the
# same on every endpoint (a meter's readings and the datasets alike).
EXPECTED = {
    "date": "expected a date, YYYY-MM-DD",
    "timestamp": "expected an ISO 8601 date-time, e.g. 2026-03-28T00:00:00Z (without an offset: UTC)",
    "bool": "expected true or false",
}
EXPECTED["utc"] = EXPECTED["timestamp"]
# The `type` of a filter value that does not parse, named as pydantic names its own (`field_detail`);
# `enum` for a value outside a closed set.
PARSE_ERRORS = {
    "date": "date_parsing",
    "timestamp": "datetime_parsing",
    "utc": "datetime_parsing",
    "bool": "bool_parsing",
    "text": "enum",
}


def parse_value(kind: str, raw: str, allowed: tuple[str, ...] = ()) -> Any:
    """A query parameter's text as the filter's type; ValueError with a message the caller can act on:
    what was expected, then what was sent."""
    if kind == "date":
        try:
            return date.fromisoformat(raw)
        except ValueError as err:
            raise ValueError(_unparsed(kind, raw)) from err
    if kind in ("timestamp", "utc"):
        try:
            moment = _datetime(raw)
        except ValueError as err:
            raise ValueError(_unparsed(kind, raw)) from err
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # without an offset: UTC
        # Every time filter is compared, and named in its cursor, in UTC: 0001-01-01T00:00+01:00 is in
        # year 0 there and 9999-12-31T23:59-01:00 in year 10000, which Python's datetime cannot hold.
        try:
            utc = aware.astimezone(UTC)
        except OverflowError as err:
            raise ValueError(f"{raw!r} is outside the years 1 to 9999 in UTC") from err
        return aware if kind == "timestamp" else utc.replace(tzinfo=None)
    if kind == "bool":
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"{EXPECTED[kind]}, got {raw!r}")
    if allowed and raw not in allowed:
        raise ValueError(not_one_of(raw, allowed))
    return raw


def _datetime(raw: str) -> datetime:
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


def _unparsed(kind: str, raw: str) -> str:
    """Why `raw`, a date or time filter's value, does not parse: a date that does not exist
    (2026-02-30), else what the kind takes; for a time whose offset's `+` reached the API as a space
    (sent unencoded in the URL), how to send it."""
    if (absent := _no_such_date(raw[:10])) is not None:
        return f"{raw[:10]} does not exist ({absent}), got {raw!r}"
    message = f"{EXPECTED[kind]}, got {raw!r}"
    if kind in ("timestamp", "utc") and " " in raw:
        plus = "+".join(raw.rsplit(" ", 1))
        try:
            _datetime(plus)
        except ValueError:
            return message
        encoded = plus.replace("+", "%2B")
        return f"{message}; a '+' in a URL's query string is read as a space: write the offset's '+' as %2B ({encoded})"
    return message


def _no_such_date(text: str) -> str | None:
    """Why `text`, written YYYY-MM-DD, is no day of the calendar; None when it is one or is not so written."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) is None:
        return None
    year, month, day = (int(part) for part in text.split("-"))
    if not 1 <= year <= 9999:
        return "years are 0001 to 9999"
    if not 1 <= month <= 12:
        return "months are 01 to 12"
    days = calendar.monthrange(year, month)[1]
    return None if 1 <= day <= days else f"{calendar.month_name[month]} {year} has {days} days"


def parse_filter(f: Filter, raw: str | None) -> Any:
    """`raw` (a query parameter's text, None when absent) as `f`'s value; a value that does not parse,
    or is not one of `f.allowed`, is a 422 `invalid_parameter` naming the parameter, the value and
    what it takes (for a closed set, every accepted value); so is one with a NUL (`check_text`)."""
    check_text(("query", f.param), raw)
    if raw is None:
        return None
    try:
        return parse_value(f.kind, raw, f.allowed)
    except ValueError as err:
        detail = field_detail(("query", f.param), str(err), PARSE_ERRORS[f.kind], raw)
        raise ApiError(422, "invalid_parameter", f"{f.param}: {err}", [detail]) from err
