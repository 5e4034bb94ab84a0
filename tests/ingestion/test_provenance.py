"""Where a batch came from: `metrify ingest` keeps the file it was given and each record's line with the
batch, so `metrify dlq` names a quarantined record by the line an editor opens, and `metrify status`
the file of the newest batch; a Kafka record is named by its offset."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.ingestion.landing import land_batches
from metrify_assets.ingestion.provenance import Places, read_origin, runs
from metrify_assets.ingestion.readers import ingest_file
from metrify_assets.ingestion.readers.csvfile import read_csv
from metrify_assets.orchestration.status import last_batch_files
from metrify_assets.resources import PostgresResource
from tests.ingestion.test_ingest_accounting import ingest_and_run

SOURCE = "meter_readings"


def test_places_are_kept_as_runs_and_read_back_by_record_index() -> None:
    places = ["line 2", "line 3", "line 5", "line 7 record 1", "line 7 record 2", "row 9", "here"]
    kept = runs(places)
    assert kept == [
        ("line ", 2, 2),
        ("line ", 5, 1),
        ("line 7 record ", 1, 2),
        ("row ", 9, 1),
        ("here", None, 1),
    ]
    assert [Places(kept, len(places)).at(i) for i in range(len(places))] == places
    assert Places(kept, len(places) + 1).at(0) is None  # a batch of another count: no place is trusted
    assert Places(kept, len(places)).at(len(places)) is None and Places(None, 1).at(0) is None


def test_each_landing_file_of_a_split_file_keeps_the_lines_of_its_own_records(tmp_path: Path) -> None:
    lines = [json.dumps({"n": n}) for n in range(5)]
    places = ["line 2", "line 3", "line 5", "line 6", "line 7"]
    files = land_batches(tmp_path, SOURCE, lines, per_file=2, source_file="exports/v.csv", places=places)
    origins = [read_origin(f.path) for f in files]
    assert [o.file for o in origins if o] == ["exports/v.csv"] * 3
    assert [o.lines for o in origins if o] == [[("line ", 2, 2)], [("line ", 5, 2)], [("line ", 7, 1)]]
    # Files landed without an origin (`metrify simulate`, the API) have none.
    (plain,) = land_batches(tmp_path / "other", SOURCE, lines[:1])
    assert read_origin(plain.path) is None and not plain.origin_path.exists()


@pytest.mark.parametrize(
    "body",
    [
        b'{"file": "exports/v.csv", "lines": [["line ", 2',  # cut short
        b'{"file": "exports/v.csv", "lines": [["line ", 2]]}',  # a run of two values
        b'{"file": "exports/v.csv", "lines": [["line ", "2", 5]]}',  # a number as text
        b'{"file": "exports/v.csv", "lines": [["line ", -1, 5]]}',
        b'{"file": 7}',
        b"[1, 2]",
    ],
)
def test_an_origin_file_that_is_not_one_is_no_origin_and_holds_nothing_up(
    tmp_path: Path, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A side file cut short or edited by hand must not fail its batch's run on every retry (it raised
    ValueError or TypeError in the run): its records are ingested without places, with a warning."""
    (landed,) = land_batches(
        tmp_path, SOURCE, [json.dumps({"n": 1})], source_file="exports/v.csv", places=["line 2"]
    )
    landed.origin_path.write_bytes(body)
    assert read_origin(landed.path) is None
    assert "is not an origin file" in caplog.text and str(landed.origin_path) in caplog.text


def test_a_row_of_separators_after_a_cell_over_two_lines_keeps_its_line(tmp_path: Path) -> None:
    """A tab-separated file: a line holding only a tab is a row of empty fields to pandas, not a blank
    line, and a quoted cell over two lines made up for it in the count of lines that were not blank:
    the rows after the cell were named one line early (the row of tabs as line 3, the cell's second line)."""
    path = tmp_path / "export.tsv"
    path.write_bytes(
        b"meter_id\treading_start\tinterval_minutes\tenergy_kwh\n"  # line 1
        b'"PROV-TAB\n1"\t2026-02-11T00:00:00Z\t15\t1.0\n'  # lines 2-3: a meter id over two lines
        b"\t\n"  # line 4: a row without values
        b"PROV-TAB-2\t2026-02-11T00:15:00Z\t15\t1.0\n"  # line 5
    )
    assert read_csv(path, "\t").locations == ["line 2", "line 4", "line 5"]
    result = ingest_file(path, SOURCE, fmt="csv", sep="\t")
    assert result.examples == ["line 4: missing_meter_id"]
    assert result.places == ["line 2", "line 4", "line 5"]
    # Without the cell over two lines (pandas' path), the row of tabs is a row too, at its line.
    path.write_bytes(
        b"meter_id\treading_start\tinterval_minutes\tenergy_kwh\n\t\n\n"
        b"PROV-TAB-2\t2026-02-11T00:15:00Z\t15\t1.0\n"
    )
    assert read_csv(path, "\t").locations == ["line 2", "line 4"]


