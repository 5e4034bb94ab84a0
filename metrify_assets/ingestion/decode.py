"""Decode contract-v1 messages into typed records, in application code (no Kafka deserializer).

A message is one record object or `{"records": [...]}`. Every record gets a `record_index` (its
position in the batch); a message that cannot be parsed counts as one record. Records that fail the
contract (invalid JSON, not an object, missing required field, wrong type, timestamp without offset)
come back as `Malformed` with a reason, so input = decoded + malformed, always. A message of more than
`MAX_MESSAGE_RECORDS` records is one malformed record too (`malformed:too_many_records`), its
records never decoded. That holds for every
shape a transport can deliver: Kafka's null value (a tombstone), empty values, binary junk.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import overload

import numpy as np
import orjson
import pandas as pd

from metrify_assets.contracts import SourceContract
from metrify_assets.ingestion.limits import MAX_MESSAGE_RECORDS

# The timestamp grammar, an ISO 8601 date-time and its UTC offset: public for `metrify ingest`'s readers,
# which read what the decoder takes, and for the schemas' `pattern` test.
ISO_DATE_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
ISO_OFFSET = r"(Z|[+-][0-9]{2}:?[0-9]{2})"
ISO_WITH_OFFSET = ISO_DATE_TIME + ISO_OFFSET + "$"
_ISO_MAYBE_OFFSET = ISO_DATE_TIME + ISO_OFFSET + "?$"
# Text fields are identifiers and codes: longer is junk (and would not fit a B-tree index entry).
MAX_TEXT_LENGTH = 256
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
        self, messages: Sequence[Message], items: list[list[object] | None], starts: list[int]
    ) -> None:
        """Message i holds one record (`items[i]` None: the message is its text) or the records
        `items[i]`; its first record_index is `starts[i]`."""
        self._messages = messages
        self._items = items
        self._starts = starts
        self._count = starts[-1] + (1 if items[-1] is None else len(items[-1])) if starts else 0

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
        if items is not None:
            try:
                return json.dumps(items[index - self._starts[message]])
            except RecursionError:  # nested deeper than json can render (orjson parses 1023 levels)
                return printable(self._messages[message])  # the whole message, then
        return printable(self._messages[message])


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


def _split_messages(
    messages: Sequence[Message], versions: Sequence[int]
) -> tuple[list[dict[str, object]], list[int], list[int], RecordTexts, list[Malformed], list[int]]:
    """Flatten messages into record objects, remembering index, version, payload and message of each.

    orjson parses (about 3x json's speed); it is strict where json is lenient, so invalid UTF-8, NaN
    and integers beyond 64 bits are invalid JSON here, which the contract would reject anyway. The
    loop does as little as it can per message (a batch is tens of thousands of them): indexes and
    versions are spread to records with numpy afterwards, and record texts are kept per message.
    """
    objs: list[dict[str, object]] = []
    items_of: list[list[object] | None] = []  # per message: None when the message is one record
    starts: list[int] = []  # per message: its first record_index
    # (record_index, reason, whether the record has a text) of the records that are not objects
    failures: list[tuple[int, str, bool]] = []
    first = 0
    for message in messages:
        starts.append(first)
        if not message:
            items_of.append(None)
            failures.append(
                (first, "malformed:null_value" if message is None else "malformed:empty_message", False)
            )
            first += 1
            continue
        try:
            parsed = orjson.loads(message)
        except orjson.JSONDecodeError as err:
            # Reason lists are comma-joined: keep the parser's detail free of commas.
            detail = f"{err.msg} at char {err.pos}".replace(",", ";")
            items_of.append(None)
            failures.append((first, f"malformed:invalid_json ({detail})", True))
            first += 1
            continue
        if type(parsed) is not dict or "records" not in parsed:
            items_of.append(None)
            if type(parsed) is dict:
                objs.append(parsed)
            else:
                failures.append((first, "malformed:not_an_object", True))
            first += 1
            continue
        items = parsed["records"]
        if type(items) is not list:
            items_of.append(None)
            failures.append((first, "malformed:records_not_a_list", True))
            first += 1
            continue
        if len(items) > MAX_MESSAGE_RECORDS:  # the whole message is one dead letter, its text verbatim
            items_of.append(None)
            failures.append(
                (first, f"malformed:too_many_records ({len(items)}; at most {MAX_MESSAGE_RECORDS})", True)
            )
            first += 1
            continue
        items_of.append(items)
        for offset, item in enumerate(items):
            if type(item) is dict:
                objs.append(item)
            else:
                failures.append((first + offset, "malformed:not_an_object", True))
        first += len(items)
    texts = RecordTexts(messages, items_of, starts)
    counts = np.diff(np.append(np.asarray(starts, dtype=np.int64), first))
    message_index = np.repeat(np.arange(len(messages), dtype=np.int64), counts)
    is_object = np.ones(first, dtype=bool)
    is_object[[i for i, _, _ in failures]] = False
    idx = np.flatnonzero(is_object)
    vers = np.asarray(versions, dtype=np.int64)[message_index[idx]] if len(idx) else idx
    bad = [Malformed(i, texts[i] if has_text else "", why) for i, why, has_text in failures]
    return objs, idx.tolist(), vers.tolist(), texts, bad, message_index.tolist()


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
    objs, idx, vers, payloads, bad, message_index = _split_messages(messages, versions)
    frame = (
        pd.DataFrame.from_records(objs, columns=contract.columns)
        if objs
        else pd.DataFrame(columns=contract.columns)
    )
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
            # Not an ISO date-time at all ("not-a-date") is a bad timestamp; one that only lacks its
            # offset is ambiguous local time, which has its own reason.
            fail(
                present & is_str & ~text.str.match(_ISO_MAYBE_OFFSET), f"malformed:bad_timestamp:{field.name}"
            )
            fail(
                present & is_str & ~text.str.match(ISO_WITH_OFFSET),
                f"malformed:timestamp_without_offset:{field.name}",
            )
        elif field.type == "str_list":
            joined, is_list = _joined_lists(col)
            fail(present & ~is_list, f"malformed:bad_type:{field.name}")
            fail(present & is_list & ~storable_text(joined.fillna("")), f"malformed:bad_text:{field.name}")
            frame[field.name] = joined  # what `_typed` stores
    for pos in np.flatnonzero(~undecided):
        bad.append(Malformed(idx[pos], payloads[idx[pos]], str(reason[pos])))
    bad.sort(key=lambda m: m.record_index)

    keep = undecided
    ok = frame.iloc[np.flatnonzero(keep)].copy()
    ok.insert(0, "record_index", np.asarray(idx, dtype=np.int64)[keep])
    ok["record_version"] = np.asarray(vers, dtype=np.int64)[keep]
    records = _typed(contract, ok)
    # Timestamps that match the ISO pattern but are impossible (month 13) are malformed too.
    bad_ts = records[contract.time_field].isna()
    if bad_ts.any():
        for pos in np.flatnonzero(bad_ts.to_numpy()):
            i = int(records["record_index"].iloc[pos])
            bad.append(Malformed(i, payloads[i], f"malformed:bad_timestamp:{contract.time_field}"))
        bad.sort(key=lambda m: m.record_index)
        records = records[~bad_ts].reset_index(drop=True)
    return DecodedBatch(
        records=records.reset_index(drop=True),
        malformed=bad,
        payloads=payloads,
        message_index=message_index,
    )


def _typed(contract: SourceContract, frame: pd.DataFrame) -> pd.DataFrame:
    """Cast the contract columns to their storage dtypes."""
    out = frame.copy()
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
