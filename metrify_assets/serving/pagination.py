"""Keyset (cursor) pagination: stable under concurrent inserts, unlike OFFSET.

A page is ordered by a unique key (e.g. `meter_id, reading_start`); the cursor is the last row's key,
opaque to the caller (URL-safe base64 of JSON). The next page starts strictly after it, so a row
inserted meanwhile is either seen once or, if it sorts before the cursor, not at all, and no row is
ever repeated or skipped among those that existed when the first page was read. A cursor continues
the query that issued it: its scope names the endpoint and the filters of that query, and the same
cursor with other filters is refused (it would page another result set from a key of the first).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote_plus, urlencode

import orjson

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000


class CursorError(ValueError):
    """A cursor that this endpoint did not issue (or that was altered)."""


def cursor_scope(endpoint: str, filters: Mapping[str, object]) -> str:
    """What a cursor is valid for: `endpoint` with the filters of its query (unset ones left out,
    values as text, in name order), e.g. `consumption_daily?region=london`. A time is in UTC, so one
    instant written with another offset continues the same query."""
    given = sorted((name, _text(value)) for name, value in filters.items() if value is not None)
    return f"{endpoint}?{urlencode(given)}" if given else endpoint


def _text(value: object) -> str:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).isoformat()
    return value.isoformat() if isinstance(value, date) else str(value)


def encode_cursor(scope: str, key: Sequence[Any]) -> str:
    """An opaque cursor of endpoint `scope` for the row whose sort key is `key` (str, int, float,
    date or datetime)."""
    values = [
        {"t": v.isoformat()}
        if isinstance(v, datetime)
        else {"d": v.isoformat()}
        if isinstance(v, date)
        else v
        for v in key
    ]
    return base64.urlsafe_b64encode(orjson.dumps([scope, values])).decode().rstrip("=")


def decode_cursor(cursor: str, scope: str, width: int) -> list[Any]:
    """The sort key a cursor of endpoint `scope` holds (`width` values); CursorError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        issued_for, values = orjson.loads(raw)
        if not isinstance(issued_for, str) or not isinstance(values, list) or len(values) != width:
            raise CursorError("cursor is not one this endpoint issued")
        if issued_for != scope:
            endpoint, _, filters = issued_for.partition("?")
            if endpoint != scope.partition("?")[0]:
                raise CursorError("cursor is not one this endpoint issued")
            raise CursorError(
                f"cursor was issued for other filters ({unquote_plus(filters) or 'none'}): repeat them with it, or start "
                "again without a cursor"
            )
        return [_value(v) for v in values]
    except CursorError:
        raise
    except (ValueError, TypeError, orjson.JSONDecodeError) as err:
        raise CursorError("cursor is not one this endpoint issued") from err


def _value(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("t"), str):
        return datetime.fromisoformat(value["t"])
    if isinstance(value, dict) and isinstance(value.get("d"), str):
        return date.fromisoformat(value["d"])
    if isinstance(value, str) and "\x00" in value:  # never issued: PostgreSQL text holds no NUL
        raise CursorError("cursor is not one this endpoint issued")
    if isinstance(value, (str, int, float)) or value is None:
        return value
    raise CursorError("cursor is not one this endpoint issued")
