"""Data access (scope `read`): a meter's readings and latest reading, and the datasets of
`serving/datasets.py`, each a GET with its filters, cursor pagination and JSON or CSV output.

A token limited to some meters (a `meters` claim) reads per-meter rows only: a meter's own endpoints
answer 403 for any other meter, per-meter datasets hold its meters' rows, and every route whose rows
are not one meter's (regional aggregates, forecasts, grid, weather, quality) answers 403: an aggregate
over few meters (a region-day with meter_count 1) is one customer's consumption. Each route declares
which it is (`ROWS_PER_METER` in its OpenAPI operation; a dataset's `meter_column`), and the router's
dependency (`data_access`) enforces it, so a route that declares nothing is closed to such a token.

A meter, grid node or weather station the store has no trace of is 404 on its endpoints, the same
way everywhere (`_unknown`); a known one with nothing in the range is an empty page. A route that
serves hot rows (a meter's readings and latest reading, grid status, weather observations) also says
which days of its span left PostgreSQL for the lake (`archived_days`, `X-Archived-Days`: one query on
`ops.lifecycle_days` per request), so an empty or short page of an archived day is never read as "no
data"; a meter whose readings all left is 404 `archived`, not "no reading yet" (one that never sent
any is `not_found`: `serving/archived_meters.py`). A query
parameter a route does not take is a 422 on every route here (`data_access`, the router's
dependency), so a mistyped filter is never read as "no filter".
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import partial
from keyword import iskeyword
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from metrify_assets.contracts import CONTRACTS, SourceContract
from metrify_assets.serving import readings
from metrify_assets.serving.archived_meters import MeterArchive, meter_archive
from metrify_assets.serving.auth import Principal, require, require_meter
from metrify_assets.serving.cache import cached, confirmed_latest
from metrify_assets.serving.cache import latest_reading as latest_reading_through_cache
from metrify_assets.serving.datasets import (
    DATASETS,
    LOCAL_DAYS,
    Dataset,
    Filter,
    count_rows,
    local_days,
    one_kind_of_range,
    parse_filter,
    query_page,
)
from metrify_assets.serving.db import connection
from metrify_assets.serving.errors import (
    ApiError,
    check_range,
    check_text,
    openapi_errors,
    refuse_unknown_parameters,
)
from metrify_assets.serving.output import (
    Format,
    archived_headers,
    csv_download,
    is_download,
    json_response,
    page_response,
)
from metrify_assets.serving.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, CursorError
from metrify_assets.serving.row_schemas import dataset_row, page_responses, single_response, stored_row
from metrify_assets.storage.days import archived_days, meter_day_starts
from metrify_assets.storage.known import METER, Kind, known
from metrify_assets.storage.latest import LATEST_COLUMNS

Conn = Annotated[psycopg.Connection, Depends(connection)]
Reader = Annotated[Principal, Depends(require("read"))]
Limit = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_PAGE_SIZE,
        description=f"Rows per page (default {DEFAULT_PAGE_SIZE:,}). A CSV asked for without limit or cursor "
        "is the whole result, one streamed file.",
    ),
]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]
# A route's OpenAPI extension saying its rows are per meter: a meter-limited token may read them
# (its meters' only). Absent: 403 for such a token (`data_access`).
ROWS_PER_METER = "x-rows-per-meter"
PER_METER: dict[str, Any] = {ROWS_PER_METER: True}


# A meter's readings' `from` and `to`, UTC instants, or its local days: parsed as the datasets' time
# and day filters are (one message), the local days as /v1/consumption/hourly takes them.
READINGS_FROM = Filter(
    "from",
    "reading_start",
    ">=",
    "First interval start, an instant: ISO 8601, UTC without an offset (not a local day: see from_local_date).",
    "timestamp",
)
READINGS_TO = Filter(
    "to", "reading_start", "<", "End instant (exclusive), ISO 8601, UTC without an offset.", "timestamp"
)
READINGS_FROM_DAY, READINGS_TO_DAY = local_days()
READINGS = CONTRACTS["meter_readings"]
LATEST_ARCHIVED = (
    "The days from the returned reading's day on whose readings left PostgreSQL for the lake: a newer "
    "reading of the meter may be in one of them (`metrify restore` brings it back). Empty in the usual "
    "case, where the lifecycle archived only days older than the reading."
)


def _per_meter(route: APIRoute) -> bool:
    return bool((route.openapi_extra or {}).get(ROWS_PER_METER))


async def data_access(request: Request, principal: Reader) -> None:
    """Checks every data route makes before its own parameters are read, after the token's (FastAPI
    resolves a router's dependencies first; `Reader` is the routes' own, verified once): a
    meter-limited token is refused where the rows are not per meter (403, before any 422), and a
    query parameter the route does not take is a 422 naming it, listing those it takes, rather than
    a filter silently ignored (`?regoin=london` answering every region)."""
    route: APIRoute = request.scope["route"]  # this router's routes are all FastAPI's
    if principal.meters is not None and not _per_meter(route):
        readable = [r.path for r in router.routes if isinstance(r, APIRoute) and _per_meter(r)]
        raise ApiError(
            403,
            "meter_forbidden",
            f"this token is limited to meters; the rows of {request.url.path} are not one meter's "
            "(aggregates over meters, forecasts, grid, weather or quality), so it cannot read them",
            {"per_meter_endpoints": readable},
        )
    refuse_unknown_parameters(request)


# Every route answers these in the error shape (OpenAPI lists them, not FastAPI's own 422 body).
router = APIRouter(
    prefix="",
    tags=["data"],
    dependencies=[Depends(data_access)],
    responses=openapi_errors(401, 403, 422, 429),
)


def _bad_cursor(err: Exception) -> ApiError:
    return ApiError(400, "bad_cursor", str(err))


@router.get(
    "/v1/meters/{meter_id}/readings",
    summary="A meter's readings (the VEE series where processed)",
    openapi_extra=PER_METER,
    responses={
        **page_responses(readings.SERIES, "A page of the meter's intervals, in time order.", archived=True),
        **openapi_errors(400, 404),
    },
)
def meter_readings(
    request: Request,
    meter_id: str,
    principal: Reader,
    conn: Conn,
    start: Annotated[str | None, Query(alias="from", description=READINGS_FROM.description)] = None,
    end: Annotated[str | None, Query(alias="to", description=READINGS_TO.description)] = None,
    first_day: Annotated[
        str | None, Query(alias=LOCAL_DAYS[0], description=READINGS_FROM_DAY.description)
    ] = None,
    end_day: Annotated[
        str | None, Query(alias=LOCAL_DAYS[1], description=READINGS_TO_DAY.description)
    ] = None,
    cursor: Cursor = None,
    limit: Limit = None,
    format: Format = None,
) -> Response:
    """Intervals in time order: the billing-grade VEE value and status (actual, estimated, edited,
    missing, failed) where VEE has processed the day, else the reading as received (`received`).
    `from` and `to` are UTC instants (a time without an offset is UTC; `?from=2026-10-25` is UTC
    midnight, not the meter's); `from_local_date` and `to_local_date` are the meter's local days (its
    registry time zone, UTC when unregistered), as /v1/consumption/daily counts them: a day of 23, 24
    or 25 hours. Giving both kinds is a 422. A known meter with nothing in the range is an empty page;
    a meter never seen is 404. `archived_days`: the meter's local days of the range whose readings
    left PostgreSQL for the lake."""
    require_meter(principal, meter_id)
    check_text(("path", "meter_id"), meter_id)
    first, last = parse_filter(READINGS_FROM, start), parse_filter(READINGS_TO, end)
    check_range(first, last)
    days = parse_filter(READINGS_FROM_DAY, first_day), parse_filter(READINGS_TO_DAY, end_day)
    check_range(*days, LOCAL_DAYS)
    one_kind_of_range({"from": start, "to": end, LOCAL_DAYS[0]: first_day, LOCAL_DAYS[1]: end_day})
    if days != (None, None):
        first, last = meter_day_starts(conn, meter_id, *days)

    def gone() -> list[date]:
        return archived_days(conn, READINGS, first, last, meter_id)

    if is_download(request, format, cursor, limit):

        def series(after: str | None, rows: int) -> tuple[tuple[str, ...], list[tuple[Any, ...]], str | None]:
            page = readings.series_page(conn, meter_id, first, last, after, rows)
            return readings.SERIES_COLUMNS, page.rows, page.next_cursor

        return csv_download(
            request,
            conn,
            lambda up_to: readings.count_series(conn, meter_id, first, last, up_to),
            series,
            request.app.state.settings.api.csv_max_rows,
            lambda: None if known(conn, METER, meter_id) else _unknown(METER, meter_id),
            gone,
        )
    try:
        page = readings.series_page(conn, meter_id, first, last, cursor, limit or DEFAULT_PAGE_SIZE)
    except (CursorError, ValueError) as err:
        raise _bad_cursor(err) from err
    if not page.rows and cursor is None and not known(conn, METER, meter_id):
        raise _unknown(METER, meter_id)
    return page_response(request, format, readings.SERIES_COLUMNS, page.rows, page.next_cursor, gone())


@router.get(
    "/v1/meters/{meter_id}/latest",
    summary="A meter's latest reading",
    openapi_extra=PER_METER,
    responses={
        **single_response(
            stored_row(READINGS, LATEST_COLUMNS), "The meter's newest stored reading.", LATEST_ARCHIVED
        ),
        **openapi_errors(404),
    },
)
def latest_reading(request: Request, meter_id: str, principal: Reader) -> Response:
    """The newest interval stored for the meter (its newest record version), from the cache when
    Redis holds it, else from PostgreSQL, with the days from its day on whose readings left
    PostgreSQL for the lake (`archived_days`). A cached reading whose day left is checked against
    PostgreSQL, so the weekly retention's deletion does not leave it served until its TTL. A meter
    with no reading in PostgreSQL is 404: `archived` when its readings left it for the lake,
    `not_found` otherwise."""
    require_meter(principal, meter_id)
    check_text(("path", "meter_id"), meter_id)
    state = request.app.state
    reading, source = latest_reading_through_cache(state.cache, state.pool.connection, meter_id)
    gone: list[date] = []
    if reading is not None:
        since = _start(reading)
        newest = state.archive_horizon.newest(READINGS.source, state.pool.connection)
        # The meter's local day of the reading is its UTC date's or the one before: an archived day
        # before both cannot be on or after it, so the usual reading asks PostgreSQL nothing.
        if newest is not None and newest >= since.date() - timedelta(days=1):
            with state.pool.connection() as conn:
                gone = archived_days(conn, READINGS, since, None, meter_id)
                if gone and source == "cache":  # the reading's own day may be one that left
                    checked, source = confirmed_latest(state.cache, conn, meter_id, reading)
                    if checked is not reading:
                        reading = checked
                        gone = (
                            []
                            if checked is None
                            else archived_days(conn, READINGS, _start(checked), None, meter_id)
                        )
    if reading is None:
        with state.pool.connection() as conn:
            if not known(conn, METER, meter_id):
                raise _unknown(METER, meter_id)
            raise _no_reading(meter_id, meter_archive(conn, meter_id))
    return json_response(
        {"data": reading, "archived_days": gone},
        headers={"X-Metrify-Source": source, **archived_headers(gone)},
    )


def _start(reading: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(reading["reading_start"])


def _no_reading(meter_id: str, archive: MeterArchive) -> ApiError:
    """The 404 of a known meter without a reading in PostgreSQL: `archived` when its readings left it
    for the lake (the marts keep its consumption), else `not_found`. Days archived before readings were
    recorded per meter (migration 0027) may hold its: said so, as `archived`."""
    restore = (
        "`metrify restore --dataset meter_readings --from DAY --to DAY` brings days back; "
        "/v1/consumption/daily and /v1/consumption/hourly keep its consumption"
    )
    if archive.days:
        days = archive.days
        return ApiError(
            404,
            "archived",
            f"meter {meter_id!r} has no reading in PostgreSQL: its readings of {len(days):,} days (the "
            f"newest {days[-1]}) left it for the lake. {restore}",
            {"archived_day_count": len(days), "newest_archived_day": days[-1].isoformat(), "per_meter": True},
        )
    if archive.unindexed:
        days = archive.unindexed
        return ApiError(
            404,
            "archived",
            f"meter {meter_id!r} has no reading in PostgreSQL, and the readings of {len(days):,} days (the "
            f"newest {days[-1]}) left it for the lake before archived days were recorded per meter: its "
            f"readings may be among them. {restore}",
            {
                "archived_day_count": len(days),
                "newest_archived_day": days[-1].isoformat(),
                "per_meter": False,
            },
        )
    return ApiError(404, "not_found", f"meter {meter_id!r} is known but has no reading stored yet")


def _unknown(kind: Kind, value: str) -> ApiError:
    """The 404 of an id the store has no trace of, the same on every endpoint of one (a known meter
    without a reading has its own message on /latest)."""
    return ApiError(404, "not_found", kind.unknown_message(value))


def _python_name(param: str) -> str:
    return f"{param}_" if iskeyword(param) else param


def hot_source(dataset: Dataset) -> SourceContract | None:
    """The source whose hot rows `dataset` serves (an `ops` table the lifecycle empties of the days it
    moved to the lake): its responses name those days of their span (`archived_days`). None: a mart,
    which keeps its history."""
    if dataset.schema != "ops":
        return None
    return next((c for c in CONTRACTS.values() if c.table == dataset.table), None)


def _download(
    request: Request,
    conn: psycopg.Connection,
    dataset: Dataset,
    params: dict[str, Any],
    path_value: str | None,
    meters: frozenset[str] | None,
    archived: Callable[[], list[date]] | None,
) -> Response:
    """The whole result of `dataset`'s filters as one streamed CSV (`csv_download`): read from
    PostgreSQL, not the cache, which keeps pages."""

    def pages(after: str | None, rows: int) -> tuple[list[str], list[tuple[Any, ...]], str | None]:
        page = query_page(
            conn, dataset, params, path_value=path_value, meters=meters, cursor=after, limit=rows
        )
        return page.columns, page.rows, page.next_cursor

    def unknown() -> ApiError | None:
        kind = dataset.path_kind
        if kind and path_value is not None and not known(conn, kind, path_value):
            return _unknown(kind, path_value)
        return None

    return csv_download(
        request,
        conn,
        lambda up_to: count_rows(conn, dataset, params, path_value=path_value, meters=meters, up_to=up_to),
        pages,
        request.app.state.settings.api.csv_max_rows,
        unknown,
        archived,
    )


def dataset_endpoint(dataset: Dataset) -> Callable[..., Response]:
    """A GET endpoint for `dataset` whose query parameters are its filters (so /docs lists them)."""

    def endpoint(request: Request, principal: Principal, conn: psycopg.Connection, **kwargs: Any) -> Response:
        path_value: str | None = kwargs.pop(dataset.path_filter) if dataset.path_filter else None
        if dataset.path_filter:
            check_text(("path", dataset.path_filter), path_value)
        cursor, limit, fmt = kwargs.pop("cursor"), kwargs.pop("limit"), kwargs.pop("format")
        params: dict[str, Any] = {}
        for f in dataset.filters:
            raw = kwargs.get(_python_name(f.param))
            if raw is not None:
                params[f.param] = parse_filter(f, raw)
        check_range(params.get("from"), params.get("to"))
        check_range(params.get(LOCAL_DAYS[0]), params.get(LOCAL_DAYS[1]), LOCAL_DAYS)
        one_kind_of_range({f.param: kwargs.get(_python_name(f.param)) for f in dataset.filters})
        if params.get("meter_id") is not None:
            require_meter(principal, params["meter_id"])
        meters = principal.meters  # a limited token gets here only where the rows are per meter
        source = hot_source(dataset)
        archived = None
        if source is not None:
            archived = partial(archived_days, conn, source, params.get("from"), params.get("to"))
        if is_download(request, fmt, cursor, limit):
            return _download(request, conn, dataset, params, path_value, meters, archived)

        def compute() -> dict[str, Any]:
            page = query_page(
                conn,
                dataset,
                params,
                path_value=path_value,
                meters=meters,
                cursor=cursor,
                limit=limit or DEFAULT_PAGE_SIZE,
            )
            return {"columns": page.columns, "rows": page.rows, "next_cursor": page.next_cursor}

        # Hot queries through Redis, keyed by what was asked and by the global generation, which every
        # writer and every dbt build moves after its commit: a cached page never outlives its rows.
        # `meters` None (every meter) and [] (none) must not share a key.
        allowed = None if meters is None else sorted(meters)
        key = [dataset.name, path_value, sorted(params.items()), allowed, cursor, limit]
        try:
            page = cached(request.app.state.cache, key, compute)
        except CursorError as err:
            raise _bad_cursor(err) from err
        kind, first_page_empty = dataset.path_kind, cursor is None and not page["rows"]
        if kind and path_value is not None and first_page_empty and not known(conn, kind, path_value):
            raise _unknown(kind, path_value)
        # Read past the cache: the lifecycle's hot deletions move no cache generation.
        days = archived() if archived is not None else None
        return page_response(request, fmt, page["columns"], page["rows"], page["next_cursor"], days)

    params = [
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
        inspect.Parameter("principal", inspect.Parameter.KEYWORD_ONLY, annotation=Reader),
        inspect.Parameter("conn", inspect.Parameter.KEYWORD_ONLY, annotation=Conn),
    ]
    if dataset.path_filter:
        params.append(inspect.Parameter(dataset.path_filter, inspect.Parameter.KEYWORD_ONLY, annotation=str))
    seen: set[str] = set()
    for f in dataset.filters:
        if f.param in seen:
            continue
        seen.add(f.param)
        query = Query(alias=f.param, description=f.description or f"Rows whose {f.column} equals this.")
        params.append(
            inspect.Parameter(
                _python_name(f.param),
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[str | None, query],
            )
        )
    params += [
        inspect.Parameter("cursor", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Cursor),
        inspect.Parameter("limit", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Limit),
        inspect.Parameter("format", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Format),
    ]

    def wrapper(**kwargs: Any) -> Response:
        return endpoint(kwargs.pop("request"), kwargs.pop("principal"), kwargs.pop("conn"), **kwargs)

    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__name__ = dataset.name
    wrapper.__doc__ = dataset.description
    return wrapper


def summary_of(description: str) -> str:
    """A route's summary for /docs: its description's first clause, up to the first `. ` or `; `
    outside parentheses (a cut at the first colon left `(ENTSO-E states` open)."""
    depth = 0
    for i, char in enumerate(description):
        depth += (char == "(") - (char == ")")
        if depth == 0 and char in ".;" and description[i + 1 : i + 2] in (" ", ""):
            return description[:i]
    return description


for _dataset in DATASETS.values():
    router.add_api_route(
        _dataset.path,
        dataset_endpoint(_dataset),
        methods=["GET"],
        summary=summary_of(_dataset.description),
        openapi_extra=PER_METER if _dataset.per_meter else None,
        responses={
            **page_responses(
                dataset_row(_dataset),
                f"A page of rows in {', '.join(_dataset.key)} order.",
                archived=hot_source(_dataset) is not None,
            ),
            **(openapi_errors(400) if _dataset.path_kind is None else openapi_errors(400, 404)),
        },
    )
