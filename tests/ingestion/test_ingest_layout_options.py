"""`metrify ingest` and the file's layout: a header checked whatever its rows, the separator and
decimal comma of European exports, local times at a DST change, UTF-16 files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from metrify_assets.contracts import contract_for
from metrify_assets.ingestion.decode import decode
from metrify_assets.ingestion.landing import landed_messages, list_landed
from metrify_assets.ingestion.readers import ingest_file
from metrify_assets.ingestion.readers.mapping import map_records
from tests.ingestion.test_readers import cli

MAPPED = ["--map", "meter_id=m", "--map", "reading_start=start", "--map", "energy_kwh=kwh"]
QUARTER = ["--set", "interval_minutes=15"]


def run(tmp_path: Path, name: str, body: bytes, *options: str) -> tuple[int, str, list[str]]:
    """(exit code, output on one line, landed lines) of `metrify ingest meter_readings` on `body`."""
    path = tmp_path / name
    path.write_bytes(body)
    landing = tmp_path / "landing"
    args = ["ingest", "meter_readings", str(path), "--landing-dir", str(landing), *options]
    result = CliRunner().invoke(cli(), args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    lines = [
        m.decode() if isinstance(m, bytes) else str(m)
        for landed in list_landed(landing, "meter_readings")
        for m in landed_messages(landed.path.read_bytes())
    ]
    return result.exit_code, " ".join(result.output.replace("│", " ").split()), lines


def quarantined(lines: list[str]) -> dict[int, str]:
    batch = decode(contract_for("meter_readings"), [line.encode() for line in lines], [1] * len(lines))
    return {m.record_index: m.reason for m in batch.malformed}


SEMICOLONS = b"meter_id;reading_start;interval_minutes;energy_kwh\nMTR-C2;2026-12-04T00:00:00Z;15;0,5\n"


def test_a_semicolon_file_read_with_commas_is_a_usage_error_naming_the_separator(tmp_path: Path) -> None:
    # Its decimal comma splits the row into more fields than the header: every row was rejected,
    # and the missing columns went unchecked (exit 0, junk landed).
    code, output, lines = run(tmp_path, "semi.csv", SEMICOLONS)
    assert code == 2 and lines == []
    assert "no column for required field 'meter_id'" in output
    assert "the header is one column holding ';'" in output and "--delimiter ';'" in output


def test_a_mapped_column_the_file_lacks_is_a_usage_error_when_no_row_could_be_read(tmp_path: Path) -> None:
    body = b"meter,start\nMTR-C3,2026-12-04T00:00:00Z,0,5\nMTR-C3,2026-12-04T00:15:00Z,0,5\n"
    code, output, lines = run(tmp_path, "semi3.csv", body, *MAPPED, *QUARTER)
    assert code == 2 and lines == []
    assert "columns not in the file: kwh, m" in output
    assert "--delimiter" not in output  # a header of two columns: no separator to suggest


def test_delimiter_and_decimal_comma_read_a_european_export(tmp_path: Path) -> None:
    code, output, lines = run(tmp_path, "semi.csv", SEMICOLONS, "--delimiter", ";", "--decimal-comma")
    assert code == 0, output
    assert [json.loads(line) for line in lines] == [
        {"meter_id": "MTR-C2", "reading_start": "2026-12-04T00:00:00+00:00", "interval_minutes": 15, "energy_kwh": 0.5}
    ]  # fmt: skip


def test_without_decimal_comma_the_comma_number_is_rejected_and_the_option_named(tmp_path: Path) -> None:
    code, output, lines = run(tmp_path, "semi.csv", SEMICOLONS, "--delimiter", ";")
    # Its only row rejected for how it was read: refused (nothing landed), unless --force.
    assert code == 1 and lines == [] and "invalid_energy_kwh ('0,5')" in output
    assert "--decimal-comma reads them" in output
    code, output, lines = run(tmp_path, "semi.csv", SEMICOLONS, "--delimiter", ";", "--force")
    assert code == 0 and quarantined(lines) == {0: "malformed:bad_type:energy_kwh"}


def test_decimal_comma_does_not_guess_a_point_and_leaves_text_fields_alone(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "meter_id": ["A,1", "B", "C", "D"],
            "reading_start": ["2026-12-04T00:00:00Z"] * 4,
            "interval_minutes": ["15"] * 4,
            "energy_kwh": ["-1,25", "1.234", "2", "1,2,3"],
        }
    )
    result = map_records(frame, "meter_readings", decimal_comma=True)
    assert result.rejected == {"invalid_energy_kwh": 2}  # `1.234` may be 1234: not guessed
    first, third = json.loads(result.lines[0]), json.loads(result.lines[2])
    assert (first["meter_id"], first["energy_kwh"], third["energy_kwh"]) == ("A,1", -1.25, 2.0)


@pytest.mark.parametrize("tab", ["tab", "\\t", "\t", "TAB"])
def test_tab_separated_files_by_any_name_of_the_tab(tmp_path: Path, tab: str) -> None:
    body = b"meter_id\treading_start\tinterval_minutes\tenergy_kwh\nMTR-1\t2026-12-04T00:00:00Z\t15\t0.5\n"
    code, output, lines = run(tmp_path, "tabs.txt", body, "--delimiter", tab)
    assert code == 0 and len(lines) == 1 and json.loads(lines[0])["energy_kwh"] == 0.5, output


def test_a_tab_separated_header_read_with_commas_names_the_tab(tmp_path: Path) -> None:
    body = b"meter_id\treading_start\tinterval_minutes\tenergy_kwh\nMTR-1\t2026-12-04T00:00:00Z\t15\t0.5\n"
    code, output, _ = run(tmp_path, "tabs.txt", body)
    assert code == 2 and "read it with --delimiter tab" in output


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("a.csv", ["--delimiter", ";;"], "--delimiter takes one character"),
        ("a.csv", ["--delimiter", '"'], "--delimiter takes one character"),
        ("a.jsonl", ["--delimiter", ";"], "--delimiter is for CSV files, not jsonl"),
        ("a.csv", ["--preset", "uci-household", "--delimiter", ";"], "--delimiter not with a preset"),
        ("a.csv", ["--preset", "openstef", "--decimal-comma"], "--decimal-comma not with a preset"),
        ("a.csv", ["--ambiguous", "first"], "--ambiguous must be earlier or later, not 'first'"),
    ],
)
def test_layout_options_that_do_not_fit_are_usage_errors(
    tmp_path: Path, name: str, options: list[str], message: str
) -> None:
    body = b'{"meter_id": "A"}\n' if name.endswith("jsonl") else SEMICOLONS
    code, output, lines = run(tmp_path, name, body, *options)
    assert code == 2 and message in output and lines == []


DST = b"m,start,kwh\nMTR-T1,2026-10-25 01:30,0.1\nMTR-T1,2026-03-29 01:30,0.1\nMTR-T1,2026-10-25 02:30,0.1\n"


def test_local_times_at_a_dst_change_are_rejected_with_the_true_reason_end_to_end(tmp_path: Path) -> None:
    code, output, lines = run(tmp_path, "dst.csv", DST, *MAPPED, *QUARTER, "--timezone", "Europe/London")
    assert code == 0
    assert "line 2: ambiguous_local_time_in_reading_start ('2026-10-25 01:30')" in output
    assert "line 3: nonexistent_local_time_in_reading_start ('2026-03-29 01:30')" in output
    assert "--ambiguous earlier|later" in output
    # Landed with the reason after the time, so the pipeline quarantines them as bad timestamps (not
    # as timestamps without an offset: the user gave --timezone) and the payload says why.
    assert quarantined(lines) == {
        0: "malformed:bad_timestamp:reading_start",
        1: "malformed:bad_timestamp:reading_start",
    }
    first, second = (json.loads(line)["reading_start"] for line in lines[:2])
    assert first == "2026-10-25 01:30 (ambiguous in Europe/London: it happens twice when the clocks go back)"
    assert second == "2026-03-29 01:30 (does not exist in Europe/London: the clocks skip it)"
    assert json.loads(lines[2])["reading_start"] == "2026-10-25T02:30:00+00:00"


@pytest.mark.parametrize(
    ("zone", "ambiguous", "written"),
    [
        ("Europe/London", "earlier", "2026-10-25T01:30:00+01:00"),
        ("Europe/London", "later", "2026-10-25T01:30:00+00:00"),
        ("America/New_York", "earlier", "2026-11-01T01:30:00-04:00"),
        ("America/New_York", "later", "2026-11-01T01:30:00-05:00"),
        # Ireland's zone data has its DST in winter (a negative one): earlier is still earlier.
        ("Europe/Dublin", "earlier", "2026-10-25T01:30:00+01:00"),
        ("Europe/Dublin", "later", "2026-10-25T01:30:00+00:00"),
    ],
)
def test_ambiguous_picks_the_earlier_or_later_instant(zone: str, ambiguous: str, written: str) -> None:
    day = written[:10]
    frame = pd.DataFrame(
        {"meter_id": ["A", "A"], "reading_start": [f"{day} 01:30", f"{day} 12:00"], "energy_kwh": ["1", "1"]}
    )
    result = map_records(frame, "meter_readings", None, {"interval_minutes": "15"}, zone, ambiguous=ambiguous)
    assert result.rejected == {}
    assert json.loads(result.lines[0])["reading_start"] == written


def test_ambiguous_leaves_a_time_that_does_not_exist_rejected() -> None:
    frame = pd.DataFrame({"meter_id": ["A"], "reading_start": ["2026-03-29 01:30"], "energy_kwh": ["1"]})
    result = map_records(
        frame, "meter_readings", None, {"interval_minutes": "15"}, "Europe/London", ambiguous="later"
    )
    assert result.rejected == {"nonexistent_local_time_in_reading_start": 1}


def test_naive_timestamp_columns_at_a_dst_change_get_the_same_reasons() -> None:
    # A Parquet column of naive timestamps, typed: the same reasons as text.
    stamps = pd.Series(pd.to_datetime(["2026-10-25 01:30", "2026-03-29 01:30", "2026-06-01 12:00"]))
    frame = pd.DataFrame(
        {"meter_id": ["A", "A", "A"], "reading_start": stamps, "energy_kwh": [1.0, 1.0, 1.0]}
    )
    result = map_records(frame, "meter_readings", None, {"interval_minutes": "15"}, "Europe/London")
    assert result.rejected == {
        "ambiguous_local_time_in_reading_start": 1,
        "nonexistent_local_time_in_reading_start": 1,
    }
    assert json.loads(result.lines[0])["reading_start"].startswith("2026-10-25T01:30:00 (ambiguous in")
    assert quarantined(result.lines) == {
        0: "malformed:bad_timestamp:reading_start",
        1: "malformed:bad_timestamp:reading_start",
    }
    late = map_records(
        frame, "meter_readings", None, {"interval_minutes": "15"}, "Europe/London", ambiguous="later"
    )
    assert json.loads(late.lines[0])["reading_start"] == "2026-10-25T01:30:00+00:00"


UTF8_TABS = "meter_id\treading_start\tinterval_minutes\tenergy_kwh\nMTR-Ü1\t2026-12-04T00:00:00Z\t15\t0.5\n"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_with_a_byte_order_mark_is_read_as_text(tmp_path: Path, encoding: str) -> None:
    # Excel's "Unicode text": UTF-16 with a byte order mark, tab-separated.
    body = UTF8_TABS.encode(encoding)
    if encoding == "utf-16-be":
        body = b"\xfe\xff" + body
    code, output, lines = run(tmp_path, "unicode.txt", body, "--delimiter", "tab")
    assert code == 0, output
    assert json.loads(lines[0])["meter_id"] == "MTR-Ü1"


def test_utf16_jsonl_with_a_byte_order_mark_is_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    path.write_bytes('{"meter_id": "A", "reading_start": "2026-12-04T00:00:00Z"}\n'.encode("utf-16"))
    result = ingest_file(path, "meter_readings", constants={"interval_minutes": "15", "energy_kwh": "1"})
    assert result.rejected == {} and json.loads(result.lines[0])["meter_id"] == "A"


@pytest.mark.parametrize(("encoding", "named"), [("utf-16-le", "utf-16le"), ("utf-16-be", "utf-16be")])
def test_utf16_without_a_byte_order_mark_is_named_not_called_binary(
    tmp_path: Path, encoding: str, named: str
) -> None:
    code, output, lines = run(tmp_path, "unicode.csv", UTF8_TABS.encode(encoding))
    assert code == 2 and lines == []
    assert "is not UTF-8 text: it looks like UTF-16" in output and f"iconv -f {named} -t utf-8" in output
    assert "binary" not in output


def test_a_byte_order_mark_before_bytes_that_are_not_utf16_is_a_usage_error(tmp_path: Path) -> None:
    code, output, lines = run(tmp_path, "odd.csv", b"\xff\xfem\x00,")  # an odd number of bytes
    assert code == 2 and lines == []
    assert "starts with a UTF-16 byte order mark but is not UTF-16 text" in output


def test_binary_data_is_still_called_binary(tmp_path: Path) -> None:
    code, output, _ = run(tmp_path, "packed.csv", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x03\xab")
    assert code == 2 and "holds binary data" in output
