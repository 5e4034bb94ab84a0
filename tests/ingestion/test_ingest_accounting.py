"""`metrify ingest` of a file with bad lines, then the pipeline's ingest run on real PostgreSQL: every
line read is accepted or quarantined with a reason (records_in = accepted + quarantined)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from typer.testing import CliRunner

from metrify_assets.definitions import defs as load_defs
from metrify_assets.ingestion.landing import list_landed
from metrify_assets.ingestion.sensors import BATCH_TAG
from metrify_assets.orchestration.instance import execute_job
from metrify_assets.resources import PostgresResource
from tests.ingestion.test_readers import BAD_JSONL, cli

pytestmark = pytest.mark.postgres
SOURCE = "meter_readings"


@dataclass(frozen=True)
class Accounted:
    """What `metrify ingest` printed, and what the pipeline's run of its landing file recorded."""

    output: str  # whitespace collapsed
    ledger: tuple[int, int, int]  # records_in, accepted, quarantined
    quarantined: list[tuple[int, Any]]  # record_index, reasons
    stored: list[tuple[str, datetime]]  # meter_id, reading_start of the batch, in time order


def ingest_and_run(
    tmp_path: Path, pg_resource: PostgresResource, monkeypatch: pytest.MonkeyPatch, path: Path
) -> Accounted:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    landing = tmp_path / "landing"
    result = CliRunner().invoke(cli(), ["ingest", SOURCE, str(path), "--landing-dir", str(landing)])
    assert result.exit_code == 0, result.output
    (landed,) = list_landed(landing, SOURCE)
    execute_job(
        load_defs(), f"ingest_{SOURCE}_job", dg.DagsterInstance.ephemeral(),
        run_config={"ops": {f"ingest_{SOURCE}": {"config": {"landing_file": str(landed.path)}}}},
        tags={BATCH_TAG: landed.batch_id},
    )  # fmt: skip
    with pg_resource.connect() as conn:
        ledger = conn.execute(
            "SELECT records_in, accepted, quarantined FROM ops.ingest_ledger WHERE batch_id = %s",
            (landed.batch_id,),
        ).fetchone()
        quarantined = conn.execute(
            "SELECT record_index, reasons FROM ops.quarantine WHERE batch_id = %s ORDER BY record_index",
            (landed.batch_id,),
        ).fetchall()
        stored = conn.execute(
            f"SELECT meter_id, reading_start FROM ops.{SOURCE} WHERE batch_id = %s ORDER BY 2, 1",
            (landed.batch_id,),
        ).fetchall()
    return Accounted(" ".join(result.output.split()), ledger, quarantined, stored)


def test_every_line_of_a_bad_file_is_accepted_or_quarantined(
    tmp_path: Path, pg_resource: PostgresResource, pg: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(BAD_JSONL) + "\n")
    run = ingest_and_run(tmp_path, pg_resource, monkeypatch, path)
    # 12 lines, one of them {"records": [...]} with three: 14 records in, 3 stored, 11 quarantined.
    assert run.ledger == (14, 3, 11)
    assert sorted(meter for meter, _ in run.stored) == ["A", "D", "J"]
    assert [index for index, _ in run.quarantined] == [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]
    assert all("malformed:" in str(reasons) for _, reasons in run.quarantined)


def test_every_row_of_a_bad_csv_is_accepted_or_quarantined(
    tmp_path: Path, pg_resource: PostgresResource, pg: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review's CSV cases through the real pipeline: an unclosed quote (rows after it were
    dropped), extra fields on the first row (cut) and with a quoted newline (counted twice), an
    hour-only offset (refused the file), a blank meter id (accepted as "")."""
    path = tmp_path / "export.csv"
    path.write_bytes(
        b"meter_id,reading_start,interval_minutes,energy_kwh\n"
        b"m1,2024-01-01T00:00:00Z,15,1.0,E1,E2\n"  # 0: extra_fields
        b'm1,"2024-01-01T00:15:00Z,15,1.0\n'  # 1: unclosed_quote
        b"m1,2024-01-01T00:30:00+01,15,1.0\n"  # 2: stored
        b'm1,2024-01-01T00:45:00Z,15,1.0,"a\nb"\n'  # 3: extra_fields over two lines
        b"   ,2024-01-01T01:00:00Z,15,1.0\n"  # 4: missing_meter_id
        b"m2,2024-01-01T01:15:00Z,15,1.0\n"  # 5: stored
    )
    run = ingest_and_run(tmp_path, pg_resource, monkeypatch, path)
    assert "rows read │ 6" in run.output and "records │ 2" in run.output
    assert run.ledger == (6, 2, 4)
    assert [index for index, _ in run.quarantined] == [0, 1, 3, 4]
    assert [(m, t.isoformat()) for m, t in run.stored] == [
        ("m1", "2023-12-31T23:30:00+00:00"),
        ("m2", "2024-01-01T01:15:00+00:00"),
    ]
