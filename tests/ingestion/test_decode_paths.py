"""Decoding's three paths give the same batch: every message through native code where it can go
(msgspec and orjson taking what it gives back), or through msgspec's fast path where it can go
(native code turned off), against every message through orjson and the field checks (both turned
off).

The messages are the simulator's, for all three sources, and thousands of mutations of them: each
kind of wrong value, a null or missing field, escapes, duplicate keys, numbers at the edges of what
JSON and 64 bits hold, JSON's whitespace, bytes flipped, broken JSON, and batches holding any of
these.
"""

from __future__ import annotations

import json
import random
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pytest

from metrify_assets.contracts import CONTRACTS, Field, SourceContract
from metrify_assets.ingestion import decode as decoding
from metrify_assets.ingestion.decode import DecodedBatch, Message, decode
from metrify_assets.simulation import SimulationConfig, simulate

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -0.0,
    15,
    15.0,
    15.5,
    -3,
    2**31,
    2**63,
    -(2**63) - 1,
    10**30,
    1e308,
    5e-324,
    "",
    "15",
    "x" * 300,
    "nul\x00inside",
    "ünïcødé ☃",
    "2026-03-29T01:30:00+01:00",
    "2026-03-29T01:30:00",
    "2026-13-40T00:00:00Z",
    [],
    ["power_fail"],
    ["a", None],
    ["a", 1],
    {},
    {"nested": [1, {"deep": True}]},
]
# A meter reading with the required fields only.
READING: dict[str, Any] = {
    "meter_id": "M1",
    "reading_start": "2026-01-01T00:00:00Z",
    "interval_minutes": 15,
    "energy_kwh": 0.5,
}
# Raw JSON number texts json.dumps cannot write: exponents, signed zero, out-of-range values.
ODD_NUMBER_TEXTS = [
    "1E2",
    "-0",
    "1e400",
    "-1e400",
    "0.1000000000000000055511151231257827",
    "4.9e-325",
    "1.5e1",
]


def _mutate(record: dict[str, Any], contract: SourceContract, rng: random.Random) -> str:
    """One record's JSON text with one to three things done to it."""
    rec = dict(record)
    names = contract.columns
    raw_number: tuple[str, str] | None = None
    for _ in range(rng.randint(1, 3)):
        name = rng.choice(names)
        kind = rng.randrange(6)
        if kind == 0:
            rec.pop(name, None)
        elif kind in (1, 2):
            rec[name] = rng.choice(ODD_VALUES)
        elif kind == 3:
            rec[f"extra_{rng.randrange(3)}"] = rng.choice(ODD_VALUES)
        elif kind == 4:
            raw_number = (name, rng.choice(ODD_NUMBER_TEXTS))
            rec[name] = "__RAW__"
        else:
            rec["records" if rng.random() < 0.2 else name] = rng.choice(ODD_VALUES)
    text = json.dumps(rec, ensure_ascii=rng.random() < 0.3)
    if raw_number is not None:
        text = text.replace('"__RAW__"', raw_number[1])
    roll = rng.random()
    if roll < 0.05:  # a field name spelled with an escape
        text = text.replace(
            f'"{names[0]}"', '"' + names[0][0] + "\\u00" + f"{ord(names[0][1]):02x}" + names[0][2:] + '"', 1
        )
    elif roll < 0.10:  # a duplicate key: the last one counts on both paths
        text = text[:-1] + f', "{names[0]}": {json.dumps(rng.choice(ODD_VALUES))}' + "}"
    elif roll < 0.13:
        text = text[: rng.randrange(len(text))]  # cut short
    elif roll < 0.18:  # JSON's other whitespace, or none
        space = rng.choice(["", "\n", "\t", "\r\n ", "  "])
        text = f"{space}{text}{space}".replace(", ", "," + space).replace(": ", space + ":")
    elif roll < 0.23:  # a byte of the text changed to anything
        raw = bytearray(text.encode())
        raw[rng.randrange(len(raw))] = rng.randrange(256)
        return raw.decode("utf-8", errors="surrogateescape")
    return text


def _corpus(contract: SourceContract, seed: int) -> list[Message]:
    rng = random.Random(seed)
    sim = simulate(SimulationConfig(meters=12, days=1, fault_rate=0.02, seed=seed))
    clean = [m for m in sim.messages[contract.source] if m]
    records: list[dict[str, Any]] = []
    for message in clean[:400]:
        try:
            parsed = json.loads(message)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            inner = parsed.get("records")
            records.extend(r for r in (inner if isinstance(inner, list) else [parsed]) if isinstance(r, dict))
    assert records, f"the simulator gave no {contract.source} records"
    out: list[Message] = list(clean[:400])
    for _ in range(3000):
        roll = rng.random()
        record = rng.choice(records)
        if roll < 0.5:
            text = _mutate(record, contract, rng)
        elif roll < 0.75:  # a batch of clean and mutated records
            items = [
                json.dumps(r) if rng.random() < 0.7 else _mutate(r, contract, rng)
                for r in rng.sample(records, rng.randint(0, 6))
            ]
            text = '{"records": [' + ", ".join(items) + "]}"
        elif roll < 0.8:
            text = rng.choice(['{"records": null}', '{"records": {}}', "[1, 2]", '"text"', "null", " ", "{}"])
        else:
            text = json.dumps(record)
        data = text.encode("utf-8", errors="surrogateescape")
        out.append(data if rng.random() < 0.8 or data != text.encode("utf-8", errors="replace") else text)
    out += [None, b"", b"\xff\xfe junk", b'{"records": [1, {"x": 2}]}']
    rng.shuffle(out)
    return out


