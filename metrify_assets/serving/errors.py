"""One error shape for the whole API: `{"error": {"status", "code", "message", "details"}}`.

Clients branch on `code` (stable, snake_case) and show `message` (for people); `details` carries what
a machine can act on (the failing fields of a 422, the wait of a 429) or is null. Every 422 lists its
failing fields in one shape, `field_detail`, whichever check found them. Every path that can
answer an error goes through here: routes and dependencies raise `ApiError` (or FastAPI's
`HTTPException`), middlewares outside the exception handlers call `error_response` themselves, and
`install_error_handlers` turns everything else, unexpected exceptions included, into this shape.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from metrify_assets.ingestion.readers.text import first_surrogate

log = logging.getLogger(__name__)
MAX_VALUE_CHARS = 200  # a failing value longer than this (as JSON) is echoed cut short
MAX_JSON_DEPTH = 64  # levels of nesting an error's details show (deeper is "..."), and a body may have
CUT = "..."
# A parameter's pattern that lists the values it takes, `^(json|csv)$`: a closed set, refused as one.
CLOSED_SET = re.compile(r"\^\(([\w-]+(?:\|[\w-]+)*)\)\$")


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """The body of every error response (for OpenAPI: `responses=openapi_errors(401, 403)`)."""

    error: ErrorDetail


class ApiError(HTTPException):
    """An error answered in the common shape with its own `code`. It is an `HTTPException` so that
    FastAPI passes it through untouched, even when raised while the request body is read."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=message, headers=dict(headers) if headers else None)
        self.code = code
        self.message = message
        self.details = details

    def response(self) -> JSONResponse:
        return error_response(self.status_code, self.code, self.message, self.details, self.headers)


# The default `code` of a status, fixed here rather than derived from `HTTPStatus` phrases, which
# change between Python versions (413 and 422 were renamed in 3.13).
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def status_code_name(status: int) -> str:
    """The default `code` of a status: 404 -> `not_found`."""
    return STATUS_CODES.get(status) or _phrase(status).lower().replace(" ", "_").replace("-", "_")


def _text(text: str) -> str:
    """`text` as UTF-8 can carry it: a lone surrogate becomes its escape, written out, rather than
    failing the answer's encoding."""
    if first_surrogate(text):
        return text.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return text


def json_safe(value: Any, depth: int = 0) -> Any:
    """`value` as strict JSON can carry it, whatever a caller sent: NaN and the infinities (which
    Python's JSON parser reads) become the strings `NaN`, `Infinity` and `-Infinity`, bytes are
    decoded, lone surrogates escaped, an object no encoder knows is its `str`, and what lies deeper
    than `MAX_JSON_DEPTH` levels is `"..."` (no recursion limit to hit). An error answer must never
    fail itself."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else json.dumps(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, Mapping | list | tuple | set | frozenset) and depth >= MAX_JSON_DEPTH:
        return CUT
    if isinstance(value, Mapping):
        return {_text(str(k)): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v, depth + 1) for v in value]
    try:
        encoded = jsonable_encoder(value)
    except (ValueError, TypeError):
        return _text(str(value))
    return json_safe(encoded, depth)


def _json_parts(value: Any, depth: int) -> Iterator[str]:
    """The JSON text of `json_safe(value)`, piece by piece, so that a caller can stop early."""
    if isinstance(value, Mapping | list | tuple | set | frozenset) and depth >= MAX_JSON_DEPTH:
        yield json.dumps(CUT)
    elif isinstance(value, Mapping):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            yield f"{', ' if i else ''}{json.dumps(_text(str(key)))}: "
            yield from _json_parts(item, depth + 1)
        yield "}"
    elif isinstance(value, list | tuple | set | frozenset):
        yield "["
        for i, item in enumerate(value):
            yield ", " if i else ""
            yield from _json_parts(item, depth + 1)
        yield "]"
    elif isinstance(value, str):
        yield json.dumps(_text(value[: MAX_VALUE_CHARS + 1]))  # a long string is cut anyway
    else:
        yield json.dumps(json_safe(value, depth))


def echo(value: Any) -> Any:
    """The failing input a 422 shows: JSON-safe, and a JSON excerpt when long (a 422 need not echo a
    megabyte back). Only as much of `value` is walked as the excerpt needs."""
    if isinstance(value, str):
        text = _text(value[: MAX_VALUE_CHARS + 1])
        return text[:MAX_VALUE_CHARS] + "..." if len(text) > MAX_VALUE_CHARS else text
    excerpt = ""
    for part in _json_parts(value, 0):
        excerpt += part
        if len(excerpt) > MAX_VALUE_CHARS:
            return excerpt[:MAX_VALUE_CHARS] + "..."
    return json_safe(value)


def field_detail(loc: Sequence[str | int], message: str, kind: str, value: Any) -> dict[str, Any]:
    """One failing field of a 422, the same for every check: `field` is where (`query.limit`,
    `path.meter_id`, `body.records.3.energy_kwh`), `type` what failed (the check's name: a
    pydantic error type, a JSON Schema keyword), `value` the input as `echo` shows it (null when
    missing)."""
    return {
        "field": ".".join(str(part) for part in loc),
        "message": message,
        "type": kind,
        "value": echo(value),
    }


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route takes, as sent (aliases: `from`, `to`), its dependencies' included."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def refuse_unknown_parameters(request: Request) -> None:
    """A query parameter the route does not take is a 422 naming it, listing those it takes, rather
    than a filter silently ignored (`?regoin=london` answering every region); so is one given more
    than once (`?region=london&region=wales` would answer for wales alone: no parameter takes a
    list). Called by a router's dependency after the token's, so a request without one is still a
    401 first."""
    route: APIRoute = request.scope["route"]  # the routers' routes are all FastAPI's
    taken = _query_names(route.dependant)
    params = request.query_params
    unknown = sorted(set(params) - taken)
    if unknown:
        takes = ", ".join(sorted(taken)) or "none"
        message = f"{', '.join(unknown)}: not a parameter of {request.url.path} (it takes {takes})"
        details = [
            field_detail(("query", name), "not a parameter of this endpoint", "extra_forbidden", value)
            for name in unknown
            for value in params.getlist(name)[:1]
        ]
        raise ApiError(422, "invalid_parameter", message, details)
    repeated = sorted(name for name in set(params) if len(params.getlist(name)) > 1)
    if repeated:
        message = f"{', '.join(repeated)}: given more than once (each parameter takes one value)"
        details = [
            field_detail(("query", name), "given more than once", "repeated", params.getlist(name))
            for name in repeated
        ]
        raise ApiError(422, "invalid_parameter", message, details)


def check_range(
    start: Any,
    end: Any,
    names: tuple[str, str] = ("from", "to"),
    where: str = "query",
    code: str = "invalid_parameter",
) -> None:
    """`from` after `to` is a mistake, not an empty range (`from` == `to` is the empty one): 422
    naming both rather than a 200 with nothing in it. `names`: the two parameters, in `where`
    (`query`, or `body` for a JSON body's fields)."""
    if start is not None and end is not None and start > end:
        first, last = names
        message = f"{first} ({start}) is after {last} ({end})"
        details = [
            field_detail((where, first), message, "range", start),
            field_detail((where, last), message, "range", end),
        ]
        raise ApiError(422, code, message, details)


def not_one_of(value: str, allowed: Sequence[str]) -> str:
    """Why a closed set's parameter refuses `value`, the same words wherever it is checked."""
    return f"unknown value {value!r}; expected one of {', '.join(allowed)}"


def check_text(loc: Sequence[str | int], value: str | None) -> None:
    """422 `invalid_parameter` naming the parameter when `value` holds a NUL character: PostgreSQL
    text cannot hold one, so nothing stored matches it, and psycopg refuses to send it (a 500)."""
    if value is not None and "\x00" in value:
        message = "holds a NUL character (\\u0000), which no stored value has"
        detail = field_detail(loc, message, "nul_character", value)
        raise ApiError(422, "invalid_parameter", f"{loc[-1]} {message}", [detail])


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"status": status, "code": code, "message": message, "details": json_safe(details)}}
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


