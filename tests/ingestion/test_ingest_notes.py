"""What `metrify ingest` says of a file read wrongly, from a new-user trial: a file of local times
without --timezone landed whole as rejects with exit 0 and no hint."""

from __future__ import annotations

from pathlib import Path

from tests.ingestion.test_ingest_layout_options import run

NAIVE = b"meter_id,reading_start,interval_minutes,energy_kwh\n" + b"".join(
    f"MTR-NOTES-1,2026-11-30 0{h}:00:00,60,0.5\n".encode() for h in range(6)
)


def test_a_file_of_local_times_without_a_timezone_is_refused_with_the_hint(tmp_path: Path) -> None:
    code, output, lines = run(tmp_path, "naive.csv", NAIVE)
    assert code == 1 and lines == []
    assert "rejected: no_offset_in_reading_start 6" in output
    assert "--timezone ZONE (the IANA zone they were written in" in output
    assert "nothing landed: every row was rejected for how the file was read" in output
    # --force lands it for quarantine all the same; with the zone every row is a record.
    code, output, lines = run(tmp_path, "naive.csv", NAIVE, "--force")
    assert code == 0 and len(lines) == 6 and "landed" in output
    (tmp_path / "tz").mkdir()
    code, output, lines = run(tmp_path / "tz", "naive.csv", NAIVE, "--timezone", "Europe/Berlin")
    assert code == 0 and "--timezone ZONE" not in output and "rejected" not in output


def test_a_file_with_records_is_landed_and_hinted_when_most_rows_lack_an_offset(tmp_path: Path) -> None:
    body = NAIVE + b"MTR-NOTES-1,2026-11-30T07:00:00Z,60,0.5\n"
    code, output, lines = run(tmp_path, "mixed.csv", body)
    assert code == 0 and len(lines) == 7
    assert "--timezone ZONE" in output and "nothing landed" not in output