def _native_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Native code gives every message back."""

    def gives_back(
        messages: list[Message], names: tuple[str, ...], kinds: tuple[int, ...], max_records: int
    ) -> tuple[bytes, bytes, int, list[bytearray | tuple[bytes, bytes, bytes]]]:
        empty = [bytearray() if kind in (1, 2) else (b"\x00", b"\x00" * 4, b"") for kind in kinds]
        return np.full(len(messages), -1, dtype=np.int64).tobytes(), bytes(len(messages)), 0, empty

    monkeypatch.setattr(decoding, "decode_messages", gives_back)


def _checked_only(monkeypatch: pytest.MonkeyPatch) -> None:
    class Refuses:
        def decode(self, message: Message) -> None:
            raise msgspec.DecodeError("fast path off")

    _native_off(monkeypatch)
    monkeypatch.setattr(decoding, "_fast_decoder", lambda contract: Refuses())


def _decode_through(first: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding from `first` on: "native" (everything on), "msgspec" (native code off) or "checked"
    (both off)."""
    if first == "msgspec":
        _native_off(monkeypatch)
    elif first == "checked":
        _checked_only(monkeypatch)


def _same(fast: DecodedBatch, checked: DecodedBatch) -> None:
    pd.testing.assert_frame_equal(fast.records, checked.records)
    for column in fast.records.select_dtypes("float64"):  # assert_frame_equal takes -0.0 for 0.0
        assert (np.signbit(fast.records[column]) == np.signbit(checked.records[column])).all(), column
    assert fast.malformed == checked.malformed
    assert fast.message_index == checked.message_index
    assert len(fast.payloads) == len(checked.payloads)
    assert list(fast.payloads) == list(checked.payloads)


