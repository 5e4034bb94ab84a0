"""The JSON Schemas of message contract v1 (`schemas/<source>.v1.json`), and checking a request body
against them, so the API answers 422 with the failing fields instead of landing what the decoder would
quarantine as `malformed:*`.

The schemas are the structural contract and agree with `ingestion/decode.py` record by record
(`tests/serving/test_schemas.py`): a body that passes decodes whole. Values are judged later, by the
record rules with reason codes, so a body that passes can still be quarantined or flagged. Two parts
of the decoder's reading have no standard keyword and are checked here: `date-time` is a timestamp
the decoder can read (a standard validator applies RFC 3339, which is stricter), and
`x-maxJoinedLength` bounds `status_flags` as stored (comma-joined).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator, FormatChecker, TypeChecker, ValidationError, validators
from jsonschema.protocols import Validator

from metrify_assets.contracts import CONTRACTS, contract_for
from metrify_assets.ingestion.readers.text import first_surrogate
from metrify_assets.serving.errors import MAX_JSON_DEPTH, field_detail, json_safe

# The repository's schemas/ folder (beside metrify_assets/, like dbt_project/).
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
SCHEMA_FILES: dict[str, Path] = {source: SCHEMA_DIR / f"{source}.v1.json" for source in CONTRACTS}
MAX_ERRORS = 100  # listed per request; the rest are counted
# The integers orjson writes (the API sends bodies on with it): int64 and uint64.
INT_RANGE = (-(2**63), 2**64 - 1)


@dataclass(frozen=True)
class FieldError:
    """One failing field. `path` is where in the body (`("records", 3, "energy_kwh")`; `()` is the
    whole body); `keyword` the schema keyword that failed (`required`, `type`, ...)."""

    path: tuple[str | int, ...]
    message: str
    value: object  # the failing value as parsed (None for a missing field)
    keyword: str

    @property
    def loc(self) -> str:
        """`path` as a JSON pointer without its leading `/` (`records/3/energy_kwh`)."""
        return "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in self.path)

    def as_dict(self) -> dict[str, Any]:
        """The field as a 422 lists it (the API's one shape, `errors.field_detail`)."""
        return field_detail(("body", *self.path), self.message, self.keyword, self.value)


class FieldErrors(list[FieldError]):
    """The first failing fields (record by record), one error each; `more` counts the failing fields
    not listed. Empty (falsy) when the body is valid."""

    more: int = 0

    def add(self, error: FieldError, limit: int) -> None:
        """List `error`, or count it once `limit` are listed."""
        if len(self) < limit:
            self.append(error)
        else:
            self.more += 1


def _finite_number(checker: TypeChecker, value: object) -> bool:
    """JSON has no NaN or Infinity; Python's json module reads them, so keep them out of `number`."""
    return bool(
        Draft202012Validator.TYPE_CHECKER.is_type(value, "number")
        and (not isinstance(value, float) or math.isfinite(value))
    )


def _max_joined_length(
    validator: Validator, limit: int, instance: object, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """`x-maxJoinedLength`: an array of strings is stored comma-joined, within a text field's limit."""
    if isinstance(instance, list) and all(isinstance(item, str) for item in instance):
        length = len(",".join(instance))
        if length > limit:
            yield ValidationError(f"{length} characters joined with ',' (at most {limit})")


_ContractValidator = validators.extend(
    Draft202012Validator,
    validators={"x-maxJoinedLength": _max_joined_length},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("number", _finite_number),
)
_FORMATS = FormatChecker(formats=())


# With more than 6 fractional digits pandas reads nanoseconds, whose range is 1677..2262 (here to the us).
_NANOSECONDS = re.compile(r"\.[0-9]{7}")
_NANOSECOND_RANGE = (
    datetime(1677, 9, 21, 0, 12, 43, 145225, UTC),
    datetime(2262, 4, 11, 23, 47, 16, 854775, UTC),
)


@_FORMATS.checks("date-time")
def _is_instant(value: object) -> bool:
    """A timestamp the decoder reads. It parses with pandas' ISO 8601 reader; on the pattern's strings
    (whose offsets are real ones: minutes past 59 or +14:30 fail the pattern, as the decoder's
    `bad_offset`) `datetime.fromisoformat` agrees but for the nanosecond range, checked here too
    (tests/serving/test_schemas.py compares the two)."""
    if not isinstance(value, str):
        return True
    text = value.removesuffix("\n")  # `$` in the pattern lets one newline through
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        return False
    low, high = _NANOSECOND_RANGE
    return not _NANOSECONDS.search(value) or (instant.tzinfo is not None and low <= instant <= high)


@cache
def schema(source: str) -> dict[str, Any]:
    """The JSON Schema of `source`'s messages."""
    contract_for(source)  # raises on an unknown source
    loaded: dict[str, Any] = orjson.loads(SCHEMA_FILES[source].read_bytes())
    return loaded


@cache
def _validator(source: str) -> Validator:
    loaded = schema(source)
    _ContractValidator.check_schema(loaded)
    return _ContractValidator(loaded, format_checker=_FORMATS)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, float) and not math.isfinite(value):
        return str(json_safe(value))  # NaN, Infinity, -Infinity: as the body wrote them
    names = {int: "number", float: "number", str: "string", list: "array", dict: "object"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), type(value).__name__)


def _field_error(error: ValidationError) -> FieldError:
    path = tuple(error.absolute_path)
    keyword = str(error.validator)
    value: object = error.instance
    required = error.validator_value if keyword == "required" else None
    if isinstance(required, list) and isinstance(value, dict):  # reported on the object: name the member
        missing = next(p for p in required if p not in value and error.message.startswith(repr(p)))
        return FieldError((*path, missing), "required field missing", None, keyword)
    if keyword == "type":
        expected = (
            error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        )
        message = f"expected {' or '.join(expected)}, got {_json_type(value)}"
    elif keyword in ("pattern", "format") and isinstance(error.schema, Mapping) and "title" in error.schema:
        message = f"not {error.schema['title']}"
    elif keyword == "maxLength":
        message = f"longer than {error.validator_value} characters"
    elif keyword == "minItems":
        message = f"at least {error.validator_value} record{'s' if error.validator_value != 1 else ''}"
    else:
        message = error.message
    return FieldError(path, message, value, keyword)


def validate(source: str, body: Any, limit: int = MAX_ERRORS) -> FieldErrors:
    """The failing fields of `body` (one record or `{"records": [...]}`, as a JSON parser gives it)
    against `source`'s schema: at most `limit` listed, the first error of each field, the rest
    counted in `more`."""
    errors = FieldErrors()
    seen: set[str] = set()
    for error in _validator(source).iter_errors(body):
        found = _field_error(error)
        if found.loc in seen:
            continue
        seen.add(found.loc)
        errors.add(found, limit)
    return errors


def _unsendable_value(value: object) -> tuple[str, str] | None:
    """(message, check) when `value`, not a container, cannot be written as strict JSON."""
    if isinstance(value, str) and first_surrogate(value):
        return "holds a lone surrogate (\\ud800-\\udfff), which UTF-8 cannot carry", "unicode"
    if isinstance(value, int) and not isinstance(value, bool) and not INT_RANGE[0] <= value <= INT_RANGE[1]:
        return "an integer beyond 64 bits, which the pipeline's JSON parser cannot read", "int_range"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{json_safe(value)} is not JSON", "finite"
    return None


def unsendable(body: Any, limit: int = MAX_ERRORS) -> FieldErrors:
    """What in a body that passed its schema a message cannot carry: the pipeline's decoder (orjson)
    would quarantine it whole as `malformed:invalid_json`, or the API could not write it. Checked
    everywhere, fields the schema does not name included: nesting deeper than `MAX_JSON_DEPTH`,
    lone surrogates in strings and keys, integers beyond 64 bits, NaN and the infinities. Walks the
    body without recursion (a body may nest as deep as Python's parser reads)."""
    errors = FieldErrors()
    stack: list[tuple[tuple[str | int, ...], object]] = [((), body)]
    while stack:
        path, value = stack.pop()
        found: tuple[str, str] | None = None
        children: list[tuple[str | int, object]] = []
        if isinstance(value, dict | list) and len(path) >= MAX_JSON_DEPTH:
            found = f"nested deeper than {MAX_JSON_DEPTH} levels", "maxDepth"
        elif isinstance(value, dict):
            for key, item in value.items():
                if first_surrogate(key):
                    problem = "the key holds a lone surrogate (\\ud800-\\udfff), which UTF-8 cannot carry"
                    errors.add(FieldError((*path, key), problem, key, "unicode"), limit)
                children.append((key, item))
        elif isinstance(value, list):
            children.extend(enumerate(value))
        else:
            found = _unsendable_value(value)
        if found is not None:
            errors.add(FieldError(path, found[0], value, found[1]), limit)
        stack.extend(((*path, name), item) for name, item in reversed(children))
    return errors
