"""Responses in JSON or CSV: `?format=csv` or `Accept: text/csv` asks for CSV, JSON otherwise.

JSON pages are `{"data": [...], "count": n, "next_cursor": ...}`; CSV pages carry the cursor in the
`X-Next-Cursor` header (and a `Link: <...>; rel="next"` for clients that follow links). A route that
serves hot rows (PostgreSQL's, which the lifecycle deletes once a day is in the lake) also says which
days of the span left them: `archived_days` in the JSON body, `X-Archived-Days` on every response. A CSV asked
for without `limit` or `cursor` is the whole result instead (`csv_download`): streamed page by page
from one snapshot, so a saved file is never silently a first page. Request
bodies are JSON only: `read_json` parses them, after authentication, and answers 415 for a body of
any other content type.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any

import orjson
import psycopg
from fastapi import Query, Request
from fastapi.responses import Response, StreamingResponse
from psycopg.pq import TransactionStatus

from metrify_assets.partitions import contiguous_ranges, ranges_text
from metrify_assets.serving.errors import ApiError, field_detail
from metrify_assets.serving.head import is_head

FORMATS = ("json", "csv")
# The `format` query parameter of every route that pages rows. Its pattern lists the formats, so a
# value outside them is refused naming them (errors.CLOSED_SET).
Format = Annotated[
    str | None,
    Query(pattern=f"^({'|'.join(FORMATS)})$", description="json (default) or csv; or `Accept: text/csv`."),
]
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
# Rows a whole-result CSV download reads and writes at a time: its memory is one such page.
DOWNLOAD_PAGE_ROWS = 5_000
# The days of a response's span whose rows left the hot tier, as ranges ("2026-03-01..2026-03-03, 2026-03-05").
ARCHIVED_HEADER = "X-Archived-Days"


def archived_headers(days: Sequence[date] | None) -> dict[str, str]:
    """The `X-Archived-Days` header of `days` (none when there are none, or the route serves no hot rows)."""
    return {ARCHIVED_HEADER: ranges_text(contiguous_ranges(list(days)))} if days else {}


def _unreadable(message: str) -> ApiError:
    """The 422 of a body that is not JSON: one `json_invalid` field, `body`, with no value to echo."""
    detail = field_detail(("body",), message, "json_invalid", None)
    return ApiError(422, "validation_error", "the body is not JSON: " + message, [detail])


async def read_json(request: Request) -> Any:
    """The request's body parsed as JSON: a dependency that routes taking a body declare after their
    token's, so that a caller without one gets its 401 whatever the body (FastAPI parses a declared
    `Body` before any dependency runs). A body sent as anything but JSON (text/plain, a form, no
    Content-Type at all, as `curl -d` without `-H` sends it) or compressed is 415 with what to send;
    one that does not parse (bad syntax, not UTF-8, nested past Python's recursion limit, an
    integer of over 4,300 digits) is a 422 `json_invalid`, never FastAPI's bare 400."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not (
        media_type == "application/json"
        or (media_type.startswith("application/") and media_type.endswith("+json"))
    ):
        sent = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the body must be JSON sent as Content-Type: application/json (the request has {sent})",
            {"content_type": content_type or None, "accepted": ["application/json"]},
        )
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the body must be sent uncompressed (the request has Content-Encoding {encoding!r})",
            {"content_encoding": encoding, "accepted": ["identity"]},
        )
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _unreadable(f"invalid UTF-8 at byte {err.start}") from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise _unreadable(f"{err.msg} at character {err.pos}") from err
    except RecursionError as err:
        raise _unreadable("nested too deeply to parse") from err
    except ValueError as err:  # an integer longer than int() reads (sys.get_int_max_str_digits)
        raise _unreadable(str(err)) from err


def wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _cell(value: Any) -> Any:
    """A CSV cell: dates and times in ISO 8601, a time with its offset (`_json` explains the UTC), and
    booleans as JSON writes them (`true`, `false`: Python's `True` reads as text in most tools), an
    object as its JSON text."""
    if isinstance(value, dict):
        return _json(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC).isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _json(body: Any) -> bytes:
    """A response body. The marts' times are `timestamp` columns in UTC (named `..._utc`, as dbt keeps
    them the same on PostgreSQL and Snowflake); they leave with `+00:00` like every other time of the
    API, so a client need not know which columns came without an offset."""
    return orjson.dumps(body, default=str, option=orjson.OPT_NAIVE_UTC)


def records(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in rows]