@pytest.mark.parametrize("source", sorted(CONTRACTS))
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("first", ["native", "msgspec"])
def test_the_fast_paths_decode_exactly_what_the_checked_path_does(
    source: str, seed: int, first: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    contract = CONTRACTS[source]
    messages = _corpus(contract, seed)
    versions = list(range(100, 100 + len(messages)))
    with monkeypatch.context() as patched:
        _decode_through(first, patched)
        fast = decode(contract, messages, versions)
    with monkeypatch.context() as patched:
        _checked_only(patched)
        checked = decode(contract, messages, versions)
    _same(fast, checked)
    # The corpus exercises both outcomes: records kept and records refused, on both paths.
    assert len(fast.records) > 500 and len(fast.malformed) > 500
    assert fast.records_in == len(fast.records) + len(fast.malformed)


@pytest.mark.parametrize("source", sorted(CONTRACTS))
def test_clean_messages_are_decoded_natively(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator's clean messages (single records and batches, bytes and text) are decoded by
    native code: msgspec and orjson parse none of them."""
    contract = CONTRACTS[source]
    sim = simulate(SimulationConfig(meters=20, days=1, fault_rate=0.0, seed=3))
    messages: list[Message] = [m.encode() if i % 2 else m for i, m in enumerate(sim.messages[source])]
    parsed: list[Message] = []
    real_loads, real_decoder = decoding.orjson.loads, decoding._fast_decoder

    def counting_loads(message: Message) -> object:
        parsed.append(message)
        return real_loads(message)  # type: ignore[arg-type]

    class Counting:
        def __init__(self, contract: SourceContract) -> None:
            self.real = real_decoder(contract)

        def decode(self, message: Message) -> object:
            parsed.append(message)
            return self.real.decode(message)  # type: ignore[arg-type]

    monkeypatch.setattr(decoding.orjson, "loads", counting_loads)
    monkeypatch.setattr(decoding, "_fast_decoder", Counting)
    batch = decode(contract, messages, list(range(len(messages))))
    assert len(batch.records) == batch.records_in >= len(messages) and not batch.malformed
    assert parsed == []


def test_a_message_given_back_midway_leaves_nothing_in_the_columns() -> None:
    """A batch message whose fifth record native code cannot take is given back whole: its first
    four records are not kept twice, and the records around it keep their indexes."""
    contract = CONTRACTS["meter_readings"]
    record = READING
    batch = [dict(record, energy_kwh=float(i)) for i in range(4)] + [dict(record, note="new field")]
    messages: list[Message] = [
        json.dumps(record).encode(),
        json.dumps({"records": batch}).encode(),
        json.dumps(dict(record, meter_id="M2")).encode(),
    ]
    counts, singles, rows, _ = decoding.decode_messages(
        messages, decoding._native_names(contract), decoding._native_kinds(contract), 100
    )
    assert np.frombuffer(counts, dtype=np.int64).tolist() == [1, -1, 1] and list(singles) == [1, 0, 1]
    assert rows == 2
    decoded = decode(contract, messages, [1, 2, 3])
    assert decoded.records["record_index"].tolist() == list(range(7))
    assert decoded.records["energy_kwh"].tolist() == [0.5, 0.0, 1.0, 2.0, 3.0, 0.5, 0.5]
    assert decoded.records["meter_id"].tolist() == ["M1"] * 6 + ["M2"]
    assert decoded.records["record_version"].tolist() == [1, 2, 2, 2, 2, 2, 3]


def test_a_quarantined_record_of_a_fast_batch_has_its_own_text() -> None:
    """A batch the fast path decoded keeps no objects; a record the field checks refuse still gets
    its own JSON, parsed from its message when asked for."""
    contract = CONTRACTS["meter_readings"]
    good = READING
    late = dict(good, reading_start="2026-01-01T00:15:00")  # no offset: refused by the field checks
    message = json.dumps({"records": [good, late]}).encode()
    batch = decode(contract, [message], [7])
    assert [m.reason for m in batch.malformed] == ["malformed:timestamp_without_offset:reading_start"]
    assert json.loads(batch.payloads[1]) == late and json.loads(batch.payloads[0]) == good


@pytest.mark.parametrize(
    "unknown",
    [b'"n\xffte": 1', b'"extra": 1e400', b'"extra": -1e309', b'"extra": ' + b"9" * 400],
    ids=["invalid UTF-8", "1e400", "-1e309", "400 digits"],
)
@pytest.mark.parametrize("first", ["native", "msgspec", "checked"])
def test_what_orjson_refuses_in_an_unknown_key_makes_the_whole_message_invalid_json(
    unknown: bytes, first: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """msgspec skips an unknown key's value unread, and orjson refuses these: such a batch message
    was decoded into records whose neighbours had no text to quarantine (the run failed on every
    retry). It is one malformed record, as on the checked path."""
    contract = CONTRACTS["meter_readings"]
    late = dict(READING, reading_start="2026-01-01T00:15:00")  # refused by the field checks
    message = b'{"records": [' + json.dumps(READING).encode()[:-1] + b", " + unknown + b"}, "
    message += json.dumps(late).encode() + b"]}"
    _decode_through(first, monkeypatch)
    batch = decode(contract, [message, json.dumps(READING).encode()], [1, 2])
    assert [(m.record_index, m.reason.split(" (")[0]) for m in batch.malformed] == [
        (0, "malformed:invalid_json")
    ]
    assert batch.records["record_index"].tolist() == [1] and batch.records_in == 2


def test_a_text_message_with_a_lone_surrogate_is_invalid_json() -> None:
    """Text a reader decoded with `surrogateescape` cannot be encoded: msgspec raised on it."""
    contract = CONTRACTS["meter_readings"]
    batch = decode(contract, ['{"meter_id": "\udcc8"}', json.dumps(READING)], [1, 2])
    assert [(m.record_index, m.reason.split(" (")[0]) for m in batch.malformed] == [
        (0, "malformed:invalid_json")
    ]
    assert batch.records["record_index"].tolist() == [1]


@pytest.mark.parametrize("first", ["native", "msgspec", "checked"])
def test_minus_zero_is_the_integer_zero_in_a_number_field(
    first: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-0` is an integer's text: 0, stored as +0.0; `-0.0` keeps its sign, on every path."""
    contract = CONTRACTS["meter_readings"]
    messages: list[Message] = [
        json.dumps(READING).replace("0.5", number).encode() for number in ("-0", "-0.0", "-0e0", "0")
    ]
    _decode_through(first, monkeypatch)
    energy = decode(contract, messages, [1, 2, 3, 4]).records["energy_kwh"]
    assert energy.tolist() == [0.0] * 4
    assert np.signbit(energy).tolist() == [False, True, True, False]


@pytest.mark.parametrize("first", ["native", "msgspec", "checked"])
def test_a_required_text_list_that_is_empty_is_present(first: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty list is stored as null but is not a missing field: native code gives back a
    required text list's empty list, for the field checks to tell it from a missing one."""
    contract = SourceContract(
        source="tagged",
        table="tagged",
        fields=(Field("id", "str"), Field("tags", "str_list")),
        key=("id",),
        time_field="id",
        topic="tagged",
    )
    messages: list[Message] = [b'{"id": "a", "tags": []}', b'{"id": "b", "tags": ["x", "y"]}', b'{"id": "c"}']
    _decode_through(first, monkeypatch)
    batch = decode(contract, messages, [1, 2, 3])
    assert [(m.record_index, m.reason) for m in batch.malformed] == [(2, "malformed:missing_field:tags")]
    assert batch.records["tags"].tolist() == [pd.NA, "x,y"]
