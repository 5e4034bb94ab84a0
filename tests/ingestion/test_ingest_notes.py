"""What `metrify ingest` says of a file read wrongly or landed before, from a new-user trial: a file of
local times without --timezone landed whole as rejects with exit 0 and no hint, and the same file
ingested twice said `landed` and then `metrify run` said "nothing to do"."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import psycopg
import pytest

from metrify_assets.contracts import METER_READINGS
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.ingestion.landing import landed_messages, list_landed
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.lake import Lake
from tests.ingestion.test_batch import NOW
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


@pytest.mark.postgres
def test_the_same_content_again_is_named_and_not_landed_twice(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    body = b"meter_id,reading_start,interval_minutes,energy_kwh\nMTR-NOTES-2,2026-11-30T00:00:00Z,60,0.5\n"
    code, output, _ = run(tmp_path, "v1.csv", body)
    assert code == 0 and "landed before" not in output
    (first,) = list_landed(tmp_path / "landing", "meter_readings")
    code, output, _ = run(tmp_path, "v1-copy.csv", body, "--live")
    assert code == 0 and list_landed(tmp_path / "landing", "meter_readings") == [first]
    assert f"v1-copy.csv was landed before with the same records: {first.path}" in output
    assert f"(batch {first.batch_id}), not ingested yet" in output and "not landed again" in output
    # Once ingested, it says when.
    spec = BatchSpec(METER_READINGS, first.batch_id, "landing", first.path.name, date(2026, 11, 30))
    messages = landed_messages(first.path.read_bytes())
    process_batch(spec, messages, [first.seq] * len(messages), Lake(str(tmp_path / "lake")), pg, NOW)
    pg.commit()
    code, output, _ = run(tmp_path, "v1.csv", body)
    recorded = pg.execute("SELECT recorded_at FROM ops.ingest_ledger WHERE batch_id = %s", (first.batch_id,))
    (at,) = recorded.fetchone() or (None,)
    assert code == 0 and f"ingested {at:%Y-%m-%d %H:%M} UTC" in output
    # Other content lands.
    code, output, _ = run(tmp_path, "v2.csv", body.replace(b"0.5", b"0.6"))
    assert code == 0 and len(list_landed(tmp_path / "landing", "meter_readings")) == 2
