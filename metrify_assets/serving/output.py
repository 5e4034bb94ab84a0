"""Responses in JSON or CSV: `?format=csv` or `Accept: text/csv` asks for CSV, JSON otherwise.

JSON pages are `{"data": [...], "count": n, "next_cursor": ...}`; CSV pages carry the cursor in the
`X-Next-Cursor` header (and a `Link: <...>; rel="next"` for clients that follow links). Request
bodies are JSON only: `require_json` answers 415 for a body of any other content type.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from metrify_assets.serving.errors import ApiError

FORMATS = ("json", "csv")


def require_json(request: Request) -> None:
    """A dependency of the routes that take a JSON body: a body sent as anything else (text/plain,
    a form, or no Content-Type at all, as `curl -d` without `-H` sends it) is 415 with what to send,
    not a 422 about the body's Python type. FastAPI parses only `application/json` and `*+json`."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return
    sent = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
    raise ApiError(
        415,
        "unsupported_media_type",
        f"the body must be JSON sent as Content-Type: application/json (the request has {sent})",
        {"content_type": content_type or None, "accepted": ["application/json"]},
    )


def wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _cell(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


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
    return Response(orjson.dumps(body, default=str), media_type="application/json", headers=headers)


def json_response(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, default=str),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )
