"""File ingestion: column mapping to contract records, and the UCI household and OpenSTEF presets end
to end."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from metrify_assets.cli import ingest
from metrify_assets.contracts import contract_for
from metrify_assets.ingestion.decode import DecodedBatch, decode
from metrify_assets.ingestion.landing import land_lines, landed_messages, list_landed
from metrify_assets.ingestion.limits import MAX_BATCH_MESSAGES
from metrify_assets.ingestion.readers import detect_format, ingest_file, parse_pairs
from metrify_assets.ingestion.readers.csvfile import read_csv
from metrify_assets.ingestion.readers.mapping import map_records
from metrify_assets.ingestion.readers.presets.openstef import (
    openstef_readings,
    openstef_weather,
    read_openstef,
)
from metrify_assets.ingestion.readers.presets.uci import read_uci_household, uci_household_readings
from metrify_assets.ingestion.readers.result import IngestResult

UCI = Path(__file__).parents[1] / "fixtures" / "uci_household_power_2days.txt"
OPENSTEF = Path(__file__).parents[1] / "fixtures" / "openstef_307_test.csv"


def quarantined(source: str, lines: list[str]) -> dict[int, str]:
    """What the pipeline's decoder quarantines of landed `lines`: record index -> reason."""
    batch = decode(contract_for(source), [line.encode() for line in lines], [1] * len(lines))
    return {m.record_index: m.reason for m in batch.malformed}


def cli() -> typer.Typer:
    app = typer.Typer()
    ingest.register(app)

    @app.callback()
    def main() -> None:
        """Several commands, so typer keeps the command name."""

    return app


def test_uci_preset_via_cli_lands_192_quarter_hours_with_the_source_energy(tmp_path: Path) -> None:
    args = ["ingest", "meter_readings", str(UCI), "--preset", "uci-household", "--landing-dir", str(tmp_path)]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    (landed,) = list_landed(tmp_path, "meter_readings")
    records = [json.loads(line) for line in landed.path.read_text().splitlines()]
    assert len(records) == 192

    source = pd.read_csv(UCI, sep=";", na_values=["?"])
    assert len(source) == 2880
    total_kwh = sum(r["energy_kwh"] for r in records)
    assert total_kwh == pytest.approx(source["Global_active_power"].sum() / 60.0, abs=1e-9)

    first = records[0]
    assert first["meter_id"] == "UCI-HOUSEHOLD-1" and first["interval_minutes"] == 15
    assert first["reading_start"] == "2007-02-01T00:00:00+01:00"
    assert first["energy_kwh"] == pytest.approx(source["Global_active_power"][:15].sum() / 60.0, abs=1e-12)
    assert first["voltage_v"] == pytest.approx(source["Voltage"][:15].mean(), abs=1e-3)
    assert all(233.0 <= r["voltage_v"] <= 247.0 and 0 < r["power_factor"] <= 1 for r in records)
    starts = [datetime.fromisoformat(r["reading_start"]) for r in records]
    assert all(b - a == pd.Timedelta(minutes=15) for a, b in pairwise(starts))


def test_uci_bucket_with_missing_minutes_is_emitted_and_counted() -> None:
    frame = read_uci_household(UCI).frame
    frame.loc[3:5, "Global_active_power"] = float("nan")  # three minutes of the first bucket
    result = uci_household_readings(frame, meter_id="M-1")
    assert result.records == 192
    assert result.skipped == {"missing_Global_active_power": 3}
    assert result.notes["partial_intervals"] == 1 and result.notes["missing_minutes"] == 3
    first = json.loads(result.lines[0])
    assert first["status_flags"] == ["partial_interval"]
    assert first["energy_kwh"] == pytest.approx(pd.to_numeric(frame["Global_active_power"][:15]).sum() / 60.0)


def test_uci_minutes_without_a_voltage_are_counted_and_too_few_leave_the_interval_without_one() -> None:
    """The fixture's minutes with the voltage of some taken away: 4 of the first interval's (11 left,
    too few for its mean), 1 of the second's (the mean of the other 14), and 3 reactive powers of
    the third's (its power factor from the 12 minutes with both)."""
    frame = read_uci_household(UCI).frame
    source = frame.copy()
    frame.loc[0:2, "Voltage"] = "?"
    frame.loc[3, "Voltage"] = "2\r40"
    frame.loc[20, "Voltage"] = ""
    frame.loc[30:32, "Global_reactive_power"] = "?"
    result = uci_household_readings(frame, meter_id="M-1")
    assert result.records == 192 and result.skipped == {}
    assert result.notes == {
        "partial_intervals": 0,
        "missing_minutes": 0,
        "intervals_without_data": 0,
        "voltage_v: invalid_Voltage": 1,
        "voltage_v: missing_Voltage": 4,
        "voltage_v: too_few_minutes": 11,
        "intervals_without_voltage_v": 1,
        "power_factor: missing_Global_reactive_power": 3,
    }
    first, second, third, fourth = (json.loads(line) for line in result.lines[:4])
    assert "voltage_v" not in first and first["status_flags"] == ["partial_voltage"]
    voltage = pd.to_numeric(source["Voltage"])
    assert second["voltage_v"] == pytest.approx(voltage[15:30].drop(20).mean(), abs=1e-3)
    assert second["status_flags"] == ["partial_voltage"]
    assert third["status_flags"] == ["partial_power_factor"] and third["voltage_v"] > 0
    p, q = (
        pd.to_numeric(source["Global_active_power"][33:45]),
        pd.to_numeric(source["Global_reactive_power"][33:45]),
    )
    assert third["power_factor"] == pytest.approx(p.mean() / math.hypot(p.mean(), q.mean()), abs=1e-4)
    assert fourth["status_flags"] == [] and "voltage_v" in fourth and "power_factor" in fourth
    # Every minute is in the energy, and each one left out of a voltage is counted with its reason.
    voltage_notes = sum(n for k, n in result.notes.items() if k.startswith("voltage_v: "))
    records = [json.loads(line) for line in result.lines]
    with_voltage = sum("voltage_v" in r for r in records)
    assert result.rows_read == 2880 == voltage_notes + 15 * with_voltage - 1  # the second's 14
    batch = decode(contract_for("meter_readings"), [line.encode() for line in result.lines], [1] * 192)
    assert len(batch.records) == 192 and not batch.malformed


def test_uci_accounts_for_every_minute_read(tmp_path: Path) -> None:
    """A file with every kind of gap: the rows read are the minutes of the energy plus the skipped
    ones, and the minutes of the energy are those of each voltage_v plus the ones counted as left
    out of it; the same for power_factor."""
    header = "Date;Time;Global_active_power;Global_reactive_power;Voltage\n"
    minutes = [
        *(f"01/02/2007;00:{m:02d}:00;1.2;0.1;{240 if m in (0, 14) else '?'}" for m in range(15)),
        *(
            f"01/02/2007;00:{m:02d}:00;1.2;{'?' if m < 20 else 0.1};{'abc' if m == 15 else 235}"
            for m in range(15, 30)
        ),
        *(f"01/02/2007;00:{m:02d}:00;{'?' if m < 34 else 0.6};0.2;230" for m in range(30, 45)),
        "01/02/2007;00:44:00;0.6;0.2;230",
        "31/02/2007;00:45:00;0.6;0.2;230",
        *(f"01/02/2007;00:{m:02d}:00;0.6; ;{230 + m % 2}" for m in range(46, 59)),
    ]
    result = ingested(
        tmp_path, "u.txt", (header + "\n".join(minutes) + "\n").encode(), preset="uci-household"
    )
    records = [json.loads(line) for line in result.lines]
    assert [r["status_flags"] for r in records] == [
        ["partial_voltage"],
        ["partial_voltage", "partial_power_factor"],
        ["partial_interval"],
        ["partial_interval", "partial_power_factor"],
    ]
    assert [r.get("voltage_v") for r in records] == [None, 235.0, None, 230.462]
    assert [r.get("power_factor") is not None for r in records] == [True, False, False, False]
    assert result.skipped == {"duplicate_minute": 1, "invalid_timestamp": 1, "missing_Global_active_power": 4}
    assert result.notes == {
        "partial_intervals": 2,
        "missing_minutes": 6,
        "intervals_without_data": 0,
        "voltage_v: invalid_Voltage": 1,
        "voltage_v: missing_Voltage": 13,
        "voltage_v: too_few_minutes": 13,
        "intervals_without_voltage_v": 2,
        "power_factor: missing_Global_reactive_power": 18,
        "power_factor: too_few_minutes": 21,
        "intervals_without_power_factor": 3,
    }
    energy_minutes = 15 + 15 + 11 + 13  # 1.2 kW in the first two intervals, 0.6 kW in the others
    assert sum(r["energy_kwh"] for r in records) == pytest.approx((30 * 1.2 + 24 * 0.6) / 60, abs=1e-12)
    assert result.rows_read == len(minutes) == energy_minutes + sum(result.skipped.values())
    for field, minutes_with_it in (("voltage_v", 14 + 13), ("power_factor", 15)):
        left_out = sum(n for k, n in result.notes.items() if k.startswith(f"{field}: "))
        assert energy_minutes == minutes_with_it + left_out


def landed_records(tmp_path: Path, source: str, *options: str) -> list[dict[str, Any]]:
    args = ["ingest", source, str(OPENSTEF), "--preset", "openstef", "--landing-dir", str(tmp_path), *options]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    (landed,) = list_landed(tmp_path, source)
    return [json.loads(line) for line in landed.path.read_text().splitlines()]


def test_openstef_preset_lands_the_load_as_quarter_hour_readings(tmp_path: Path) -> None:
    records = landed_records(tmp_path, "meter_readings")
    source = pd.read_csv(OPENSTEF)
    assert len(records) == len(source) == 2878
    assert {r["meter_id"] for r in records} == {"OPENSTEF-307"}
    assert {(r["interval_minutes"], r["source"]) for r in records} == {(15, "openstef")}
    # MW over a quarter-hour = MW x 250 kWh; feed-in (negative load) lands as export.
    imported = sum(r["energy_kwh"] for r in records if r["direction"] == "import")
    exported = sum(r["energy_kwh"] for r in records if r["direction"] == "export")
    assert imported == pytest.approx(source["load"].clip(lower=0).sum() * 250, rel=1e-12)
    assert exported == pytest.approx(-source["load"].clip(upper=0).sum() * 250, rel=1e-12)
    assert all(r["energy_kwh"] >= 0 for r in records)
    assert sum(r["direction"] == "export" for r in records) == (source["load"] < 0).sum() == 502
    first = records[0]
    assert first["reading_start"] == "2020-10-31T00:45:00+00:00"
    assert (first["direction"], first["energy_kwh"]) == ("export", pytest.approx(3.986666667 * 250))
    starts = [datetime.fromisoformat(str(r["reading_start"])) for r in records]
    assert all(b - a == pd.Timedelta(minutes=15) for a, b in pairwise(starts))


def test_openstef_preset_lands_the_weather_in_contract_units(tmp_path: Path) -> None:
    records = landed_records(tmp_path, "weather_observations", "--station-id", "WX-NL-1")
    source = pd.read_csv(OPENSTEF)
    assert len(records) == len(source)
    frame = pd.DataFrame(records)
    assert set(frame["station_id"]) == {"WX-NL-1"}
    assert frame["observed_at"].iloc[-1] == "2020-11-30T00:00:00+00:00"
    pd.testing.assert_series_equal(frame["temperature_c"], source["temp"], check_names=False)
    pd.testing.assert_series_equal(frame["wind_speed_ms"], source["windspeed"], check_names=False)
    np.testing.assert_allclose(frame["pressure_hpa"], source["pressure"] / 100, rtol=1e-12)
    np.testing.assert_allclose(frame["humidity_pct"], source["humidity"] * 100, rtol=1e-12)
    # `rain` is a rate (mm/h) every quarter-hour: the amount of a quarter-hour is a quarter of it.
    np.testing.assert_allclose(frame["precipitation_mm"], source["rain"] / 4, rtol=1e-12)
    assert frame["pressure_hpa"].between(850, 1090).all() and frame["humidity_pct"].between(0, 100).all()


def test_openstef_rows_with_missing_or_bad_values_are_landed_for_quarantine_with_reasons() -> None:
    frame = read_openstef(OPENSTEF).head(6).copy()
    frame.loc[0, "load"] = None
    frame.loc[1, "load"] = "n/a"
    frame.loc[2, "datetime"] = "yesterday"
    frame.loc[3, "rain"] = None
    # Finite, but not in the contract's unit: x 250 kWh and x 100 % were Infinity, landed in a
    # record the reader counted and the decoder refused (invalid_json).
    frame.loc[4, "load"] = "1e307"
    frame.loc[5, "humidity"] = "1e307"
    readings = openstef_readings(frame, meter_id="M-1")
    assert readings.records == 2 and len(readings.lines) == 6 and readings.skipped == {}
    assert readings.rejected == {"invalid_datetime": 1, "invalid_load": 2, "missing_load": 1}
    assert quarantined("meter_readings", readings.lines) == {
        0: "malformed:missing_field:energy_kwh",
        1: "malformed:bad_type:energy_kwh",
        2: "malformed:bad_timestamp:reading_start",
        4: "malformed:bad_type:energy_kwh",
    }
    assert readings.examples[1] == "row 2: invalid_load ('n/a')"
    frame.loc[1, "pressure"] = None
    frame.loc[4, "temp"] = None
    weather = openstef_weather(frame)
    # A station's missing rain or pressure is no reason (those measures are optional): the
    # observation lands without it. A missing temperature is (degree-days are built on it).
    assert weather.records == 3
    assert weather.rejected == {"invalid_datetime": 1, "invalid_humidity": 1, "missing_temp": 1}
    assert quarantined("weather_observations", weather.lines) == {
        2: "malformed:bad_timestamp:observed_at",
        4: "malformed:missing_field:temperature_c",
        5: "malformed:bad_type:humidity_pct",
    }
    without_rain, without_pressure = json.loads(weather.lines[3]), json.loads(weather.lines[1])
    assert "precipitation_mm" not in without_rain and without_rain["humidity_pct"] > 0
    assert "pressure_hpa" not in without_pressure and "precipitation_mm" in without_pressure
    with pytest.raises(ValueError, match="meter_readings or weather_observations"):
        ingest_file(OPENSTEF, "grid_status", preset="openstef")
    with pytest.raises(ValueError, match="no column load"):
        openstef_readings(frame.drop(columns="load"))


def test_mapping_renames_types_and_rejects_with_reasons() -> None:
    frame = pd.DataFrame(
        {
            "meter": ["A", "B", None, "D", "E"],
            "start": [
                "2026-03-29T03:00:00+01:00",
                "2026-03-29 03:15",
                "2026-03-29T03:30:00Z",
                "nope",
                "2026-03-29 01:30",
            ],
            "kwh": ["0.5", "0.25", "1", "2", "3"],
            "flags": ["power_fail|clock_set", "", None, None, None],
        }
    )
    mapping = {"meter_id": "meter", "reading_start": "start", "energy_kwh": "kwh", "status_flags": "flags"}
    result = map_records(frame, "meter_readings", mapping, {"interval_minutes": "15"}, "Europe/London")
    assert result.rows_read == 5 and result.records == 2 and len(result.lines) == 5
    # 01:30 on 2026-03-29 does not exist in Europe/London (clocks jump from 01:00 to 02:00)
    assert result.rejected == {
        "invalid_reading_start": 1,
        "missing_meter_id": 1,
        "nonexistent_local_time_in_reading_start": 1,
    }
    # The rejected rows are landed too, as the pipeline quarantines them: nothing read is lost.
    assert quarantined("meter_readings", result.lines) == {
        2: "malformed:missing_field:meter_id",
        3: "malformed:bad_timestamp:reading_start",
        4: "malformed:bad_timestamp:reading_start",
    }
    assert json.loads(result.lines[3])["reading_start"] == "nope"
    a, b = (json.loads(line) for line in result.lines[:2])
    assert a == {
        "meter_id": "A",
        "reading_start": "2026-03-29T03:00:00+01:00",
        "interval_minutes": 15,
        "energy_kwh": 0.5,
        "status_flags": ["power_fail", "clock_set"],
    }
    assert b["reading_start"] == "2026-03-29T03:15:00+01:00" and b["status_flags"] == []


def test_naive_timestamps_without_a_timezone_are_rejected_not_guessed() -> None:
    frame = pd.DataFrame(
        {
            "station_id": ["W1", "W1"],
            "observed_at": ["2026-01-01 00:00", "2026-01-01T00:10:00Z"],
            "temperature_c": [1, 2],
            "humidity_pct": [80, 81],
            "pressure_hpa": [1000, 1001],
            "wind_speed_ms": [3, 3],
            "precipitation_mm": [0, 0.2],
        }
    )
    result = map_records(frame, "weather_observations")
    assert result.rejected == {"no_offset_in_observed_at": 1} and result.records == 1
    assert quarantined("weather_observations", result.lines) == {
        0: "malformed:timestamp_without_offset:observed_at"
    }
    assert json.loads(result.lines[1])["observed_at"] == "2026-01-01T00:10:00+00:00"


def test_sub_second_samples_keep_their_fraction_and_stay_apart() -> None:
    """Two grid samples 0.2 s apart stay two instants (the API and Kafka keep fractions too), each
    with its own offset across a DST change; whole seconds are written without a fraction."""
    frame = pd.DataFrame(
        {
            "grid_node_id": ["N1"] * 3,
            "measured_at": ["2026-03-29T00:59:59.9Z", "2026-03-29T01:00:00.1Z", "2026-03-29 12:00:00"],
            "frequency_hz": [50.01, 49.99, 50.0],
            "voltage_v": [231.0, 229.5, 230.0],
        }
    )
    result = map_records(frame, "grid_status", timezone="Europe/Amsterdam")
    written = [json.loads(line)["measured_at"] for line in result.lines]
    assert written == [
        "2026-03-29T01:59:59.900000+01:00",
        "2026-03-29T03:00:00.100000+02:00",
        "2026-03-29T12:00:00.000000+02:00",  # the naive time is Amsterdam's own
    ]
    assert not quarantined("grid_status", result.lines)
    whole = map_records(frame.iloc[2:], "grid_status", timezone="Asia/Kolkata")
    assert json.loads(whole.lines[0])["measured_at"] == "2026-03-29T12:00:00+05:30"


def test_jsonl_and_parquet_read_the_same_records(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "grid_node_id": ["N1", "N2"],
            "measured_at": ["2026-03-28T00:00:00+00:00"] * 2,
            "frequency_hz": [50.01, 49.99],
            "voltage_v": [231.0, 229.5],
            "load_mw": [10.0, 12.5],
        }
    )
    frame.to_json(tmp_path / "g.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "g.parquet")
    from_jsonl = ingest_file(tmp_path / "g.jsonl", "grid_status")
    from_parquet = ingest_file(tmp_path / "g.parquet", "grid_status")
    assert from_jsonl.lines == from_parquet.lines and from_jsonl.records == 2


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="required field 'energy_kwh'"):
        map_records(
            pd.DataFrame({"meter_id": ["A"], "reading_start": ["x"], "interval_minutes": [15]}),
            "meter_readings",
        )
    with pytest.raises(ValueError, match="not fields of"):
        map_records(pd.DataFrame({"a": [1]}), "grid_status", {"nonsense": "a"})
    with pytest.raises(ValueError, match="not UTF-8 text: meter_id="):  # argv bytes as surrogates
        map_records(pd.DataFrame({"a": [1]}), "meter_readings", constants={"meter_id": "m\udce9"})
    with pytest.raises(ValueError, match="TARGET=VALUE"):
        parse_pairs(["meter_id"])
    with pytest.raises(ValueError, match="format"):
        detect_format(Path("readings.xlsx"))


@pytest.mark.parametrize("timezone", ["Mars/Base", "../etc", ""])
def test_an_unknown_timezone_is_a_usage_error_not_a_traceback(tmp_path: Path, timezone: str) -> None:
    path = tmp_path / "n.csv"
    path.write_bytes(READINGS_HEADER + b"m1,2024-01-01T00:00:00,15,1\n")
    args = ["ingest", "meter_readings", str(path), "--timezone", timezone, "--landing-dir", str(tmp_path)]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert f"unknown timezone {timezone!r}" in " ".join(result.output.replace("│", " ").split())


def test_a_file_longer_than_a_batch_lands_as_several_files_in_order(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    start = pd.Timestamp("2026-03-01T00:00:00Z")
    readings = [
        {"meter_id": f"M{i % 7}", "reading_start": (start + pd.Timedelta(minutes=15 * i)).isoformat(),
         "interval_minutes": 15, "energy_kwh": 0.1}
        for i in range(MAX_BATCH_MESSAGES + 1)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in readings))
    landing = tmp_path / "landing"
    result = CliRunner().invoke(cli(), ["ingest", "meter_readings", str(path), "--landing-dir", str(landing)])
    assert result.exit_code == 0, result.output
    assert "landed 2 files of at most 50,000 lines (one batch each)" in " ".join(result.output.split())
    first, second = list_landed(landing, "meter_readings")
    assert second.seq == first.seq + 1  # the later lines are the later versions
    lines = first.path.read_text().splitlines() + second.path.read_text().splitlines()
    assert [len(first.path.read_text().splitlines()), len(lines)] == [
        MAX_BATCH_MESSAGES,
        MAX_BATCH_MESSAGES + 1,
    ]
    assert [json.loads(line)["reading_start"] for line in lines] == [r["reading_start"] for r in readings]