def page_response(
    request: Request,
    fmt: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    next_cursor: str | None,
    archived_days: Sequence[date] | None = None,
) -> Response:
    """A page of rows in the format asked for, with the cursor of the next page if there is one.
    `archived_days`: a route serving hot rows names the days of its span that left them (None: not such
    a route), as `archived_days` in the JSON body and the `X-Archived-Days` header."""
    headers = archived_headers(archived_days)
    if next_cursor is not None:
        headers["X-Next-Cursor"] = next_cursor
        headers["Link"] = f'<{request.url.include_query_params(cursor=next_cursor)}>; rel="next"'
    if wants_csv(request, fmt):
        return Response(_csv_text(columns, *rows), media_type=CSV_MEDIA_TYPE, headers=headers)
    body: dict[str, Any] = {"data": records(columns, rows), "count": len(rows), "next_cursor": next_cursor}
    if archived_days is not None:
        body["archived_days"] = list(archived_days)
    return Response(_json(body), media_type="application/json", headers=headers)


def _csv_text(*rows: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([_cell(v) for v in row] for row in rows)
    return buffer.getvalue()


def is_download(request: Request, fmt: str | None, cursor: str | None, limit: int | None) -> bool:
    """Whether the request asks for the whole result as one CSV file: CSV without `limit` or `cursor`
    (with either, the caller pages, and gets a page)."""
    return wants_csv(request, fmt) and cursor is None and limit is None


# A page of a download from (cursor, rows): its column names, its rows and the cursor after them
# (None on the last page).
PageReader = Callable[[str | None, int], tuple[Sequence[str], Sequence[Sequence[Any]], str | None]]


def csv_download(
    request: Request,
    conn: psycopg.Connection,
    count: Callable[[int], int],
    page: PageReader,
    max_rows: int,
    unknown: Callable[[], ApiError | None] = lambda: None,
    archived: Callable[[], Sequence[date]] | None = None,
) -> Response:
    """Every row of a query as one streamed CSV file. The rows are read `DOWNLOAD_PAGE_ROWS` at a time
    through `page` (the endpoint's keyset pages), all in one REPEATABLE READ transaction on `conn`, so
    the file is one snapshot of the rows, whatever is written meanwhile, and its memory one page.
    `count(n)` counts the rows up to n and the first page is read before anything is sent: over `max_rows` the answer is a 422
    `too_many_rows` rather than a cut file; `X-Row-Count` says how many rows the file holds. When
    the result is empty, `unknown()` may name a 404 (an id the store has no trace of). A file whose
    rows do not add up to the count (they cannot, in one snapshot) ends without its last chunk, so
    the client sees a broken transfer, never a short file that looks whole. A HEAD (`is_head`) gets
    the same status and headers from the count alone: no page is read, nothing is written out.
    `archived()`: the days of the query's span whose rows left the hot tier, read in the same snapshot
    (`X-Archived-Days`; None: a route serving no hot rows)."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        conn.rollback()
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    head = is_head(request)
    try:
        total = count(max_rows + 1)
        gone = archived() if archived is not None else None
        read_first = total <= max_rows and not head
        columns, first, after = page(None, DOWNLOAD_PAGE_ROWS) if read_first else ((), (), None)
        error = (
            ApiError(
                422,
                "too_many_rows",
                f"the result holds more than {max_rows:,} rows, the most a CSV download sends: narrow the "
                "filters (a shorter from/to), or page it with limit and cursor (X-Next-Cursor)",
                {"max_rows": max_rows},
            )
            if total > max_rows
            else (unknown() if total == 0 else None)
        )
    except BaseException:
        conn.rollback()
        raise
    if error is not None or head:
        conn.rollback()
    if error is not None:
        raise error
    headers = {"X-Row-Count": str(total), **archived_headers(gone)}
    if head:  # the GET's headers (chunked, so no Content-Length), without a row read
        return StreamingResponse(iter(()), media_type=CSV_MEDIA_TYPE, headers=headers)

    def body() -> Iterator[str]:
        try:
            yield _csv_text(columns, *first)
            sent, cursor = len(first), after
            while cursor is not None:
                _, rows, cursor = page(cursor, DOWNLOAD_PAGE_ROWS)
                sent += len(rows)
                yield _csv_text(*rows)
            if sent != total:
                raise RuntimeError(f"CSV download sent {sent} rows of the {total} counted in its snapshot")
        finally:
            conn.rollback()

    return StreamingResponse(body(), media_type=CSV_MEDIA_TYPE, headers=headers)


def json_response(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        _json(body),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )
