"""Decode contract-v1 messages into typed records, in application code (no Kafka deserializer).

A message is one record object or `{"records": [...]}`. Every record gets a `record_index` (its
position in the batch); a message that cannot be parsed counts as one record. Records that fail the
contract (invalid JSON, not an object, missing required field, wrong type, timestamp without offset)
come back as `Malformed` with a reason, so input = decoded + malformed, always. A message of more than
`MAX_MESSAGE_RECORDS` records is one malformed record too (`malformed:too_many_records`), its
records never decoded. That holds for every
shape a transport can deliver: Kafka's null value (a tombstone), empty values, binary junk.

Three paths give the same result. The usual message (known fields only, every value of its contract
type, texts in plain ASCII) is decoded by native code straight into columns; msgspec decodes any
other whose values all have their contract types into typed values; the rest (a wrong type, a null
in a list, invalid JSON) is parsed by orjson and checked field by field, which names what is wrong.
The field checks run on all three: a missing field, an overlong text or a malformed timestamp is
not a type error.
"""

from __future__ import annotations

import gc
import json
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import cache
from operator import attrgetter
from typing import Any, overload

import msgspec
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
from metrify_native import decode_messages

from metrify_assets.contracts import MAX_TEXT_LENGTH, FieldType, SourceContract
from metrify_assets.ingestion.limits import MAX_MESSAGE_RECORDS

# The timestamp grammar, an ISO 8601 date-time and its UTC offset: public for `metrify ingest`'s readers,
# which read what the decoder takes, and for the schemas' `pattern` test. The offset is one a place
# has: -12:00 to +14:00 (Baker Island to the Line Islands), its minutes 00 to 59.
ISO_DATE_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
ISO_OFFSET = r"(Z|\+((0[0-9]|1[0-3]):?[0-5][0-9]|14:?00)|-((0[0-9]|1[01]):?[0-5][0-9]|12:?00))"
ISO_WITH_OFFSET = ISO_DATE_TIME + ISO_OFFSET + "$"
# An hour-only offset (`+01`, as PostgreSQL writes one) in the same range: `metrify ingest` reads it.
ISO_HOUR_OFFSET = r"(\+(0[0-9]|1[0-4])|-(0[0-9]|1[0-2]))"
# An offset's shape, whatever its value: what tells a timestamp with an offset no place has (+14:30,
# +99:59) from one without an offset, and both from text that is no date-time.
_OFFSET_SHAPE = r"(Z|[+-][0-9]{2}:?[0-9]{2})"
_ISO_ANY_OFFSET = ISO_DATE_TIME + _OFFSET_SHAPE + "$"
_ISO_MAYBE_OFFSET = ISO_DATE_TIME + _OFFSET_SHAPE + "?$"
# Integer fields are stored as PostgreSQL `integer`.
INT_RANGE = (-(2**31), 2**31 - 1)
Message = str | bytes | None  # None: Kafka's null value (a tombstone)


@dataclass(frozen=True)
class Malformed:
    record_index: int
    payload: str
    reason: str


class RecordTexts(Sequence[str]):
    """The JSON text of every record, by record_index, rendered on access.

    Only quarantined records need their text (a few per batch), so texts are kept per message: the
    message itself for a single-record message, its parsed records (serialised when asked for) for
    a multi-record one. Rendering every record up front was a fifth of decoding.
    """

    def __init__(
        self, messages: Sequence[Message], items: list[list[object] | int | None], starts: list[int]
    ) -> None:
        """Message i holds one record (`items[i]` None: the message is its text), the records
        `items[i]`, or `items[i]` records not yet parsed (an int: native code kept no objects, so a
        text asked for parses its message once); its first record_index is `starts[i]`."""
        self._messages = messages
        self._items = items
        self._starts = starts
        self._count = starts[-1] + _record_count(items[-1]) if starts else 0

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(index)
        message = bisect_right(self._starts, index) - 1
        items = self._items[message]
        if type(items) is int:  # the records of a message native code decoded: parsed once, here
            items = self._items[message] = orjson.loads(self._messages[message] or b"")["records"]
        if isinstance(items, list):
            try:
                return json.dumps(items[index - self._starts[message]])
            except RecursionError:  # nested deeper than json can render (orjson parses 1023 levels)
                return printable(self._messages[message])  # the whole message, then
        return printable(self._messages[message])