def test_cli_rejects_an_unknown_source(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli(), ["ingest", "gas", str(UCI), "--landing-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert list_landed(tmp_path, "meter_readings") == []


def reading(meter: str, start: str = "2026-03-28T00:00:00+00:00", **fields: object) -> dict[str, object]:
    return {"meter_id": meter, "reading_start": start, "interval_minutes": 15, "energy_kwh": 0.5} | fields


# A JSON Lines export as a new user may bring it: line number -> line, and what becomes of it.
BAD_JSONL = [
    json.dumps(reading("A")),  # 1
    json.dumps(reading("B"))[:40],  # 2: truncated
    json.dumps(reading("C")).replace('"interval_minutes": 15', '"interval_minutes": ' + str(10**30)),  # 3
    "[1, 2, 3]",  # 4
    "null",  # 5
    "",  # 6
    json.dumps({"records": [reading("D"), reading("E", "2026-03-28 00:15"), 7]}),  # 7: three records
    json.dumps(reading("F", energy_kwh="abc")),  # 8
    json.dumps(reading("G", energy_kwh=float("inf"))),  # 9: `Infinity`, which JSON has not
    json.dumps(reading("H")).replace("0.5", "1" + "0" * 400),  # 10: beyond float range
    json.dumps(reading("I", meter_id={"id": "I"})),  # 11
    json.dumps(reading("J", start="2026-03-28T00:15:00Z")),  # 12
]


def test_one_rejected_row_is_said_in_the_singular(tmp_path: Path) -> None:
    path = tmp_path / "one_bad.csv"
    path.write_text(
        "meter_id,reading_start,interval_minutes,energy_kwh\n"
        "M1,2026-01-01T00:00:00Z,15,abc\nM1,2026-01-01T00:15:00Z,15,0.2\n"
    )
    args = ["ingest", "meter_readings", str(path), "--landing-dir", str(tmp_path / "landing")]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "1 rejected row is landed as given too: the pipeline quarantines it with the reason" in output


def test_a_jsonl_with_bad_lines_lands_every_line_and_names_the_bad_ones(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(BAD_JSONL) + "\n")
    args = ["ingest", "meter_readings", str(path), "--landing-dir", str(tmp_path / "landing")]
    result = CliRunner().invoke(cli(), args)

    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    for named in (
        "line 2: invalid_json (column 36: Unterminated string",
        f"line 3: invalid_interval_minutes ('{10**30}')",
        "line 4: not_an_object (list)",
        "line 5: not_an_object (null)",
        "line 6: empty_line",
        "line 7 record 2: no_offset_in_reading_start ('2026-03-28 00:15')",
        "line 7 record 3: not_an_object (int)",
        "line 8: invalid_energy_kwh ('abc')",
        "line 9: invalid_energy_kwh ('Infinity')",
        "line 10: invalid_energy_kwh ('1000000",
    ):
        assert named in output
    assert "rows read │ 14" in output and "records │ 3" in output and "rejected: not_an_object │ 3" in output
    (landed,) = list_landed(tmp_path / "landing", "meter_readings")
    lines = landed.path.read_text().split("\n")[:-1]
    assert len(lines) == 14  # 12 lines, one of them three records
    batch = decode(contract_for("meter_readings"), [line.encode() for line in lines], [1] * len(lines))
    assert batch.records_in == 14
    assert batch.records["meter_id"].tolist() == ["A", "D", "J"]
    reasons = {m.record_index: m.reason.partition(" (")[0] for m in batch.malformed}
    assert reasons == {
        1: "malformed:invalid_json",
        2: "malformed:bad_type:interval_minutes",
        3: "malformed:not_an_object",
        4: "malformed:not_an_object",
        5: "malformed:empty_message",
        7: "malformed:timestamp_without_offset:reading_start",
        8: "malformed:not_an_object",
        9: "malformed:bad_type:energy_kwh",
        10: "malformed:bad_type:energy_kwh",
        11: "malformed:bad_type:energy_kwh",
        12: "malformed:bad_type:meter_id",
    }
    assert lines[1] == BAD_JSONL[1]  # a line that is not JSON lands as given


def test_a_csv_with_bad_rows_lands_every_row_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(
        b"meter,start,kwh\n"
        b"A,2026-03-28T00:00:00Z,0.5\n"
        b",2026-03-28T00:00:00Z,0.5\n"
        b"C,2026-03-28 00:00,0.5\n"
        b"D,2026-03-28T00:00:00Z,x\n"
        b"E,2026-03-28T00:00:00Z,0.5,surplus\n"
        b"F\xd7,2026-03-28T00:00:00Z,0.5\n"
        b"G,2026-03-28T00:15:00Z,1e999\n"
        b"H\xc3\xa9,2026-03-28T00:15:00Z,1\n"  # UTF-8 beyond ASCII (H\u00e9): a UTF-8 file, with a bad row
    )
    result = ingest_file(path, "meter_readings", mapping=dict(MAPPING), constants={"interval_minutes": "15"})
    assert (result.rows_read, result.records, len(result.lines)) == (8, 2, 8)
    assert result.examples == [
        "line 3: missing_meter_id",
        "line 4: no_offset_in_reading_start ('2026-03-28 00:00')",
        "line 5: invalid_energy_kwh ('x')",
        "line 6: extra_fields (4 fields, the header has 3)",
        "line 7: not_utf8 (byte 0xd7 in column 'meter')",
        "line 8: invalid_energy_kwh ('1e999')",
    ]
    reasons = {
        i: reason.partition(" (")[0] for i, reason in quarantined("meter_readings", result.lines).items()
    }
    assert reasons == {
        1: "malformed:missing_field:meter_id",
        2: "malformed:timestamp_without_offset:reading_start",
        3: "malformed:bad_type:energy_kwh",
        4: "malformed:not_an_object",
        5: "malformed:invalid_json",
        6: "malformed:bad_type:energy_kwh",
    }
    assert json.loads(result.lines[4]) == ["E", "2026-03-28T00:00:00Z", "0.5", "surplus"]


MAPPING = {"meter_id": "meter", "reading_start": "start", "energy_kwh": "kwh"}


@pytest.mark.parametrize(
    ("name", "body", "exit_code", "message"),
    [
        ("empty.jsonl", b"", 1, "empty.jsonl holds no records"),
        ("blank.jsonl", b"\n \n", 1, "blank.jsonl holds no records"),  # blank lines at the end are not rows
        ("header.csv", b"meter,start,kwh\n", 1, "header.csv holds no records"),
        ("envelopes.jsonl", b'{"records": []}\n{"records": []}\n', 1, "envelopes.jsonl holds no records (an empty file, a header without rows, or only empty record lists)"),
        ("packed.jsonl", b"\x1f\x8b\x08\x00\x00\x00\x00\x00", 2, "packed.jsonl is not JSON Lines text: it holds binary data"),
        ("latin.jsonl", '{"meter_id": "Zoë"}\n'.encode("latin-1"), 2, "latin.jsonl is not UTF-8 text (line 1: byte 0xeb at column 17)"),
        ("array.json", b'[\n  {"meter_id": "A"},\n  {"meter_id": "B"}\n]\n', 2, "array.json is a JSON array, not JSON Lines (one record per line); convert it first, e.g. `jq -c '.[]' array.json"),
        ("compact.json", b'[{"meter_id": "A"}, {"meter_id": "B"}]\n', 2, "compact.json is a JSON array, not JSON Lines"),
        ("pretty.json", b'{\n  "records": [{"meter_id": "A"}]\n}\n', 2, "pretty.json is one JSON document over several lines, not JSON Lines (one record per line); convert it first, e.g. `jq -c . pretty.json"),
        ("latin.csv", "meter,start,kwh\nA,x,1\nZoë,x,1\n".encode("latin-1"), 2, "latin.csv is not UTF-8 text (line 3: byte 0xeb at column 3)"),
    ],
)  # fmt: skip
def test_files_without_records_or_text_say_so_without_a_traceback(
    tmp_path: Path, name: str, body: bytes, exit_code: int, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(body)
    args = ["ingest", "meter_readings", str(path), "--landing-dir", str(tmp_path / "landing")]
    result = CliRunner().invoke(
        cli(), [*args, *(f"--map={f}={c}" for f, c in MAPPING.items() if name.endswith("csv"))]
    )
    assert result.exit_code == exit_code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # not a traceback
    assert message in " ".join(result.output.replace("│", " ").split())
    assert (list_landed(tmp_path / "landing", "meter_readings") != []) == (exit_code == 0)


def landed_and_decoded(tmp_path: Path, source: str, result: IngestResult) -> DecodedBatch:
    """Land `result` as `metrify ingest` does, read the file back as the pipeline does and decode it;
    asserts the accounting: every row read is one record the decoder sees, and it quarantines
    exactly the rows the reader rejected."""
    landed = land_lines(tmp_path / "landing", source, result.lines)
    messages = landed_messages(landed.path.read_bytes())
    batch = decode(contract_for(source), messages, [1] * len(messages))
    assert batch.records_in == result.rows_read
    assert len(batch.malformed) == sum(result.rejected.values())
    assert len(batch.records) == result.records
    return batch


def ingested(
    tmp_path: Path, name: str, body: bytes, source: str = "meter_readings", **options: Any
) -> IngestResult:
    path = tmp_path / name
    path.write_bytes(body)
    return ingest_file(path, source, **options)


READINGS_HEADER = b"meter_id,reading_start,interval_minutes,energy_kwh\n"


@pytest.mark.parametrize(
    ("body", "reasons", "records"),
    [
        # An unclosed quote: pandas' python engine dropped every row from it to the end of the file.
        (b'm1,2024-01-01T00:00:00Z,15,1.0\nm1,"2024-01-01T00:15:00Z,15,1.0\nm1,2024-01-01T00:30:00Z,15,1.0\n'
         b"m1,2024-01-01T00:45:00Z,15,1.0\n", {1: "unclosed_quote"}, ["2024-01-01T00:00:00+00:00", "2024-01-01T00:30:00+00:00", "2024-01-01T00:45:00+00:00"]),
        # Extra fields on the first row: the C engine cut them silently and took the row.
        (b"m1,2024-01-01T00:00:00Z,15,1.0,E1,E2\nm1,2024-01-01T00:15:00Z,15,1.0\n", {0: "extra_fields"}, ["2024-01-01T00:15:00+00:00"]),
        # One extra field on the first row: pandas took the first column for an index.
        (b"m1,2024-01-01T00:00:00Z,15,1.0,E\nm1,2024-01-01T00:15:00Z,15,1.0\n", {0: "extra_fields"}, ["2024-01-01T00:15:00+00:00"]),
        # Extra fields, one of them quoted over two lines: landed as two lines, counted twice.
        (b'm1,2024-01-01T00:00:00Z,15,1.0\nm1,2024-01-01T00:15:00Z,15,1.0,"a\nb"\n', {1: "extra_fields"}, ["2024-01-01T00:00:00+00:00"]),
    ],
)  # fmt: skip
def test_csv_rows_pandas_would_cut_or_drop_are_rejected_and_landed(
    tmp_path: Path, body: bytes, reasons: dict[int, str], records: list[str]
) -> None:
    result = ingested(tmp_path, "r.csv", READINGS_HEADER + body)
    batch = landed_and_decoded(tmp_path, "meter_readings", result)
    assert {m.record_index: m.reason.partition(" (")[0] for m in batch.malformed} == {
        i: "malformed:not_an_object" if why == "extra_fields" else "malformed:invalid_json"
        for i, why in reasons.items()
    }
    assert result.rejected == dict(Counter(reasons.values()))
    assert [str(t) for t in batch.records["reading_start"]] == [t.replace("T", " ") for t in records]


def test_a_quoted_newline_in_a_row_with_extra_fields_lands_its_fields_whole(tmp_path: Path) -> None:
    result = ingested(tmp_path, "r.csv", READINGS_HEADER + b'm1,2024-01-01T00:15:00Z,15,1.0,"a,\nb"\n')
    assert json.loads(result.lines[0]) == ["m1", "2024-01-01T00:15:00Z", "15", "1.0", "a,\nb"]
    assert result.examples == ["line 2: extra_fields (5 fields, the header has 4)"]


def test_a_field_over_128_kib_is_read_whichever_reads_the_csv(tmp_path: Path) -> None:
    # Python's csv module raised csv.Error (a traceback) on a field over its limit, 131,072 characters.
    header = READINGS_HEADER.rstrip(b"\n") + b",note\n"
    body = (
        header
        + b"m1,2024-01-01T00:00:00Z,15,1.0,x,EXTRA\nm2,2024-01-01T00:00:00Z,15,1.0,"
        + b"n" * 200_000
        + b"\n"
    )
    limit = csv.field_size_limit()
    result = ingested(tmp_path, "long.csv", body)
    assert (result.rows_read, result.records, result.rejected) == (2, 1, {"extra_fields": 1})
    assert csv.field_size_limit() == limit
    landed_and_decoded(tmp_path, "meter_readings", result)


def test_a_quoted_empty_row_is_a_row_whichever_reads_the_csv(tmp_path: Path) -> None:
    # pandas reads `""` and `" "` as rows, blank lines not; Python's csv module gives `""` the fields
    # of a blank line, and the exact reader (a file with extra fields) dropped both rows unseen.
    rows = b'm1,2024-01-01T00:00:00Z,15,1.0\n""\n" "\n   \n\t\n\nm2,2024-01-01T00:15:00Z,15,1.0\n'
    fast = ingested(tmp_path, "fast.csv", READINGS_HEADER + rows)
    exact = ingested(tmp_path, "exact.csv", READINGS_HEADER + rows + b"m3,2024-01-01T00:30:00Z,15,1.0,E\n")
    assert (fast.rows_read, fast.rejected) == (4, {"missing_meter_id": 2})
    assert (exact.rows_read, exact.rejected) == (5, {"extra_fields": 1, "missing_meter_id": 2})
    assert exact.examples[:2] == fast.examples == ["line 3: missing_meter_id", "line 4: missing_meter_id"]
    landed_and_decoded(tmp_path, "meter_readings", exact)


def test_hour_only_offsets_are_instants_in_the_mapping_and_openstef(tmp_path: Path) -> None:
    # PostgreSQL writes timestamptz as `+01`; with --timezone this was a TypeError traceback.
    body = READINGS_HEADER + b"m1,2024-01-01T00:00:00+01,15,1.0\nm1,2024-01-01T00:15:00Z,15,1.0\n"
    result = ingested(tmp_path, "t.csv", body, timezone="Europe/Paris")
    assert [json.loads(line)["reading_start"] for line in result.lines] == [
        "2024-01-01T00:00:00+01:00",
        "2024-01-01T01:15:00+01:00",
    ]
    landed_and_decoded(tmp_path, "meter_readings", result)
    # Mixed with a naive row, pandas refused the whole file ("Mixed timezones").
    mixed = ingested(
        tmp_path,
        "m.csv",
        READINGS_HEADER + b"m1,2024-01-01T00:00:00+01,15,1.0\nm1,2024-01-01T00:15:00,15,1.0\n",
    )
    assert mixed.rejected == {"no_offset_in_reading_start": 1} and mixed.records == 1
    landed_and_decoded(tmp_path, "meter_readings", mixed)
    openstef = (
        b",load,temp,windspeed,pressure,humidity,rain\n"
        b"2020-10-31 00:45:00+00:00,-3.9,13.1,2.8,102182,0.9,0.05\n"
        b"2020-10-31 01:00:00+01,abc,13.1,2.8,102182,0.9,0.05\n"
        b"2020-10-31 01:15:00,1,1,1,1,1,1\n"
    )
    readings = ingested(tmp_path, "o.csv", openstef, preset="openstef")
    assert readings.rejected == {"invalid_load": 1} and readings.records == 2
    batch = landed_and_decoded(tmp_path, "meter_readings", readings)
    assert [str(t) for t in batch.records["reading_start"]] == [
        "2020-10-31 00:45:00+00:00",
        "2020-10-31 01:15:00+00:00",
    ]
    result = CliRunner().invoke(
        cli(),
        [
            "ingest",
            "meter_readings",
            str(tmp_path / "t.csv"),
            "--timezone",
            "Europe/Paris",
            "--landing-dir",
            str(tmp_path / "cli"),
        ],
    )
    assert result.exit_code == 0 and result.exception is None, result.output


def test_an_offset_no_place_has_is_invalid_in_every_form(tmp_path: Path) -> None:
    """Real offsets run from -12:00 to +14:00: +14:30 (read as 09:30 UTC the day before), +99:59 and
    an hour-only +15 are rejected and landed as given, for the decoder to quarantine."""
    rows = [
        "2024-01-01T00:00:00+14:00",  # Kiribati's Line Islands
        "2024-01-01T00:00:00-12:00",
        "2024-01-01T00:00:00+14",  # hour-only, as PostgreSQL writes one
        "2024-01-01T00:00:00+14:30",
        "2024-01-01T00:00:00+99:59",
        "2024-01-01T00:00:00-1230",
        "2024-01-01T00:00:00+15",
    ]
    body = READINGS_HEADER + "".join(f"m1,{t},15,1.0\n" for t in rows).encode()
    result = ingested(tmp_path, "o.csv", body, timezone="Europe/Paris")
    assert result.records == 3 and result.rejected == {"invalid_reading_start": 4}
    batch = landed_and_decoded(tmp_path, "meter_readings", result)
    assert [m.reason for m in batch.malformed] == ["malformed:bad_offset:reading_start"] * 3 + [
        "malformed:bad_timestamp:reading_start"  # +15: the contract has no hour-only offset
    ]
    assert [json.loads(line)["reading_start"] for line in result.lines[3:]] == rows[3:]


def test_a_lone_surrogate_escape_rejects_its_line_not_the_file(tmp_path: Path) -> None:
    body = (
        b'{"meter_id":"m\\ud800","reading_start":"2024-01-01T00:00:00Z","interval_minutes":15,"energy_kwh":1.0}\n'
        b'{"meter_id":"m\\ud83d\\ude00","reading_start":"2024-01-01T00:00:00Z","interval_minutes":15,"energy_kwh":1.0}\n'
    )
    result = ingested(tmp_path, "j.jsonl", body)
    assert result.examples == ["line 1: invalid_json (lone surrogate \\ud800)"]
    batch = landed_and_decoded(tmp_path, "meter_readings", result)
    assert batch.records["meter_id"].tolist() == ["m\U0001f600"]
    assert batch.malformed[0].reason.startswith("malformed:invalid_json")


def test_parquet_decimals_are_numbers(tmp_path: Path) -> None:
    table = pa.table(
        {
            "meter_id": ["m1", "m2"],
            "reading_start": pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * 2, pa.timestamp("us", tz="UTC")),
            "interval_minutes": pa.array([Decimal(15), Decimal("15.5")], pa.decimal128(10, 1)),
            "energy_kwh": pa.array([Decimal("1.50"), Decimal("2.25")], pa.decimal128(10, 2)),
        }
    )
    pq.write_table(table, tmp_path / "d.parquet")
    result = ingest_file(tmp_path / "d.parquet", "meter_readings")
    assert result.rejected == {"invalid_interval_minutes": 1}
    assert result.examples == ["row 2: invalid_interval_minutes ('15.5')"]
    batch = landed_and_decoded(tmp_path, "meter_readings", result)
    assert batch.records["energy_kwh"].tolist() == [1.5]


def test_a_parquet_with_two_columns_of_one_name_is_refused_in_plain_words(tmp_path: Path) -> None:
    columns = [pa.array(["m1"]), pa.array(["m2"]), pa.array(["2024-01-01T00:00:00Z"])]
    table = pa.Table.from_arrays(columns, ["meter_id", "meter_id", "reading_start"])
    pq.write_table(table, tmp_path / "d.parquet")
    with pytest.raises(ValueError) as refused:
        ingest_file(tmp_path / "d.parquet", "meter_readings")
    assert str(refused.value) == "d.parquet has more than one column named 'meter_id'; rename them first"


def test_values_json_cannot_write_are_rejected_rows_not_a_traceback(tmp_path: Path) -> None:
    # Parquet types JSON has no name for, in text fields: json.dumps raised TypeError on landing them.
    start = pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * 4, pa.timestamp("us", tz="UTC"))
    table = pa.table(
        {
            "meter_id": ["m1", "m2", "m3", "m4"],
            "reading_start": start,
            "interval_minutes": [15] * 4,
            "energy_kwh": [1.0] * 4,
            "status_flags": pa.array([[b"a"], [b"b", b"c"], [b"\xff"], [b"d"]], pa.list_(pa.binary())),
        }
    )
    pq.write_table(table, tmp_path / "b.parquet")
    for column, value in [
        ("meter_id", pa.array([b"m\xff"] * 4, pa.binary())),
        ("meter_id", pa.array([Decimal("1.5")] * 4, pa.decimal128(5, 2))),
        ("meter_id", start),
    ]:
        pq.write_table(table.set_column(0, column, value), tmp_path / "t.parquet")
        result = ingest_file(tmp_path / "t.parquet", "meter_readings")
        assert result.rejected == {"invalid_meter_id": 4}
        batch = landed_and_decoded(tmp_path, "meter_readings", result)
        assert {m.reason for m in batch.malformed} == {"malformed:bad_type:meter_id"}
    flags = ingest_file(tmp_path / "b.parquet", "meter_readings")
    assert flags.rejected == {"invalid_status_flags": 4}  # binary, not text
    landed_and_decoded(tmp_path, "meter_readings", flags)
    # A value nested deeper than json writes (a JSON line parsed a few calls up can be): RecursionError.
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    frame = pd.DataFrame({"meter_id": [deep, "m2"], "reading_start": ["2024-01-01T00:00:00Z"] * 2})
    nested = map_records(frame, "meter_readings", constants={"interval_minutes": "15", "energy_kwh": "1"})
    assert nested.rejected == {"invalid_meter_id": 1}
    assert nested.examples == ["row 1: invalid_meter_id ('nested too deep to write')"]
    batch = landed_and_decoded(tmp_path, "meter_readings", nested)
    assert [m.reason for m in batch.malformed] == ["malformed:bad_type:meter_id"]


# A column named beyond ASCII makes the file UTF-8 text, whose row of Latin-1 is then one bad row.
OPENSTEF_HEADER = ",load,temp,windspeed,pressure,humidity,rain,météo\n".encode()
OPENSTEF_ROW = b"2020-10-31 00:45:00+00:00,-3.9,13.1,2.8,102182,0.9,0.05\n"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (b"2020-10-31 01:00:00+00:00,-3.9,13.1,2.8,102182,0.9,0.05,,EXTRA\n", "extra_fields"),
        (b"2020-10-31 01:00:00+00:00,1,13\xe9,2.8,102182,0.9,0.05\n", "not_utf8"),
        (b'2020-10-31 01:00:00+00:00,1,"13.1\n', "unclosed_quote"),
    ],
)
def test_openstef_rows_the_csv_reader_rejects_are_landed_not_the_file_refused(
    tmp_path: Path, row: bytes, reason: str
) -> None:
    for source in ("meter_readings", "weather_observations"):
        result = ingested(tmp_path, "o.csv", OPENSTEF_HEADER + OPENSTEF_ROW + row, source, preset="openstef")
        assert (result.rows_read, result.records, result.rejected) == (2, 1, {reason: 1})
        landed_and_decoded(tmp_path, source, result)


