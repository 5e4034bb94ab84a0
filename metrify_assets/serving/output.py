"""Responses in JSON or CSV: `?format=csv` or `Accept: text/csv` asks for CSV, JSON otherwise.

JSON pages are `{"data": [...], "count": n, "next_cursor": ...}`; CSV pages carry the cursor in the
`X-Next-Cursor` header (and a `Link: <...>; rel="next"` for clients that follow links). Request
bodies are JSON only: `read_json` parses them, after authentication, and answers 415 for a body of
any other content type.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from metrify_assets.serving.errors import ApiError, field_detail

FORMATS = ("json", "csv")


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
    booleans as JSON writes them (`true`, `false`: Python's `True` reads as text in most tools)."""
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
) -> Response:
    """A page of rows in the format asked for, with the cursor of the next page if there is one."""
    headers: dict[str, str] = {}
    if next_cursor is not None:
        headers["X-Next-Cursor"] = next_cursor
        headers["Link"] = f'<{request.url.include_query_params(cursor=next_cursor)}>; rel="next"'
    if wants_csv(request, fmt):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows([_cell(v) for v in row] for row in rows)
        return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
    body = {"data": records(columns, rows), "count": len(rows), "next_cursor": next_cursor}
    return Response(_json(body), media_type="application/json", headers=headers)


def json_response(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        _json(body),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )
