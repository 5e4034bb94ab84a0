"""Decoding contract-v1 messages: every record is either decoded or malformed with a reason."""

from __future__ import annotations

import json

import pandas as pd

from metrify_assets.contracts import GRID_STATUS, METER_READINGS, WEATHER_OBSERVATIONS
from metrify_assets.ingestion.decode import decode


def reading(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "meter_id": "MTR-1",
        "reading_start": "2026-03-29T02:00:00+01:00",
        "interval_minutes": 15,
        "energy_kwh": 0.25,
    }
    base.update(overrides)
    return base


def test_single_and_batch_messages_are_flattened_with_indexes_and_versions() -> None:
    messages = [
        json.dumps(reading()),
        json.dumps(
            {"records": [reading(reading_start="2026-03-29T02:15:00+01:00"), reading(meter_id="MTR-2")]}
        ),
    ]
    batch = decode(METER_READINGS, messages, [7, 9])
    assert batch.records_in == 3
    assert batch.malformed == []
    assert batch.records["record_index"].tolist() == [0, 1, 2]
    assert batch.records["record_version"].tolist() == [7, 9, 9]
    # Offsets are normalised to UTC instants.
    assert str(batch.records["reading_start"].iloc[0]) == "2026-03-29 01:00:00+00:00"


def test_every_kind_of_malformed_record_is_kept_with_a_reason() -> None:
    messages = [
        "{not json",
        json.dumps(5),
        json.dumps(reading(energy_kwh="lots")),
        json.dumps({k: v for k, v in reading().items() if k != "meter_id"}),
        json.dumps(reading(reading_start="2026-03-29T02:00:00")),
        json.dumps(reading(reading_start="2026-13-29T02:00:00+01:00")),
        json.dumps(reading(interval_minutes=15.5)),
        json.dumps(reading(energy_kwh=True)),
        json.dumps(reading(reading_start="not-a-date")),
        json.dumps(reading(reading_start="2026-03-29")),
        json.dumps(reading(reading_start="2026-03-29T02:00:00 and more")),
        json.dumps(reading()),
    ]
    batch = decode(METER_READINGS, messages, list(range(len(messages))))
    reasons = {m.record_index: m.reason for m in batch.malformed}
    assert batch.records_in == 12
    assert len(batch.records) == 1
    assert len(batch.records) + len(batch.malformed) == batch.records_in
    assert reasons[0].startswith("malformed:invalid_json")
    assert reasons[1] == "malformed:not_an_object"
    assert reasons[2] == "malformed:bad_type:energy_kwh"
    assert reasons[3] == "malformed:missing_field:meter_id"
    assert reasons[4] == "malformed:timestamp_without_offset:reading_start"
    assert reasons[5] == "malformed:bad_timestamp:reading_start"
    assert reasons[6] == "malformed:bad_type:interval_minutes"
    assert reasons[7] == "malformed:bad_type:energy_kwh"
    # Text that is no ISO date-time is a bad timestamp, not one without an offset.
    assert reasons[8] == reasons[9] == reasons[10] == "malformed:bad_timestamp:reading_start"
    assert batch.malformed[0].payload == "{not json"


def test_unknown_fields_are_ignored_and_optional_fields_typed() -> None:
    message = json.dumps(reading(status_flags=["power_fail", "clock_set"], firmware="v9", voltage_v=231))
    batch = decode(METER_READINGS, [message], [1])
    row = batch.records.iloc[0]
    assert row["status_flags"] == "power_fail,clock_set"
    assert row["voltage_v"] == 231.0
    assert "firmware" not in batch.records.columns


def test_status_lists_are_stored_joined_and_an_empty_list_as_null() -> None:
    flags = [["a", "b"], [""], [], None, ["ok", 1], "a"]
    messages = [json.dumps(reading(status_flags=f)) for f in flags]
    batch = decode(METER_READINGS, messages, [1] * len(messages))
    stored = dict(zip(batch.records["record_index"], batch.records["status_flags"], strict=True))
    assert stored[0] == "a,b" and stored[1] == ""
    assert pd.isna(stored[2]) and pd.isna(stored[3])
    assert [(m.record_index, m.reason) for m in batch.malformed] == [
        (4, "malformed:bad_type:status_flags"),
        (5, "malformed:bad_type:status_flags"),
    ]


def test_an_optional_field_no_record_carries_is_null_in_every_row() -> None:
    messages = [json.dumps(reading()) for _ in range(3)]
    records = decode(METER_READINGS, messages, [1, 1, 1]).records
    assert len(records) == 3 and records["status_flags"].isna().all() and records["source"].isna().all()


