"""A corrected file that replaces an earlier one (`metrify ingest --replaces`), through the CLI and the
pipeline's ingest run on real PostgreSQL: the reading the earlier file filed under a wrong meter id is
withdrawn (gone from ops, its day stamped for rebuilding, audited with counts), a rebuild from raw
keeps it withdrawn, VEE audits the corrected value with the batches before and after, and a batch
that cannot be replaced is refused with nothing landed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from metrify_assets.definitions import defs as load_defs
from metrify_assets.ingestion.landing import LandedFile, list_landed
from metrify_assets.ingestion.sensors import BATCH_TAG
from metrify_assets.lifecycle import holds
from metrify_assets.lifecycle.rollback import rebuild_from_raw
from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.store import run_days
from metrify_assets.orchestration.instance import execute_job
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.lake import Lake
from tests.ingestion.test_readers import cli

pytestmark = pytest.mark.postgres
SOURCE = "meter_readings"
DAY = date(2026, 3, 9)  # the test's own day: tests share the database
HEADER = "Zaehlpunkt;Zeitstempel;Verbrauch_kWh"
# The vendor's export of a day's first hour for two meters; v1 has one row under a wrong meter id
# ("RPL 0002" for "RPL0002") and a wrong value (0.311), which v2 corrects (0.299).
ROWS = {f"RPL000{m}": [f"2026-03-09 00:{q * 15:02d}:00" for q in range(4)] for m in (1, 2)}
V1 = [
    HEADER,
    *(f"RPL0001;{t};0,100" for t in ROWS["RPL0001"]),
    f"RPL0002;{ROWS['RPL0002'][0]};0,311",
    f"RPL 0002;{ROWS['RPL0002'][1]};0,145",
    *(f"RPL0002;{t};0,200" for t in ROWS["RPL0002"][2:]),
]
V2 = [
    HEADER,
    *(f"RPL0001;{t};0,100" for t in ROWS["RPL0001"]),
    f"RPL0002;{ROWS['RPL0002'][0]};0,299",
    f"RPL0002;{ROWS['RPL0002'][1]};0,145",
    *(f"RPL0002;{t};0,200" for t in ROWS["RPL0002"][2:]),
]
OPTIONS = ["--delimiter", ";", "--decimal-comma", "--timezone", "UTC"]
OPTIONS += ["--map", "meter_id=Zaehlpunkt", "--map", "reading_start=Zeitstempel"]
OPTIONS += ["--map", "energy_kwh=Verbrauch_kWh", "--set", "interval_minutes=15"]


@pytest.fixture
def home(tmp_path: Path, pg_resource: PostgresResource, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    monkeypatch.setenv("COLUMNS", "250")
    return tmp_path


def ingest(home: Path, name: str, lines: list[str], *extra: str, code: int = 0) -> str:
    path = home / name
    path.write_text("\n".join(lines) + "\n")
    args = ["ingest", SOURCE, str(path), *OPTIONS, "--landing-dir", str(home / "landing"), *extra]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())


def run(home: Path) -> str:
    """The pipeline's ingest run of the newest landing file (as the sensor's run would), its batch id."""
    landed: LandedFile = list_landed(home / "landing", SOURCE)[-1]
    execute_job(
        load_defs(), f"ingest_{SOURCE}_job", dg.DagsterInstance.ephemeral(),
        run_config={"ops": {f"ingest_{SOURCE}": {"config": {"landing_file": str(landed.path)}}}},
        tags={BATCH_TAG: landed.batch_id},
    )  # fmt: skip
    landed.path.unlink()  # as the sensor's run moves it out of the way
    return landed.batch_id


def stored(conn: psycopg.Connection) -> dict[tuple[str, str], tuple[float, str]]:
    rows = conn.execute(
        "SELECT meter_id, reading_start, energy_kwh, batch_id FROM ops.meter_readings "
        "WHERE meter_id LIKE 'RPL%%' ORDER BY 1, 2"
    ).fetchall()
    return {(m, f"{t.astimezone(UTC):%H:%M}"): (kwh, b) for m, t, kwh, b in rows}


def test_a_corrected_file_withdraws_the_reading_the_earlier_one_filed_under_a_wrong_key(
    home: Path, pg: psycopg.Connection
) -> None:
    ingest(home, "vendor_v1.csv", V1)
    v1 = run(home)
    assert stored(pg)[("RPL 0002", "00:15")] == (0.145, v1)
    run_days(pg, DAY, DAY, VeeConfig(), now=pd.Timestamp("2026-03-11T00:00:00Z"))
    pg.commit()

    # Refused, nothing recorded or landed: an unknown batch, another source's.
    said = ingest(home, "vendor_v2.csv", V2, "--replaces", "landing-meter_readings-nosuchbatch", code=2)
    assert "no batch in ops.ingest_ledger" in said
    other = pg.execute(
        "SELECT batch_id FROM ops.ingest_ledger WHERE source <> 'meter_readings' LIMIT 1"
    ).fetchone()
    if other is not None:
        assert "is of" in ingest(home, "vendor_v2.csv", V2, "--replaces", other[0], code=2)
    # A legal hold on the earlier batch's day: withdrawing would delete held readings.
    hold = holds.add(pg, SOURCE, DAY, DAY, "dispute RPL", "legal")
    pg.commit()
    assert "legal hold" in ingest(home, "vendor_v2.csv", V2, "--replaces", v1, code=2)
    holds.release(pg, hold.hold_id, "legal")
    pg.commit()
    assert list_landed(home / "landing", SOURCE) == []
    assert pg.execute(
        "SELECT count(*) FROM ops.batch_replacements WHERE replaces = %s", (v1,)
    ).fetchone() == (0,)

    # The earlier file named by its landing file name, as `metrify ingest` printed it.
    origin = pg.execute("SELECT origin_ref FROM ops.ingest_ledger WHERE batch_id = %s", (v1,)).fetchone()
    assert origin is not None
    said = ingest(home, "vendor_v2.csv", V2, "--replaces", str(home / "landing" / SOURCE / origin[0]))
    assert f"replaces {v1} ({origin[0]}, 8 accepted)" in said
    seq = pg.execute("SELECT max(seq) FROM ops.touched_days").fetchone()
    v2 = run(home)

    after = stored(pg)
    assert ("RPL 0002", "00:15") not in after  # withdrawn
    assert after[("RPL0002", "00:00")] == (0.299, v2)
    assert after[("RPL0002", "00:15")] == (0.145, v2)
    assert len(after) == 8 and {b for _, b in after.values()} == {v2}
    # Counts reconcile: v1 stored 8 rows, v2 stored 7 of their keys again and withdrew 1; each batch
    # accounts for its input (records_in = accepted + quarantined).
    assert pg.execute(
        "SELECT superseded, withdrawn, file_name FROM ops.batch_replacements WHERE batch_id = %s", (v2,)
    ).fetchall() == [(7, 1, "vendor_v2.csv")]
    for batch in (v1, v2):
        ledger = pg.execute(
            "SELECT records_in, accepted + quarantined FROM ops.ingest_ledger WHERE batch_id = %s", (batch,)
        ).fetchone()
        assert ledger == (8, 8)
    # The withdrawn reading's day is stamped for the next `metrify run` to rebuild.
    assert pg.execute(
        "SELECT batch_id, day FROM ops.touched_days WHERE seq > %s AND batch_id = %s AND source = %s "
        "AND day = %s",
        (seq[0] if seq else 0, v2, SOURCE, DAY),
    ).fetchall() == [(v2, DAY), (v2, DAY)]  # the batch's own stamp, and the withdrawal's
    entries = pg.execute(
        "SELECT action, actor, channel, affected, details->>'withdrawn', details->>'file' FROM ops.audit_log "
        "WHERE target = %s ORDER BY id",
        (f"batch:{v2}",),
    ).fetchall()
    assert [(a, ch, n, w, f) for a, _, ch, n, w, f in entries] == [
        ("ingest.replace", "cli", 1, None, "vendor_v2.csv"),
        ("ingest.withdraw", "dagster", 1, "1", None),
    ]
    assert entries[0][1] == entries[1][1]  # by whoever asked for the replacement

    # A rebuild from raw replays v1 then v2, and withdraws again: the same rows, twice over.
    for _ in range(2):
        result = rebuild_from_raw(pg, Lake(str(home / "lake")), SOURCE, DAY, DAY)
        assert result.batches[-2:] == (v1, v2)
        assert stored(pg) == after

    # VEE re-run on the day: the withdrawn interval removed, the corrected value audited with the
    # batch that replaced it.
    run_days(pg, DAY, DAY, VeeConfig(), now=pd.Timestamp("2026-03-11T00:00:00Z"))
    pg.commit()
    audit = pg.execute(
        "SELECT meter_id, status_after, value_before, value_after, batch_before, batch_after "
        "FROM ops.vee_audit WHERE meter_id LIKE 'RPL%%' AND (value_before IS DISTINCT FROM value_after) "
        "AND batch_after IS DISTINCT FROM batch_before ORDER BY audit_id"
    ).fetchall()
    assert ("RPL0002", "actual", 0.311, 0.299, v1, v2) in audit
    assert ("RPL 0002", "removed", 0.145, None, v1, None) in audit
    assert not pg.execute(
        "SELECT 1 FROM ops.vee_readings WHERE meter_id = 'RPL 0002' AND reading_start >= %s",
        (datetime(2026, 3, 9, tzinfo=UTC),),
    ).fetchall()