def _record_count(items: list[object] | int | None) -> int:
    return 1 if items is None else items if isinstance(items, int) else len(items)


def printable(message: Message) -> str:
    """A message as text PostgreSQL can store: invalid UTF-8 replaced, NUL characters escaped."""
    if message is None:
        return ""
    text = message.decode("utf-8", errors="replace") if isinstance(message, bytes) else message
    return text.replace("\x00", "\\u0000") if "\x00" in text else text


@dataclass(frozen=True)
class DecodedBatch:
    """Typed records (contract columns + `record_index`, `record_version`) and the malformed rest."""

    records: pd.DataFrame
    malformed: list[Malformed]
    payloads: RecordTexts  # the JSON text of every record, by record_index (for quarantine)
    # The position of each record's message in the batch, by record_index: maps a quarantined record
    # back to its Kafka offset for the dead-letter topic.
    message_index: list[int] = dataclass_field(default_factory=list)

    @property
    def records_in(self) -> int:
        return len(self.payloads)


# The Python type each contract type decodes to on the fast path; every field may be absent or null
# there (the field checks name a missing required field, as on the other path).
_FAST_TYPES: dict[FieldType, Any] = {
    "str": str | None,
    "timestamp": str | None,
    "float": float | None,
    "int": int | None,
    "str_list": list[str] | None,
}
# What msgspec raises for a message the fast path does not take: a type it does not expect, invalid
# JSON, nesting deeper than Python recurses.
_NOT_FAST = (msgspec.ValidationError, msgspec.DecodeError, RecursionError)


@cache
def _fast_decoder(contract: SourceContract) -> msgspec.json.Decoder[Any]:
    """A decoder of one record or `{"records": [...]}` of them, all values of their contract types.

    Strict, as the field checks are: true is not a number, 15.5 not an integer (nor 15.0, which the
    other path takes as 15), a number not a text. Unknown fields are skipped, as the frame leaves
    them out. A message carrying `records` has `records` set (a list of records) and is a batch.
    """
    fields = [(f.name, _FAST_TYPES[f.type], None) for f in contract.fields]
    record = msgspec.defstruct(f"{contract.source}_record", fields)
    message = msgspec.defstruct(
        f"{contract.source}_message",
        [("records", list[record] | msgspec.UnsetType, msgspec.UNSET), *fields],  # type: ignore[valid-type]
    )
    return msgspec.json.Decoder(message)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a batch's records are built. Parsed JSON holds no
    reference cycles (reference counting frees all of it), but every list or record made counts
    toward a collection, and collections kept walking the batch built so far: a third of decoding's
    time for 100,000 messages. A collector someone else turned off stays off."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class _ByDecoder:
    """The records of the messages native code gave back, as msgspec and orjson decoded them."""

    fast: list[Any] = dataclass_field(default_factory=list)  # msgspec's typed records
    fast_at: list[int] = dataclass_field(default_factory=list)  # and the record_index of each
    objs: list[dict[str, object]] = dataclass_field(default_factory=list)  # orjson's objects
    objs_at: list[int] = dataclass_field(default_factory=list)
    # (record_index, reason, whether the record has a text) of the records that are not objects
    failures: list[tuple[int, str, bool]] = dataclass_field(default_factory=list)


@dataclass(frozen=True)
class _Part:
    """One decoder's records: a frame of the contract's columns, the record_index and version of each
    row (record order), and whether native code decoded them (text lists already joined)."""

    frame: pd.DataFrame
    idx: np.ndarray
    versions: np.ndarray
    native: bool