def test_grid_status_contract() -> None:
    good = {
        "grid_node_id": "N1",
        "measured_at": "2026-03-29T00:00:00Z",
        "frequency_hz": 50.01,
        "voltage_v": 230.0,
        "load_mw": 12.5,
    }
    batch = decode(GRID_STATUS, [json.dumps(good), json.dumps({**good, "frequency_hz": None})], [1, 1])
    assert len(batch.records) == 1
    assert batch.malformed[0].reason == "malformed:missing_field:frequency_hz"


def test_a_frequency_only_grid_sample_is_a_record() -> None:
    """Many operators publish frequency alone: voltage and load are optional (contract v1)."""
    sample = {"grid_node_id": "FR-PARIS", "measured_at": "2014-01-10T00:00:10+01:00", "frequency_hz": 50.0223}
    batch = decode(GRID_STATUS, [json.dumps(sample)], [1])
    assert batch.malformed == [] and len(batch.records) == 1
    row = batch.records.iloc[0]
    assert row["frequency_hz"] == 50.0223 and pd.isna(row["voltage_v"]) and pd.isna(row["load_mw"])


def test_an_offset_no_place_has_is_malformed_with_its_own_reason() -> None:
    """Offsets run from -12:00 (Baker Island) to +14:00 (the Line Islands). +14:30 was accepted as
    09:30 UTC the day before; +24:00 to +99:59 were bad timestamps, a reason that does not say what is
    wrong with a text that looks right."""
    stamps = {
        "2026-03-29T02:00:00+14:00": None,
        "2026-03-29T02:00:00-12:00": None,
        "2026-03-29T02:00:00+05:45": None,  # Nepal
        "2026-03-29T02:00:00+0530": None,
        "2026-03-29T02:00:00-00:00": None,
        "2026-03-29 02:00Z": None,
        "2026-03-29T02:00:00+14:30": "malformed:bad_offset:reading_start",
        "2026-03-29T02:00:00+1430": "malformed:bad_offset:reading_start",
        "2026-03-29T02:00:00-12:30": "malformed:bad_offset:reading_start",
        "2026-03-29T02:00:00+23:59": "malformed:bad_offset:reading_start",
        "2026-03-29T02:00:00+99:59": "malformed:bad_offset:reading_start",
        "2026-03-29T02:00:00+00:60": "malformed:bad_offset:reading_start",
        "2026-03-29T02:00:00": "malformed:timestamp_without_offset:reading_start",
        "2026-03-29T02:00:00+1": "malformed:bad_timestamp:reading_start",
        "not-a-date": "malformed:bad_timestamp:reading_start",
        "2026-13-29T02:00:00+01:00": "malformed:bad_timestamp:reading_start",
    }
    messages = [json.dumps(reading(reading_start=t)) for t in stamps]
    batch = decode(METER_READINGS, messages, [1] * len(messages))
    reasons = {m.record_index: m.reason for m in batch.malformed}
    assert [reasons.get(i) for i in range(len(stamps))] == list(stamps.values())
    assert batch.records_in == len(batch.records) + len(batch.malformed)
    kept = batch.records["reading_start"].dt.strftime("%Y-%m-%d %H:%M").tolist()
    assert kept == [
        "2026-03-28 12:00",
        "2026-03-29 14:00",
        "2026-03-28 20:15",
        "2026-03-28 20:30",
        "2026-03-29 02:00",
        "2026-03-29 02:00",
    ]


OBSERVATION = {
    "station_id": "WX-1",
    "observed_at": "2026-03-29T10:00:00+01:00",
    "temperature_c": 9.5,
    "humidity_pct": 80.0,
    "pressure_hpa": 1012.0,
    "wind_speed_ms": 3.2,
    "precipitation_mm": 0.0,
}


