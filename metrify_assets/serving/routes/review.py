"""Review over the API (scope `review`): the flagged records, one of them as `metrify review show` shows
it, and approve or reject (one item, or every pending item a filter selects) with the token's subject
recorded as the reviewer and as the decision's account, and the token's id in its audit entry (the
same decisions as `metrify review`, quality/review.py: a meter reading's decision becomes an edit of
its VEE series at once)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from datetime import date, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from metrify_assets.meters.vee import review as vee_review
from metrify_assets.quality import review, review_context
from metrify_assets.quality.rules import FLAG_REASONS
from metrify_assets.serving.auth import Principal, require, require_meter
from metrify_assets.serving.datasets import SOURCES, Filter, parse_filter
from metrify_assets.serving.db import connection
from metrify_assets.serving.errors import (
    ApiError,
    check_range,
    check_text,
    field_detail,
    openapi_errors,
    refuse_unknown_parameters,
)
from metrify_assets.serving.output import Format, json_response, page_response, read_json
from metrify_assets.serving.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    CursorError,
    cursor_scope,
    decode_cursor,
    encode_cursor,
)
from metrify_assets.storage.audit import Caller

Conn = Annotated[psycopg.Connection, Depends(connection)]
Reviewer = Annotated[Principal, Depends(require("review"))]


async def review_access(request: Request, principal: Reviewer) -> None:
    """After the token's check (the routes' own `Reviewer`, verified once): a query parameter a
    route does not take is a 422 naming it (`?stauts=all` listed the pending items)."""
    refuse_unknown_parameters(request)


router = APIRouter(
    tags=["review"], dependencies=[Depends(review_access)], responses=openapi_errors(401, 403, 422, 429)
)
# Read after the token (a 401 comes before any body error); 415 for a decision not sent as JSON.
JsonBody = Annotated[Any, Depends(read_json)]
# A queue row's columns, in the order of `review.ReviewItem` (which a row of them builds): `decided_by`
# the reviewer as named, `decided_account` who was authenticated for the decision.
COLUMNS = tuple(f.name for f in fields(review.ReviewItem))
FLAGGED_AT = COLUMNS.index("flagged_at")
# The list's columns: a pending item whose flagged version a newer one replaced names that version's
# batch in `replaced_by` (null otherwise): a decision on it closes it as superseded; `value`: the
# flagged version's values the rule judged (`review_context.flagged_values`, as `review list --json`).
LIST_COLUMNS = (*COLUMNS, "replaced_by", "value")
# The list's filters, each a closed set checked as the datasets' are (a 422 listing the values, not
# an empty page): a flagged record's reasons are the rule catalogue's flag reasons (a reject reason
# rejects the record, which is never queued).
STATUS = Filter("status", "status", allowed=(*review.STATUSES, "all"))
SOURCE = Filter("source", "source", allowed=SOURCES)
REASON = Filter("reason", "reasons", allowed=FLAG_REASONS)
# An open set, as the datasets' meter_id: a meter without flagged readings lists nothing.
METER = Filter("meter_id", "record_key")


# No NUL character: PostgreSQL text cannot hold one (psycopg refused to store it: a 500). Not only
# whitespace: a decision needs a reason (the CLI's --reason refuses a blank one too).
Note = Annotated[
    str,
    Field(
        min_length=1,
        max_length=review.MAX_NOTE,
        pattern=r"^[^\x00]*[^\x00\s][^\x00]*$",
        description="Why: kept with the decision for audit. Any text but a NUL character, not only spaces.",
    ),
]


class Decision(BaseModel):
    """A field not named here is refused (422), as a misspelled query parameter is: a body such as
    `{"note": "ok", "status": "rejected"}` on /approve must not read as a reject."""

    model_config = ConfigDict(extra="forbid")
    note: Note


class BulkDecision(BaseModel):
    """A decision on every pending item the filter selects (at least one of its fields: a decision
    over the whole queue is refused), as `metrify review approve|reject --meter ...`."""

    model_config = ConfigDict(extra="forbid")
    note: Note
    meter_id: str | None = Field(
        None, min_length=1, pattern=r"^[^\x00]+$", description="That meter's readings only."
    )
    reason: str | None = Field(None, description=f"Items flagged with this code: {', '.join(FLAG_REASONS)}.")
    source: str | None = Field(None, description=f"One of {', '.join(SOURCES)}.")
    from_: date | None = Field(
        None, alias="from", description="Meter readings of this local day (the meter's timezone) or later."
    )
    to: date | None = Field(None, description="Meter readings up to this local day (included).")
    dry_run: bool = Field(False, description="Count what would be decided; decide nothing.")

    @field_validator("reason", "source")
    @classmethod
    def _closed_sets(cls, value: str | None, info: ValidationInfo) -> str | None:
        allowed = FLAG_REASONS if info.field_name == "reason" else SOURCES
        if value is not None and value not in allowed:
            raise ValueError(f"unknown {info.field_name} {value!r}; one of {', '.join(allowed)}")
        return value


# The fields of a bulk decision that select items, as the body names them: at least one is needed.
BULK_FILTERS = ("meter_id", "reason", "source", "from", "to")


def _body(model: type[Any], body: Any) -> Any:
    """`body` validated as `model`, its errors as the 422 of a body FastAPI would have parsed."""
    try:
        return model.model_validate(body)
    except ValidationError as err:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in err.errors()]) from err


@router.get(
    "/v1/review/items", summary="Flagged records awaiting (or after) review", responses=openapi_errors(400)
)
def list_items(
    request: Request,
    principal: Reviewer,
    conn: Conn,
    status: Annotated[
        str, Query(description=f"One of {', '.join(STATUS.allowed)} (`all`: every status, as the CLI).")
    ] = "pending",
    source: Annotated[str | None, Query(description=f"One of {', '.join(SOURCE.allowed)}.")] = None,
    reason: Annotated[
        str | None, Query(description=f"Items whose reasons include this code: {', '.join(REASON.allowed)}.")
    ] = None,
    meter_id: Annotated[
        str | None,
        Query(description="Only this meter's readings (meter_readings items), as `review list --meter`."),
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    format: Format = None,
) -> Response:
    """Oldest flagged first, with the reasons a record rule gave, `replaced_by`: for a pending item
    whose flagged version a newer one replaced, that version's batch (a decision then closes the item as
    superseded, changing nothing; null otherwise), and `value`: the flagged version's values the rule
    judged (null where neither it nor its quarantined row is stored; JSON text in CSV). Filtered as `metrify review list`
    filters (quality/review.py's `ITEM_FILTER`), then to a meter-limited token's meters (another
    meter's `meter_id` is a 403, as on the datasets)."""
    for f, raw in ((STATUS, status), (SOURCE, source), (REASON, reason), (METER, meter_id)):
        parse_filter(f, raw)
    if meter_id is not None:
        require_meter(principal, meter_id)
    params: dict[str, Any] = {
        **review.filter_params(None if status == "all" else status, source, reason, meter_id),
        "limit": limit + 1,
    }
    conditions = [review.ITEM_FILTER]
    if principal.meters is not None:  # a meter-limited token: its meters' readings only
        conditions.append(f"{review.ITEM_METER} = ANY(%(meters)s)")
        params["meters"] = sorted(principal.meters)
    filters = {"status": status, "source": source, "reason": reason, "meter_id": meter_id}
    scope = cursor_scope("review_items", filters)
    if cursor is not None:
        try:
            after = decode_cursor(cursor, scope, 3)
        except CursorError as err:
            raise ApiError(400, "bad_cursor", str(err)) from err
        if [type(v) for v in after] != [datetime, str, int]:  # a forged cursor's key would not compare
            raise ApiError(400, "bad_cursor", "cursor is not one this endpoint issued")
        params.update(zip(("after_at", "after_batch", "after_index"), after, strict=True))
        conditions.append(
            "(flagged_at, batch_id, record_index) > (%(after_at)s, %(after_batch)s, %(after_index)s)"
        )
    rows = conn.execute(
        f"SELECT {', '.join(COLUMNS)} FROM ops.review_queue WHERE {' AND '.join(conditions)} "
        "ORDER BY flagged_at, batch_id, record_index LIMIT %(limit)s",
        params,
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    next_cursor = encode_cursor(scope, [last[FLAGGED_AT], last[0], last[1]]) if more and last else None
    items = [review.ReviewItem(*row) for row in rows]
    replaced = review_context.replaced_by(conn, items)
    values = review_context.flagged_values(conn, items)
    listed = [(*row, replaced.get((row[0], row[1])), values.get((row[0], row[1]))) for row in rows]
    return page_response(request, format, LIST_COLUMNS, listed, next_cursor)


@router.get(
    "/v1/review/items/{batch_id}/{record_index}",
    summary="One flagged record, with what is judged",
    responses=openapi_errors(403, 404),
)
def show_item(batch_id: str, record_index: int, principal: Reviewer, conn: Conn) -> Response:
    """What `metrify review show` shows (quality/review.py's `show`): the queue row (`item`), the row
    stored under its key (`stored_row`), why that row is not the flagged version where a newer one
    replaced it or none is stored (`not_the_flagged_version`: a decision then closes the item as
    superseded), for a rejected item the flagged row as the rejection quarantined it
    (`quarantined_row`), and `context`: why it was flagged with the rule's figures, its neighbours in
    time and its interval in the VEE series (quality/review_context.py). A meter-limited token sees
    its meters' readings only."""
    check_text(("path", "batch_id"), batch_id)
    try:
        item = review.get_item(conn, batch_id, record_index)
        _allowed(principal, item)
        shown = review.show(conn, batch_id, record_index)
    except review.UnknownItemError as err:
        raise ApiError(404, "not_found", str(err)) from err
    return json_response({"data": shown})


def _allowed(principal: Principal, item: review.ReviewItem) -> None:
    """A meter-limited token reviews its meters' readings only (403 otherwise)."""
    if principal.meters is not None:
        meter = review.item_meter(item)
        if meter is None:
            raise ApiError(403, "meter_forbidden", "a meter-limited token reviews meter readings only")
        require_meter(principal, meter)


def _caller(request: Request, principal: Principal) -> Caller:
    """A decision's caller for the audit log: the token's subject, from the client's address, with the
    token's id."""
    return Caller.api(principal.subject, request.client.host if request.client else None, principal.token_id)


def _decide(
    request: Request,
    conn: psycopg.Connection,
    verdict: str,
    batch_id: str,
    record_index: int,
    principal: Principal,
    note: str,
) -> Response:
    """The decision, then (for a meter reading) the edit of the VEE series it becomes, as `metrify review`
    does; a meter-limited token decides on its meters' readings only. Both are in the audit log as the
    token's subject from the client's address."""
    check_text(("path", "batch_id"), batch_id)
    cache = request.app.state.cache
    caller = _caller(request, principal)
    try:
        _allowed(principal, review.get_item(conn, batch_id, record_index))
        decided = vee_review.decide(
            conn, verdict, batch_id, record_index, principal.subject, note, cache=cache, caller=caller
        )
    except review.UnknownItemError as err:
        raise ApiError(404, "not_found", str(err)) from err
    except review.ReviewError as err:
        raise ApiError(409, "conflict", str(err)) from err
    body: dict[str, Any] = {c: getattr(decided.item, c) for c in COLUMNS}
    if decided.vee is not None or decided.vee_skipped is not None:
        body["vee_status"] = decided.vee_status
    if decided.vee_error is not None:
        body["vee_error"] = decided.vee_error
    return json_response({"data": body})


def _decision_route(verdict: str) -> Callable[..., Response]:
    """The endpoint of one verdict; approve, reject and reopen take the same request."""

    def decide(
        request: Request,
        batch_id: str,
        record_index: int,
        principal: Reviewer,
        body: JsonBody,
        conn: Conn,
    ) -> Response:
        decision = _body(Decision, body)
        return _decide(request, conn, verdict, batch_id, record_index, principal, decision.note)

    decide.__name__ = verdict
    return decide


for _verdict, _summary, _description in (
    (
        "approve",
        "Approve a flagged record",
        "Keep the record (its quality flags stay, for audit); the reviewer is the token's subject.",
    ),
    (
        "reject",
        "Reject a flagged record",
        "Move the record to quarantine (`review_rejected:<note>`) and out of the derived tables.",
    ),
    (
        vee_review.REOPEN,
        "Take a decision back",
        "The item is pending again; a rejected record goes back into its table as it was (unless a newer "
        "version came since) and out of quarantine. 409 for an item that is pending or closed as "
        "superseded (nothing to take back). The audit log keeps the decision and this one.",
    ),
):
    router.add_api_route(
        f"/v1/review/items/{{batch_id}}/{{record_index}}/{_verdict}",
        _decision_route(_verdict),
        methods=["POST"],
        summary=_summary,
        description=_description,
        responses=openapi_errors(404, 409, 415),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": Decision.model_json_schema()}},
            }
        },
    )


def _bulk_route(verdict: str) -> Callable[..., Response]:
    """The endpoint of one verdict over a filter (`meters/vee/review.py`'s `decide_many`)."""

    def decide_bulk(request: Request, principal: Reviewer, body: JsonBody, conn: Conn) -> Response:
        wanted: BulkDecision = _body(BulkDecision, body)
        if wanted.meter_id is not None:
            require_meter(principal, wanted.meter_id)
        selection = review.Selection(
            source=wanted.source,
            reason=wanted.reason,
            meter=wanted.meter_id,
            first=wanted.from_,
            last=wanted.to,
            meters=None if principal.meters is None else tuple(sorted(principal.meters)),
        )
        if selection.empty():
            raise ApiError(
                422,
                "filter_required",
                "a bulk decision needs a filter: meter_id, reason, source, from or to "
                "(a decision over the whole queue is refused)",
                [
                    field_detail(("body", name), "one of the filters is needed", "filter_required", None)
                    for name in BULK_FILTERS
                ],
            )
        check_range(selection.first, selection.last, where="body", code="validation_error")
        items = review.select_pending(conn, selection)
        if wanted.dry_run:
            days = sorted({(i.day, i.meter) for i in items if i.meter is not None and i.day is not None})
            return json_response(
                {
                    "data": {
                        "verdict": verdict,
                        "dry_run": True,
                        "selected": len(items),
                        "meter_days": [{"meter_id": m, "day": d.isoformat()} for d, m in days],
                    }
                }
            )
        caller = _caller(request, principal)
        done = vee_review.decide_many(
            conn, verdict, items, principal.subject, wanted.note, cache=request.app.state.cache, caller=caller
        )
        return json_response({"data": {**done.as_json(), "dry_run": False}})

    decide_bulk.__name__ = f"{verdict}_bulk"
    return decide_bulk


for _verdict in vee_review.VERDICTS:
    router.add_api_route(
        f"/v1/review/bulk/{_verdict}",
        _bulk_route(_verdict),
        methods=["POST"],
        summary=f"{_verdict.capitalize()} every pending item a filter selects",
        description=(
            "Each item decided as the single route decides it (its audit entry, the token's subject as the "
            "reviewer, the note, its day stamped for rebuild), then VEE re-run once per meter-day. An item "
            "decided meanwhile is skipped and counted (`skipped.already_decided`); one whose flagged version "
            "a newer one replaced is closed as superseded (`skipped.superseded`). At least one filter field is "
            "required (422 `filter_required`); `dry_run` counts without deciding."
        ),
        responses=openapi_errors(415),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": BulkDecision.model_json_schema()}},
            }
        },
    )