def test_dlq_names_a_file_record_by_its_line_and_a_kafka_record_by_its_offset(
    tmp_path: Path, pg_resource: PostgresResource, pg: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = Path("exports/vendor.csv")  # kept as typed: relative to where the command ran
    path.parent.mkdir()
    path.write_text(
        "meter_id,reading_start,interval_minutes,energy_kwh\n"  # line 1
        "PROV-1,2026-02-11T00:00:00Z,15,1.0\n"  # line 2: record 0, stored
        "\n"  # line 3: blank, no row
        "PROV-1,2026-02-11T00:15:00Z,15,abc\n"  # line 4: record 1, rejected by the reader
        "PROV-1,2026-02-11T00:30:00Z,15,5000\n"  # line 5: record 2, rejected by the record rules
        "PROV-1,2026-02-11T00:45:00Z,15,1.0\n"  # line 6: record 3, stored
    )
    run = ingest_and_run(tmp_path, pg_resource, monkeypatch, path)
    assert run.ledger == (4, 2, 2) and [i for i, _ in run.quarantined] == [1, 2]
    (batch_id,) = pg.execute(
        "SELECT batch_id FROM ops.ingest_ledger WHERE source_file = %s", (str(path),)
    ).fetchone() or (None,)
    assert batch_id is not None

    # A Kafka batch's dead letter: no file, its offset (the record's version) is where it is.
    pg.execute(
        "INSERT INTO ops.ingest_ledger (batch_id, source, origin, origin_ref, raw_key, records_in, accepted, "
        "flagged, quarantined, processed_at) VALUES ('t.prov-0-50-60', 'grid_status', 'kafka', "
        "'t.prov-0-50-60', 'k', 10, 9, 0, 1, now())"
    )
    pg.execute(
        "INSERT INTO ops.quarantine (batch_id, record_index, source, payload, reasons, record_version) "
        "VALUES ('t.prov-0-50-60', 7, 'grid_status', '{}', 'malformed:missing_field:node_id', 57)"
    )
    pg.commit()

    runner = CliRunner()
    listed = runner.invoke(app, ["dlq", "list", "--json"], catch_exceptions=False)
    records = {(r["batch_id"], r["record_index"]): r for r in json.loads(listed.stdout)["records"]}
    assert [(r["source_file"], r["where"]) for r in records.values()] == [
        (None, "offset 57"),
        (str(path), "line 5"),
        (str(path), "line 4"),
    ]
    table = runner.invoke(app, ["dlq", "list"], catch_exceptions=False).output
    assert f"{path} line 4" in table and f"{path} line 5" in table and "offset 57" in table
    shown = json.loads(runner.invoke(app, ["dlq", "show", batch_id, "2"], catch_exceptions=False).stdout)
    assert (shown["source_file"], shown["where"], shown["record_index"]) == (str(path), "line 5", 2)
    assert "energy_implausible" in shown["reasons"]

    # The same records under another name are the same batch, which keeps the first file's name.
    copy = path.with_name("copy.csv")
    copy.write_bytes(path.read_bytes())
    again = runner.invoke(
        app, ["ingest", SOURCE, str(copy), "--landing-dir", "landing"], catch_exceptions=False
    )
    assert "landed before with the same records" in again.output and f"from {path} " in again.output

    # `metrify status`: the newest batch's file; a Kafka range's is none.
    files = last_batch_files(pg)
    assert files["meter_readings"] == str(path) and files["grid_status"] is None