def test_openstef_takes_a_datetime_column_after_a_row_number(tmp_path: Path) -> None:
    # As `to_csv` writes a frame with a plain index: renaming the first column made a second
    # `datetime` column, and the preset a traceback (AttributeError).
    body = b",datetime,load\n0,2020-10-31 00:45:00+00:00,-1\n1,2020-10-31 01:00:00+00:00,2\n"
    result = ingested(tmp_path, "o.csv", body, preset="openstef")
    assert [json.loads(line)["reading_start"] for line in result.lines] == [
        "2020-10-31T00:45:00+00:00",
        "2020-10-31T01:00:00+00:00",
    ]
    landed_and_decoded(tmp_path, "meter_readings", result)


@pytest.mark.parametrize("preset", ["openstef", "uci-household"])
def test_an_empty_file_for_a_preset_holds_no_records(tmp_path: Path, preset: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    args = ["ingest", "meter_readings", str(path), "--preset", preset, "--landing-dir", str(tmp_path)]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 1 and "empty.csv holds no records" in result.output, result.output


def test_uci_without_a_column_is_a_usage_error_and_a_repeated_minute_counts_once(tmp_path: Path) -> None:
    path = tmp_path / "u.txt"
    path.write_bytes(b"Date;Time;Global_active_power\n01/02/2007;00:00:00;1.0\n")
    args = [
        "ingest",
        "meter_readings",
        str(path),
        "--preset",
        "uci-household",
        "--landing-dir",
        str(tmp_path),
    ]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "no column Global_reactive_power, Voltage" in " ".join(result.output.replace("│", " ").split())
    minutes = [f"01/02/2007;00:{m:02d}:00;1.2;0.1;240" for m in range(15)]
    body = "Date;Time;Global_active_power;Global_reactive_power;Voltage\n" + "\n".join(minutes * 2) + "\n"
    readings = ingested(tmp_path, "u1.txt", body.encode(), preset="uci-household")
    (reading,) = (json.loads(line) for line in readings.lines)
    assert reading["energy_kwh"] == pytest.approx(15 * 1.2 / 60) and reading["status_flags"] == []
    assert readings.skipped == {"duplicate_minute": 15} and readings.rows_read == 30


def test_a_missing_status_flags_value_is_missing_whatever_its_column_type() -> None:
    """A NaT (a timestamp column mapped to the flags), NaN or None is a reading without flags, not an
    invalid one; a timestamp value is still refused."""
    frame = pd.DataFrame(
        {
            "meter_id": ["A", "B", "C", "D"],
            "reading_start": ["2026-03-28T00:00:00Z"] * 4,
            "interval_minutes": [15] * 4,
            "energy_kwh": [0.1] * 4,
            "status_flags": pd.Series([pd.NaT, pd.NaT, pd.Timestamp("2026-01-01"), pd.NaT]),
        }
    )
    result = map_records(frame, "meter_readings")
    assert result.rejected == {"invalid_status_flags": 1} and result.records == 3
    kept = [json.loads(line) for line in result.lines]
    assert [r.get("status_flags") for r in kept if r["meter_id"] != "C"] == [None, None, None]
    assert not quarantined("meter_readings", [line for line in result.lines if '"C"' not in line])


def test_the_reader_rejects_what_the_decoder_would_and_takes_what_it_takes(tmp_path: Path) -> None:
    base = {"reading_start": "2024-01-01T00:00:00Z", "interval_minutes": 15, "energy_kwh": 1.0}
    rows = [
        {"meter_id": True} | base,  # was landed as "True"
        {"meter_id": 12} | base,  # was landed as "12"
        {"meter_id": "m\u0000"} | base,
        {"meter_id": "m" * 257} | base,
        {"meter_id": "m1", "status_flags": {"a": 1}} | base,  # was ["{'a': 1}"]
        {"meter_id": "m1", "status_flags": [1, None]} | base,  # was ["1", "None"]
        {"meter_id": "m1"} | base | {"interval_minutes": -(2**31)},  # PostgreSQL's integer minimum
        {"meter_id": "m1", "status_flags": ["a", "b"]} | base,
        {"meter_id": "m1", "status_flags": ["f" * 200, "g" * 56]} | base,  # 257 characters joined
        {"meter_id": "m1", "status_flags": ["a", "b\u0000"]} | base,
    ]
    jsonl = ingested(tmp_path, "a.jsonl", "\n".join(json.dumps(r) for r in rows).encode())
    assert jsonl.rejected == {"invalid_meter_id": 4, "invalid_status_flags": 4}
    batch = landed_and_decoded(tmp_path, "meter_readings", jsonl)
    assert [m.reason for m in batch.malformed] == [
        "malformed:bad_type:meter_id",
        "malformed:bad_type:meter_id",
        "malformed:bad_text:meter_id",
        "malformed:bad_text:meter_id",
        "malformed:bad_type:status_flags",
        "malformed:bad_type:status_flags",
        "malformed:bad_text:status_flags",
        "malformed:bad_text:status_flags",
    ]
    assert batch.records["interval_minutes"].tolist() == [-(2**31), 15]
    # A blank required value is no value (it was meter_id "" and accepted).
    blank = ingested(tmp_path, "d.csv", READINGS_HEADER + b"   ,2024-01-01T00:00:00Z,15,1.0\n")
    assert blank.rejected == {"missing_meter_id": 1}
    landed_and_decoded(tmp_path, "meter_readings", blank)


def test_blank_cells_are_missing_whatever_the_type(tmp_path: Path) -> None:
    """A whitespace-only number or timestamp is no value (docs/ingest-mapping.md), not an invalid one:
    a trial's `" "` energy was `invalid_energy_kwh (' ')`."""
    body = READINGS_HEADER + (
        b"m1,2024-01-01T00:00:00Z,15, \nm1,  ,15,1.0\nm1,2024-01-01T00:30:00Z,\t,1.0\n"
        b"m1,2024-01-01T00:45:00Z,15,2.0\n"
    )
    result = ingested(tmp_path, "blank.csv", body)
    assert result.rejected == {
        "missing_energy_kwh": 1,
        "missing_interval_minutes": 1,
        "missing_reading_start": 1,
    }
    assert result.examples[0] == "line 2: missing_energy_kwh"
    batch = landed_and_decoded(tmp_path, "meter_readings", result)
    assert [m.reason for m in batch.malformed] == [
        "malformed:missing_field:energy_kwh",
        "malformed:missing_field:reading_start",
        "malformed:missing_field:interval_minutes",
    ]
    assert batch.records["energy_kwh"].tolist() == [2.0]


def test_jsonl_bom_empty_records_and_objects_without_keys(tmp_path: Path) -> None:
    record = json.dumps(reading("A"))
    body = f'\ufeff{record}\n{{"records": []}}\n\n{record}\n\ufeff{record}\n\n\n'.encode()
    result = ingested(tmp_path, "b.jsonl", body)
    # The file's BOM put record 1 in quarantine; one inside the file is not JSON (to orjson either).
    # A blank line inside is a row, those at the end are not.
    assert (result.rows_read, result.records) == (4, 2)
    assert result.rejected == {"empty_line": 1, "invalid_json": 1}
    assert result.notes == {"lines_without_records": 1}  # it disappeared without mention
    landed_and_decoded(tmp_path, "meter_readings", result)
    # Objects without keys and every field from --set: "zip() argument 3 is shorter".
    constants = {
        "meter_id": "M",
        "reading_start": "2024-01-01T00:00:00Z",
        "interval_minutes": "15",
        "energy_kwh": "1",
    }
    empty = ingested(tmp_path, "e.jsonl", b"{}\n{}\n", constants=constants)
    assert (empty.rows_read, empty.records) == (2, 2)
    landed_and_decoded(tmp_path, "meter_readings", empty)


def test_set_gives_every_record_its_value_even_over_a_column(tmp_path: Path) -> None:
    body = READINGS_HEADER + b"m1,2024-01-01T00:00:00Z,30,1.0\n"
    result = ingested(tmp_path, "s.csv", body, constants={"interval_minutes": "15"})
    assert json.loads(result.lines[0])["interval_minutes"] == 15
    with pytest.raises(ValueError, match="--map and --set for the same field: interval_minutes"):
        ingested(
            tmp_path, "s.csv", body, mapping={"interval_minutes": "x"}, constants={"interval_minutes": "15"}
        )


def test_a_stray_quote_closed_lines_later_does_not_merge_rows(tmp_path: Path) -> None:
    # pandas' C parser read rows 1-2 as one row of two fields, without an error.
    body = (
        b'm1,"2024-01-01T00:15:00Z,15,1.0\nm1,2024-01-01T00:30:00Z,15,1.0"\nm2,2024-01-01T01:15:00Z,15,1.0\n'
    )
    result = ingested(tmp_path, "q.csv", READINGS_HEADER + body)
    assert result.examples == [
        "line 2: unclosed_quote (a quote never closes)",
        "line 3: invalid_energy_kwh ('1.0\"')",
    ]
    batch = landed_and_decoded(tmp_path, "meter_readings", result)
    assert batch.records["meter_id"].tolist() == ["m2"]
    # A quoted newline in a row with every field is a field over two lines, as CSV has it.
    quoted = ingested(tmp_path, "n.csv", READINGS_HEADER + b'"m\n1",2024-01-01T00:30:00Z,15,1.0\n')
    assert json.loads(quoted.lines[0])["meter_id"] == "m\n1" and quoted.records == 1
    # Two stray quotes in the same field of two rows made one row of every field: the second
    # quote "closed" the first and the text after it ran on in the field (both parsers).
    body = (
        b'm1,"2024-01-01T00:15:00Z,15,1.0\nm2,"2024-01-01T00:30:00Z,15,1.0\nm3,2024-01-01T00:45:00Z,15,1.0\n'
    )
    strays = ingested(tmp_path, "s.csv", READINGS_HEADER + body)
    assert (strays.rows_read, strays.rejected) == (3, {"unclosed_quote": 2})
    batch = landed_and_decoded(tmp_path, "meter_readings", strays)
    assert batch.records["meter_id"].tolist() == ["m3"]


CR_HEADER = b"meter_id,reading_start,interval_minutes,energy_kwh,note"


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_a_carriage_return_inside_a_line_stays_in_its_row(tmp_path: Path, eol: bytes) -> None:
    # pandas (and csv, as the file was opened) broke a row at a carriage return alone: row 2 was
    # read as m2 with half its note and a row "cd" without a reading, row 3 as m3 with 1 minute
    # and a row "5" with the wrong values in the wrong columns, and later rows were numbered too far.
    rows = [
        b'm1,2024-01-01T00:00:00Z,15,1.0,"quoted\rnote"',
        b"m2,2024-01-01T00:15:00Z,15,2.0,ab\rcd",
        b"m3,2024-01-01T00:30:00Z,1\r5,3.0,x",
        b"m4,2024-01-01T00:45:00Z,15,x,y",
        b"m5,2024-01-01T01:00:00Z,15,5.0,z\r\r",  # CR CR LF (a CRLF file written again) ends a line
    ]
    path = tmp_path / "cr.csv"
    path.write_bytes(eol.join([CR_HEADER, *rows]) + eol)
    assert read_csv(path).frame["note"].tolist() == ["quoted\rnote", "ab\rcd", "x", "y", "z"]
    result = ingest_file(path, "meter_readings")
    assert (result.rows_read, result.records) == (5, 3)
    assert result.examples == [
        "line 4: invalid_interval_minutes ('1\\r5')",
        "line 5: invalid_energy_kwh ('x')",
    ]
    batch = landed_and_decoded(tmp_path, "meter_readings", result)
    assert batch.records["meter_id"].tolist() == ["m1", "m2", "m5"]
    # A line that ends in a CR alone (line endings mixed) is one row with the next: more fields
    # than the header, quarantined as one row with both, and the reason says why.
    mixed = (
        CR_HEADER + b"\nm1,2024-01-01T00:00:00Z,15,1.0,x\rm2,2024-01-01T00:15:00Z,15,2.0,y\nm3,bad,15,1,z\n"
    )
    result = ingested(tmp_path, "mixed.csv", mixed)
    assert result.examples == [
        "line 2: extra_fields (9 fields, the header has 5; a carriage return inside the row: are line endings mixed?)",
        "line 3: invalid_reading_start ('bad')",
    ]
    assert json.loads(result.lines[0])[4] == "x\rm2"
    landed_and_decoded(tmp_path, "meter_readings", result)


def test_a_file_whose_lines_end_in_a_carriage_return_alone_is_read_line_by_line(tmp_path: Path) -> None:
    # Classic Mac OS and Excel's "CSV (Macintosh)" end lines with CR alone (Excel breaks a quoted
    # cell's lines with LF): a line feed there is part of its field, quoted or not, as a CR is in a
    # file of LF lines; pandas broke row 3 at its line feed.
    body = (
        CR_HEADER + b"\r"
        b'm1,2024-01-01T00:00:00Z,15,1.0,"two\nlines"\r'
        b"m2,2024-01-01T00:15:00Z,15,2.0,x,EXTRA\r"
        b"m3,2024-01-01T00:30:00Z,15,x,a\nb\r"
        b"m4,2024-01-01T00:45:00Z,15,4.0,z\r"
    )
    path = tmp_path / "mac.csv"
    path.write_bytes(body)
    assert read_csv(path).frame["note"].tolist() == ["two\nlines", "a\nb", "z"]
    result = ingest_file(path, "meter_readings")
    assert (result.rows_read, result.records) == (4, 2)
    assert result.examples == [
        "line 3: extra_fields (6 fields, the header has 5)",
        "line 4: invalid_energy_kwh ('x')",
    ]
    batch = landed_and_decoded(tmp_path, "meter_readings", result)
    assert batch.records["meter_id"].tolist() == ["m1", "m4"]
    # A file in another encoding is refused naming its line, counted by CR (it said line 1).
    path.write_bytes(b"meter_id,note\rm1,x\rm2,\xe9\r")
    with pytest.raises(ValueError, match=r"line 3: byte 0xe9 at column 4"):
        ingest_file(path, "meter_readings")


def test_the_presets_keep_a_row_with_a_carriage_return_whole(tmp_path: Path) -> None:
    # UCI: a stray CR in the first minute's Voltage made a third row (skipped as invalid_timestamp)
    # and the reading's voltage_v the mean of 2 and 240, 121.0; now the minute's voltage is not a
    # number (counted as invalid_Voltage), and two rows are read.
    uci = (
        b"Date;Time;Global_active_power;Global_reactive_power;Voltage\n"
        b"01/02/2007;00:00:00;1.0;0.1;2\r40\n01/02/2007;00:01:00;1.0;0.1;240\n"
    )
    readings = ingested(tmp_path, "u.txt", uci, preset="uci-household")
    assert (readings.rows_read, readings.skipped) == (2, {})
    assert readings.notes["voltage_v: invalid_Voltage"] == 1
    # OpenSTEF: a CR in a load is that row's invalid_load, not two rows.
    row = b"2020-10-31 01:00:00+00:00,1\r.5,13.1,2.8,102182,0.9,0.05\n"
    result = ingested(tmp_path, "o.csv", OPENSTEF_HEADER + OPENSTEF_ROW + row, preset="openstef")
    assert (result.rows_read, result.records) == (2, 1)
    assert result.examples == ["line 3: invalid_load ('1\\r.5')"]
    landed_and_decoded(tmp_path, "meter_readings", result)


@pytest.mark.parametrize("extra", [b"", b"m1,2024-01-01T01:00:00Z,15,1.0,E\n"], ids=["pandas", "exact"])
def test_a_csv_row_is_named_by_its_line_in_the_file(tmp_path: Path, extra: bytes) -> None:
    """The header is line 1 and blank lines count, as an editor numbers them: a trial's missing energy
    on line 12 was `row 11` at ingest and `#10` in `dlq list`."""
    body = READINGS_HEADER + b"m1,2024-01-01T00:00:00Z,15,1.0\n\nm1,2024-01-01T00:15:00Z,15,\n" + extra
    result = ingested(tmp_path, "lines.csv", body)
    assert result.examples[0] == "line 4: missing_energy_kwh"
    assert result.examples[1:] == (["line 5: extra_fields (5 fields, the header has 4)"] if extra else [])