def _split_messages(
    contract: SourceContract, messages: Sequence[Message], versions: Sequence[int]
) -> tuple[list[_Part], RecordTexts, list[Malformed], list[int]]:
    """The records of `messages` as one frame of the contract's columns per decoder that took any,
    the record texts, the records that are not objects, and the message of every record.

    Native code decodes the usual message straight into columns (`metrify_native.decode_messages`)
    and gives back any other; of those, msgspec takes the ones whose values all have their contract
    types, and orjson (about 3x json's speed, and strict where json is lenient: invalid UTF-8 and NaN
    are invalid JSON here) parses the rest. Versions are spread to records with numpy afterwards,
    and record texts are kept per message.
    """
    raw_counts, raw_singles, rows, columns = decode_messages(
        messages, _native_names(contract), _native_kinds(contract), MAX_MESSAGE_RECORDS
    )
    counts = np.frombuffer(raw_counts, dtype=np.int64).copy()  # records per message, -1: given back
    native = counts >= 0
    decoded = _ByDecoder()
    # per message: None when it is one record (its text is the message), else its number of records
    shapes = counts.astype(object)
    shapes[np.frombuffer(raw_singles, dtype=np.bool_)] = None
    items_of: list[list[object] | int | None] = shapes.tolist()
    given_back = np.flatnonzero(~native)
    if len(given_back):
        before = np.concatenate(([0], np.cumsum(np.where(native, counts, 0))))  # native records before each
        taken = 0  # records of the given-back messages so far
        for m in given_back.tolist():
            items, count = _slow_message(contract, messages[m], int(before[m]) + taken, decoded)
            items_of[m] = items
            counts[m] = count
            taken += count
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])) if len(counts) else counts
    texts = RecordTexts(messages, items_of, starts.tolist())
    message_index = np.repeat(np.arange(len(messages), dtype=np.int64), counts)
    version_of = np.asarray(versions, dtype=np.int64)
    parts: list[_Part] = []
    if rows:
        at = np.flatnonzero(native[message_index])
        frame = pd.DataFrame(
            {
                f.name: _native_column(f.type, rows, col)
                for f, col in zip(contract.fields, columns, strict=True)
            }
        )
        parts.append(_Part(frame, at, version_of[message_index[at]], native=True))
    for frame, at in _given_back_frames(contract, decoded):
        parts.append(_Part(frame, at, version_of[message_index[at]], native=False))
    bad = [Malformed(i, texts[i] if has_text else "", why) for i, why, has_text in decoded.failures]
    return parts, texts, bad, message_index.tolist()


# The kind native decoding reads each contract type as (`metrify_native.decode_messages`), and a
# required text list's: native code gives back its empty list, which is present (the field checks
# tell it from a missing one) though stored as null.
_NATIVE_KINDS: dict[FieldType, int] = {"str": 0, "timestamp": 0, "float": 1, "int": 2, "str_list": 3}
_NATIVE_REQUIRED_TEXT_LIST = 4


@cache
def _native_names(contract: SourceContract) -> tuple[str, ...]:
    return tuple(f.name for f in contract.fields)


@cache
def _native_kinds(contract: SourceContract) -> tuple[int, ...]:
    return tuple(
        _NATIVE_REQUIRED_TEXT_LIST if f.type == "str_list" and f.required else _NATIVE_KINDS[f.type]
        for f in contract.fields
    )


def _native_column(kind: FieldType, rows: int, column: bytearray | tuple[bytes, bytes, bytes]) -> pd.Series:
    """A natively decoded column, typed as `_fast_column` types the same values. Integers come as
    doubles (exact: native code takes at most 15 digits), as pandas types integers beside a null."""
    if isinstance(column, bytearray):
        return pd.Series(np.frombuffer(column, dtype=np.float64))
    validity, offsets, data = (pa.py_buffer(b) for b in column)
    return _text_series(pa.Array.from_buffers(pa.string(), rows, [validity, offsets, data]))


def _slow_message(
    contract: SourceContract, message: Message, first: int, decoded: _ByDecoder
) -> tuple[list[object] | int | None, int]:
    """A message native code gave back, its records added to `decoded` from record_index `first`:
    what `RecordTexts` keeps of it, and its number of records.

    orjson parses it first: msgspec skips an unknown key's value unread (invalid UTF-8, a number
    beyond a double), and a message orjson refuses would leave its records without a text to
    quarantine. Given-back messages are few, so the second parse costs little.
    """
    if not message:
        decoded.failures.append(
            (first, "malformed:null_value" if message is None else "malformed:empty_message", False)
        )
        return None, 1
    try:
        parsed = orjson.loads(message)
    except orjson.JSONDecodeError as err:
        # Reason lists are comma-joined: keep the parser's detail free of commas.
        detail = f"{err.msg} at char {err.pos}".replace(",", ";")
        decoded.failures.append((first, f"malformed:invalid_json ({detail})", True))
        return None, 1
    try:
        typed = _fast_decoder(contract).decode(message)
    except _NOT_FAST:  # not the usual message: the checked path below names what is wrong
        typed = None
    if typed is not None:
        batch = typed.records
        if batch is msgspec.UNSET:
            decoded.fast.append(typed)
            decoded.fast_at.append(first)
            return None, 1
        if len(batch) <= MAX_MESSAGE_RECORDS:
            decoded.fast.extend(batch)
            decoded.fast_at.extend(range(first, first + len(batch)))
            return parsed["records"], len(batch)
    if type(parsed) is not dict or "records" not in parsed:
        if type(parsed) is dict:
            decoded.objs.append(parsed)
            decoded.objs_at.append(first)
        else:
            decoded.failures.append((first, "malformed:not_an_object", True))
        return None, 1
    items = parsed["records"]
    if type(items) is not list:
        decoded.failures.append((first, "malformed:records_not_a_list", True))
        return None, 1
    if len(items) > MAX_MESSAGE_RECORDS:  # the whole message is one dead letter, its text verbatim
        decoded.failures.append(
            (first, f"malformed:too_many_records ({len(items)}; at most {MAX_MESSAGE_RECORDS})", True)
        )
        return None, 1
    for offset, item in enumerate(items):
        if type(item) is dict:
            decoded.objs.append(item)
            decoded.objs_at.append(first + offset)
        else:
            decoded.failures.append((first + offset, "malformed:not_an_object", True))
    return items, len(items)


# The fast path's texts and floats become Arrow arrays in one call each (their values are of the
# type already, or None); pandas inferring a list's type value by value took twice as long.
_ARROW_TYPES: dict[FieldType, pa.DataType] = {
    "str": pa.string(),
    "timestamp": pa.string(),
    "float": pa.float64(),
}
_PANDAS_TEXT = pd.StringDtype(na_value=np.nan)  # the dtype pandas infers for a list of texts


def _fast_column(kind: FieldType, values: list[Any]) -> pd.Series | list[Any]:
    """One fast-path column, typed as pandas would type the same values (integers stay with pandas:
    msgspec keeps one beyond 64 bits, which the field checks name as out of range)."""
    arrow_type = _ARROW_TYPES.get(kind)
    if arrow_type is None:
        return values
    array = pa.array(values, type=arrow_type)
    if kind == "float":
        return pd.Series(array.to_numpy(zero_copy_only=False))
    return _text_series(array)


def _text_series(array: pa.Array) -> pd.Series:
    """An Arrow text array as the Series pandas makes of a list of texts (`_PANDAS_TEXT`)."""
    return pd.Series(array.to_pandas(types_mapper={pa.string(): _PANDAS_TEXT}.get))


def _given_back_frames(
    contract: SourceContract, decoded: _ByDecoder
) -> list[tuple[pd.DataFrame, np.ndarray]]:
    """msgspec's records and orjson's, each as a frame of the contract's columns with the
    record_index of each row. Each decoder's frame is checked and typed on its own: a few records
    with a wrong value would otherwise turn a column of the whole batch into Python objects."""
    frames = []
    if decoded.fast:
        fast = decoded.fast
        frame = pd.DataFrame(
            {f.name: _fast_column(f.type, list(map(attrgetter(f.name), fast))) for f in contract.fields}
        )
        frames.append((frame, np.asarray(decoded.fast_at, dtype=np.int64)))
    if decoded.objs:
        frame = pd.DataFrame.from_records(decoded.objs, columns=contract.columns)
        frames.append((frame, np.asarray(decoded.objs_at, dtype=np.int64)))
    return frames


def storable_text(values: pd.Series) -> pd.Series:
    """Text PostgreSQL can store and index: no NUL character, at most MAX_TEXT_LENGTH characters."""
    text = values.astype(str)
    return (text.str.len() <= MAX_TEXT_LENGTH) & ~text.str.contains("\x00", regex=False)


def of_types(values: pd.Series, types: list[type]) -> pd.Series:
    """Whether each value is of one of `types`. A column pandas typed as text or numbers holds
    nothing else (a bool or a number among texts would have left it `object`), so the usual,
    clean batch skips the per-value look, which was most of decoding's field checks."""
    if (types == [str] and isinstance(values.dtype, pd.StringDtype)) or (
        types == [int, float] and values.dtype.kind in "iuf"
    ):
        return values.notna()
    # `map(type)` runs at C speed, unlike an isinstance lambda.
    return values.map(type, na_action="ignore").isin(types)