def test_a_weather_observation_missing_a_measure_is_a_record_but_not_one_without_temperature() -> None:
    """Stations routinely miss one measure (a broken hygrometer, no rain gauge): humidity, pressure,
    wind and precipitation are optional; temperature is required (degree-days are built on it)."""
    optional = ("humidity_pct", "pressure_hpa", "wind_speed_ms", "precipitation_mm")
    messages = [
        json.dumps({**OBSERVATION, "humidity_pct": None}),  # the user's trial: null humidity
        json.dumps({k: v for k, v in OBSERVATION.items() if k != "humidity_pct"}),  # left out
        json.dumps({k: v for k, v in OBSERVATION.items() if k not in optional}),  # temperature alone
        json.dumps({**OBSERVATION, "temperature_c": None}),
        json.dumps({k: v for k, v in OBSERVATION.items() if k != "temperature_c"}),
        json.dumps({**OBSERVATION, "wind_speed_ms": "calm"}),  # present, so still of its type
    ]
    batch = decode(WEATHER_OBSERVATIONS, messages, [1] * len(messages))
    assert batch.records_in == len(batch.records) + len(batch.malformed) == 6
    assert [(m.record_index, m.reason) for m in batch.malformed] == [
        (3, "malformed:missing_field:temperature_c"),
        (4, "malformed:missing_field:temperature_c"),
        (5, "malformed:bad_type:wind_speed_ms"),
    ]
    records = batch.records.set_index("record_index")
    assert records["temperature_c"].tolist() == [9.5, 9.5, 9.5]
    assert records["humidity_pct"].isna().tolist() == [True, True, True]
    assert records.loc[0, "pressure_hpa"] == 1012.0 and records.loc[2, optional].isna().all()
    assert all(records[name].dtype == "float64" for name in optional)


def test_payloads_are_each_records_own_text_and_malformed_bytes_are_kept() -> None:
    single = json.dumps(reading())
    mixed = {"records": [reading(meter_id="MTR-2"), "stray", reading(meter_id="MTR-3", energy_kwh=None)]}
    messages: list[str | bytes] = [
        single.encode(),
        json.dumps(mixed),
        b'{"meter_id": "\xff\xfe"}',  # invalid UTF-8: malformed, and its text survives with U+FFFD
        json.dumps({"records": "nope"}),
    ]
    batch = decode(METER_READINGS, messages, [1, 2, 3, 4])
    assert batch.records_in == len(batch.payloads) == 6
    assert batch.message_index == [0, 1, 1, 1, 2, 3]
    assert batch.payloads[0] == single, "a single-record message is its record's text"
    assert [json.loads(p) for p in batch.payloads[1:4]] == mixed["records"]
    reasons = {m.record_index: (m.reason, m.payload) for m in batch.malformed}
    assert reasons[2] == ("malformed:not_an_object", '"stray"')
    assert reasons[3][0] == "malformed:missing_field:energy_kwh"
    assert reasons[4][0].startswith("malformed:invalid_json")
    assert "\ufffd" in reasons[4][1]
    assert reasons[5] == ("malformed:records_not_a_list", json.dumps({"records": "nope"}))
    assert batch.records["record_index"].tolist() == [0, 1]
    assert batch.payloads[-1] == batch.payloads[5]
    assert len(batch.records) + len(batch.malformed) == batch.records_in


def test_every_shape_a_transport_can_deliver_is_decoded_or_malformed_with_a_reason() -> None:
    """Kafka's null value, an empty value, binary junk, NUL characters, oversize text and integers."""
    messages: list[str | bytes | None] = [
        None,
        b"",
        b"\xff\xfe\x00junk",
        json.dumps(reading(meter_id="M\x00")),
        json.dumps(reading(meter_id="M" * 300)),
        json.dumps(reading(interval_minutes=2**40)),
        json.dumps(reading(interval_minutes=1e300)),
        json.dumps(reading(reading_start="２０２６-03-29T02:00:00+01:00")),  # full-width digits
        json.dumps(reading(status_flags=["ok", None])),
        '{"records": [' + "[" * 1000 + "]" * 1000 + "]}",  # deeper than json.dumps can render
        json.dumps(reading()),
    ]
    batch = decode(METER_READINGS, messages, list(range(len(messages))))
    reasons = {m.record_index: m.reason for m in batch.malformed}
    assert reasons[0] == "malformed:null_value"
    assert reasons[1] == "malformed:empty_message"
    assert reasons[2].startswith("malformed:invalid_json")
    assert "\x00" not in batch.malformed[2].payload  # storable in PostgreSQL text
    assert reasons[3] == reasons[4] == "malformed:bad_text:meter_id"
    assert reasons[5] == reasons[6] == "malformed:out_of_range:interval_minutes"
    assert reasons[7] == "malformed:bad_timestamp:reading_start"
    assert reasons[8] == "malformed:bad_type:status_flags"
    assert reasons[9] == "malformed:not_an_object"
    assert batch.records["record_index"].tolist() == [10]
