"""`metrify ingest` of a file with bad lines, then the pipeline's ingest run on real PostgreSQL: every
line read is accepted or quarantined with a reason (records_in = accepted + quarantined)."""

from __future__ import annotations

from pathlib import Path

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


def test_every_line_of_a_bad_file_is_accepted_or_quarantined(
    tmp_path: Path, pg_resource: PostgresResource, pg: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(BAD_JSONL) + "\n")
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
        stored = conn.execute(f"SELECT meter_id FROM ops.{SOURCE} ORDER BY 1").fetchall()
    # 12 lines, one of them {"records": [...]} with three: 14 records in, 3 stored, 11 quarantined.
    assert ledger == (14, 3, 11)
    assert stored == [("A",), ("D",), ("J",)]
    assert [index for index, _ in quarantined] == [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]
    assert all("malformed:" in str(reasons) for _, reasons in quarantined)