def _joined_lists(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Each list of texts comma-joined (None for an empty list, stored as NULL), and whether each
    value is such a list: one pass, where a type check, a length check and the join each walked the
    column before."""
    out: list[str | None] = [None] * len(values)
    is_list = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values.to_numpy(dtype=object)):
        if type(value) is list:
            try:
                text = ",".join(value)  # TypeError unless every item is a text
            except TypeError:
                continue
            is_list[i] = True
            out[i] = text if value else None
    return pd.Series(out, index=values.index, dtype=object), is_list


def decode(contract: SourceContract, messages: Sequence[Message], versions: Sequence[int]) -> DecodedBatch:
    """Decode `messages` (each with its record version) against `contract`."""
    with _cyclic_gc_paused():
        parts, payloads, bad, message_index = _split_messages(contract, messages, versions)
    if not parts:  # no record: the contract's columns, typed, without rows
        none = np.asarray([], dtype=np.int64)
        parts = [_Part(pd.DataFrame(columns=contract.columns), none, none, native=False)]
    typed = [_checked(contract, part, payloads, bad) for part in parts]
    records = typed[0] if len(typed) == 1 else pd.concat(typed, ignore_index=True)
    if len(typed) > 1:  # the decoders' records interleave: back to record order
        records = records.iloc[np.argsort(records["record_index"].to_numpy(), kind="stable")]
    bad.sort(key=lambda m: m.record_index)
    return DecodedBatch(
        records=records.reset_index(drop=True),
        malformed=bad,
        payloads=payloads,
        message_index=message_index,
    )


def _checked(
    contract: SourceContract, part: _Part, payloads: RecordTexts, bad: list[Malformed]
) -> pd.DataFrame:
    """One decoder's records checked field by field and typed: those kept, in record order; those
    refused are appended to `bad` with their first reason."""
    frame, idx = part.frame, part.idx
    # The first reason of each record, kept as numpy arrays: a check per field marks only records
    # still undecided (comparing a text Series per check was a tenth of decoding).
    reason = np.full(len(frame), "", dtype=object)
    undecided = np.ones(len(frame), dtype=bool)

    def fail(mask: pd.Series, why: str) -> None:
        hit = mask.to_numpy(dtype=bool) & undecided
        reason[hit] = why
        undecided[hit] = False

    for field in contract.fields:
        col = frame[field.name]
        present = col.notna()
        if field.required:
            fail(~present, f"malformed:missing_field:{field.name}")
        if not present.any():  # an optional field no record of the batch carries
            continue
        if field.type == "str":
            is_str = of_types(col, [str])
            fail(present & ~is_str, f"malformed:bad_type:{field.name}")
            fail(present & is_str & ~storable_text(col.where(is_str, "")), f"malformed:bad_text:{field.name}")
        elif field.type in ("float", "int"):
            valid = of_types(col, [int, float])  # bool is its own type, so True is not a number
            if field.type == "int":
                number = pd.to_numeric(col.where(valid), errors="coerce").astype("float64")
                valid &= number % 1 == 0
                fail(present & ~valid, f"malformed:bad_type:{field.name}")
                low, high = INT_RANGE
                fail(present & ~number.between(low, high), f"malformed:out_of_range:{field.name}")
            fail(present & ~valid, f"malformed:bad_type:{field.name}")
        elif field.type == "timestamp":
            is_str = of_types(col, [str])
            fail(present & ~is_str, f"malformed:bad_type:{field.name}")
            text = col.where(is_str, "").astype(str)
            # One pass over the column (the hot path of a drain): a date-time with an offset a place
            # has, as nearly every timestamp is. Only the values that fail are told apart, on those
            # alone: no ISO date-time at all ("not-a-date") is a bad timestamp; one that only lacks
            # its offset is ambiguous local time; one whose offset no place has (+14:30) a bad offset.
            odd = present & is_str & ~text.str.match(ISO_WITH_OFFSET)
            if odd.any():
                odd_text = text[odd]
                for shape, why in (
                    (_ISO_MAYBE_OFFSET, "bad_timestamp"),
                    (_ISO_ANY_OFFSET, "timestamp_without_offset"),
                ):
                    fits = odd_text.str.match(shape).reindex(text.index, fill_value=True)
                    fail(odd & ~fits, f"malformed:{why}:{field.name}")
                fail(odd, f"malformed:bad_offset:{field.name}")
        elif field.type == "str_list":
            joined, is_list = (col, np.ones(len(col), dtype=bool)) if part.native else _joined_lists(col)
            fail(present & ~is_list, f"malformed:bad_type:{field.name}")
            fail(present & is_list & ~storable_text(joined.fillna("")), f"malformed:bad_text:{field.name}")
            frame[field.name] = joined  # what `_typed` stores
    for pos in np.flatnonzero(~undecided).tolist():
        bad.append(Malformed(int(idx[pos]), payloads[int(idx[pos])], str(reason[pos])))

    keep = undecided
    ok = frame if keep.all() else frame.iloc[np.flatnonzero(keep)]  # `frame` is this call's own
    ok.insert(0, "record_index", idx[keep])
    ok["record_version"] = part.versions[keep]
    records = _typed(contract, ok)
    # Timestamps that match the ISO pattern but are impossible (month 13) are malformed too.
    bad_ts = records[contract.time_field].isna()
    if bad_ts.any():
        for row in np.flatnonzero(bad_ts.to_numpy()):
            i = int(records["record_index"].iloc[row])
            bad.append(Malformed(i, payloads[i], f"malformed:bad_timestamp:{contract.time_field}"))
        records = records[~bad_ts]
    return records


def _typed(contract: SourceContract, frame: pd.DataFrame) -> pd.DataFrame:
    """Cast the contract columns to their storage dtypes (in place: the frame is `_checked`'s own)."""
    out = frame
    for field in contract.fields:
        col = out[field.name]
        if field.type == "str":
            out[field.name] = col.astype("string")
        elif field.type == "float":
            out[field.name] = pd.to_numeric(col, errors="coerce").astype("float64")
        elif field.type == "int":
            out[field.name] = pd.to_numeric(col, errors="coerce").astype("Int64")
        elif field.type == "timestamp":
            # As objects: a column pandas inferred as bool or numbers (its text records were malformed
            # and left out) would otherwise parse to naive times and fail the UTC cast.
            text = col if col.dtype == object else col.astype(object)
            out[field.name] = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce").astype(
                "datetime64[us, UTC]"
            )
        elif field.type == "str_list":  # already joined by `decode`
            out[field.name] = col.astype("string")
    return out
