"""Review over the API (scope `review`): the flagged records, and approve or reject with the token's
subject recorded as the reviewer (the same decisions as `metrify review`, quality/review.py)."""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from metrify_assets.quality import review
from metrify_assets.serving.auth import Principal, require
from metrify_assets.serving.db import connection
from metrify_assets.serving.errors import ApiError
from metrify_assets.serving.output import json_response, page_response
from metrify_assets.serving.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    CursorError,
    decode_cursor,
    encode_cursor,
)

router = APIRouter(tags=["review"])
Conn = Annotated[psycopg.Connection, Depends(connection)]
Reviewer = Annotated[Principal, Depends(require("review"))]
COLUMNS = (
    "batch_id",
    "record_index",
    "source",
    "record_key",
    "reasons",
    "status",
    "decided_by",
    "decided_at",
    "decision_note",
    "flagged_at",
)


class Decision(BaseModel):
    note: str = Field(min_length=1, max_length=2000, description="Why: kept with the decision for audit.")


@router.get("/v1/review/items", summary="Flagged records awaiting (or after) review")
def list_items(
    request: Request,
    principal: Reviewer,
    conn: Conn,
    status: Annotated[str, Query(pattern="^(pending|approved|rejected)$")] = "pending",
    source: str | None = None,
    reason: Annotated[str | None, Query(description="Items whose reasons include this code.")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    format: Annotated[str | None, Query(pattern="^(json|csv)$")] = None,
) -> Response:
    """Oldest flagged first, with the reasons a record rule gave."""
    conditions = ["status = %s"]
    values: list[Any] = [status]
    if source is not None:
        conditions.append("source = %s")
        values.append(source)
    if reason is not None:
        conditions.append("%s = ANY(string_to_array(reasons, ','))")
        values.append(reason)
    if cursor is not None:
        try:
            after = decode_cursor(cursor, 3)
        except CursorError as err:
            raise ApiError(400, "bad_cursor", str(err)) from err
        conditions.append("(flagged_at, batch_id, record_index) > (%s, %s, %s)")
        values.extend(after)
    rows = conn.execute(
        f"SELECT {', '.join(COLUMNS)} FROM ops.review_queue WHERE {' AND '.join(conditions)} "
        "ORDER BY flagged_at, batch_id, record_index LIMIT %s",
        [*values, limit + 1],
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    next_cursor = encode_cursor([last[9], last[0], last[1]]) if more and last else None
    return page_response(request, format, COLUMNS, rows, next_cursor)


def _decide(
    request: Request,
    conn: psycopg.Connection,
    verdict: str,
    batch_id: str,
    record_index: int,
    by: str,
    note: str,
) -> Response:
    decide = review.approve if verdict == "approve" else review.reject
    try:
        item = decide(conn, batch_id, record_index, by, note, cache=request.app.state.cache)
    except review.UnknownItemError as err:
        raise ApiError(404, "not_found", str(err)) from err
    except review.ReviewError as err:
        raise ApiError(409, "conflict", str(err)) from err
    return json_response({"data": {c: getattr(item, c) for c in COLUMNS}})


@router.post("/v1/review/items/{batch_id}/{record_index}/approve", summary="Approve a flagged record")
def approve(
    request: Request, batch_id: str, record_index: int, decision: Decision, principal: Reviewer, conn: Conn
) -> Response:
    """Keep the record (its quality flags stay, for audit); the reviewer is the token's subject."""
    return _decide(request, conn, "approve", batch_id, record_index, principal.subject, decision.note)


@router.post("/v1/review/items/{batch_id}/{record_index}/reject", summary="Reject a flagged record")
def reject(
    request: Request, batch_id: str, record_index: int, decision: Decision, principal: Reviewer, conn: Conn
) -> Response:
    """Move the record to quarantine (`review_rejected:<note>`) and out of the derived tables."""
    return _decide(request, conn, "reject", batch_id, record_index, principal.subject, decision.note)