def openapi_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route's OpenAPI entry: these statuses answer `ErrorBody`."""
    return {s: {"model": ErrorBody, "description": _phrase(s)} for s in statuses}


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, ApiError):
        return exc.response()
    # FastAPI's and Starlette's own (404 for an unknown path, 405, ...): a string detail is the
    # message; anything else a route put in `detail` is kept as `details`.
    message = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
    details = None if isinstance(exc.detail, str) else exc.detail
    return error_response(exc.status_code, status_code_name(exc.status_code), message, details, exc.headers)


def _validation_field(err: Mapping[str, Any]) -> dict[str, Any]:
    """A FastAPI/pydantic validation error as `field_detail`. A missing field's `input` is its
    enclosing object: nothing of its own was sent, so no value. (No route has FastAPI parse its body:
    one that is not JSON is `output.read_json`'s 422.)"""
    value = None if err.get("type") == "missing" else err.get("input")
    return field_detail(tuple(err.get("loc", ())), str(err.get("msg", "")), str(err.get("type", "")), value)


def _closed_set(err: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The values a query parameter takes when FastAPI refused it for not matching a pattern that
    lists them (`format`: `^(json|csv)$`); None for any other error."""
    loc = tuple(err.get("loc", ()))
    if err.get("type") != "string_pattern_mismatch" or len(loc) != 2 or loc[0] != "query":
        return None
    match = CLOSED_SET.fullmatch(str((err.get("ctx") or {}).get("pattern", "")))
    return tuple(match.group(1).split("|")) if match else None


async def _validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's 422, its fields as `field_detail`. A query parameter outside its closed set
    (`?format=xml`) is refused as the filters' closed sets are (`datasets.parse_filter`): type
    `enum`, the message naming the parameter, the value and the values it takes, and when nothing
    else failed, code `invalid_parameter` with that message, rather than pydantic's pattern."""
    assert isinstance(exc, RequestValidationError)
    fields: list[dict[str, Any]] = []
    refused: list[str] = []
    for err in exc.errors():
        allowed = _closed_set(err)
        if allowed is None:
            fields.append(_validation_field(err))
            continue
        value = str(err.get("input"))
        reason = not_one_of(value, allowed)
        fields.append(field_detail(err["loc"], reason, "enum", value))
        refused.append(f"{err['loc'][-1]}: {reason}")
    if refused and len(refused) == len(fields):
        return error_response(422, "invalid_parameter", "; ".join(refused), fields)
    return error_response(422, "validation_error", f"{len(fields)} invalid field(s)", fields)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error; the details are in the server log")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of `app` in the common shape (call it from `create_app`)."""
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
