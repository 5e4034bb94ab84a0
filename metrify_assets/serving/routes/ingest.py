"""Ingestion over the API (scope `ingest`): `POST /v1/{source}` with one record or `{"records": [...]}`,
validated against the source's JSON Schema (422 with the failing fields, nothing written), then sent
to Kafka or landed (serving/batches.py); `GET /v1/batches/{id}` reports what became of it.

`/v1/{source}` matches the three sources only (`SourceRoute`): any other `/v1/<name>` is 404 for
every method, and a source's path is 405 for anything but POST."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from metrify_assets.contracts import CONTRACTS
from metrify_assets.serving import batches, schemas
from metrify_assets.serving.auth import Principal, require, require_meter
from metrify_assets.serving.db import connection
from metrify_assets.serving.errors import ApiError, ErrorBody, check_text, openapi_errors
from metrify_assets.serving.kafka import MessageTooLargeError, SendError
from metrify_assets.serving.output import json_response, read_json

router = APIRouter(tags=["ingestion"])
Conn = Annotated[psycopg.Connection, Depends(connection)]
Source = Enum("Source", {s: s for s in CONTRACTS}, type=str)  # type: ignore[misc]


class SourceRoute(APIRoute):
    """A route whose `{source}` matches a known source only. Starlette matches `/v1/{source}` on any
    single segment, so `GET /v1/nonexistent` found this POST route and answered 405; now an unknown
    name matches nothing (404) while the route keeps its one template for traces and metrics."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE and child_scope.get("path_params", {}).get("source") not in CONTRACTS:
            return Match.NONE, {}
        return match, child_scope


def ingest(
    request: Request,
    source: Source,
    principal: Annotated[Principal, Depends(require("ingest"))],
    body: Annotated[Any, Depends(read_json)],  # after the token: a 401 comes before any body error
    conn: Conn,
) -> Response:
    """Validate, then hand the body to the pipeline (one message per meter, node or station on Kafka);
    202 with the batch id to poll."""
    name = str(source.value)
    errors = schemas.validate(name, body)
    failure = f"do not match schemas/{name}.v1.json"
    if not errors:  # the message must be strict JSON the pipeline's decoder reads whole
        errors, failure = schemas.unsendable(body), "cannot be sent on as strict JSON"
    if errors:
        failing = len(errors) + errors.more
        listed = f" (the first {len(errors)} listed)" if errors.more else ""
        message = f"{failing} field(s) {failure}{listed}: nothing was written"
        raise ApiError(422, "invalid_body", message, [e.as_dict() for e in errors])
    if principal.meters is not None:  # a meter-limited token sends its meters' readings only
        if name != "meter_readings":
            raise ApiError(403, "meter_forbidden", "a meter-limited token sends meter readings only")
        records = body["records"] if isinstance(body.get("records"), list) else [body]
        for meter_id in sorted({str(r.get("meter_id")) for r in records}):
            require_meter(principal, meter_id)
    state = request.app.state
    try:
        batch = batches.accept(
            conn,
            name,
            body,
            subject=principal.subject,
            client=request.client.host if request.client else None,
            token_id=principal.token_id,
            landing_dir=state.settings.landing_dir,
            send=state.sender,
        )
    except MessageTooLargeError as err:
        raise ApiError(413, "payload_too_large", f"{err}; send fewer records per request") from err
    except SendError as err:
        raise ApiError(503, "kafka_unavailable", f"{err}; nothing was accepted, retry later") from err
    location = f"/v1/batches/{batch.batch_id}"
    return json_response(
        {"data": batch.as_dict(), "status_url": location}, status_code=202, headers={"Location": location}
    )


router.add_api_route(
    "/v1/{source}",
    ingest,
    methods=["POST"],
    route_class_override=SourceRoute,
    status_code=202,
    summary="Send one record or a batch of records",
    responses={
        **openapi_errors(401, 403, 413, 415, 429, 503),
        422: {
            "model": ErrorBody,
            "description": "The body is not JSON or does not match the source's JSON Schema: nothing was written.",
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": 'One record, or `{"records": [...]}` (schemas/<source>.v1.json).',
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)


@router.get(
    "/v1/batches/{batch_id}",
    summary="What became of a request's records",
    responses=openapi_errors(401, 403, 404, 422, 429),
)
def batch_status(
    request: Request, batch_id: str, principal: Annotated[Principal, Depends(require("ingest"))], conn: Conn
) -> Response:
    """`queued` until the pipeline has processed the message, then `processed` with the records
    accepted and quarantined and the quarantine reasons."""
    check_text(("path", "batch_id"), batch_id)
    batch = batches.status(conn, request.app.state.lake, batch_id)
    if batch is None or not (batch.subject == principal.subject or principal.has("admin")):
        raise ApiError(404, "not_found", f"no batch {batch_id!r}")
    return json_response({"data": batch.as_dict()})
