"""`metrify restore` when an archived day's lake copy is gone, on a real PostgreSQL and a local or S3
(moto server) lake: days ingested through the landing path, copied, their hot rows deleted by the
lifecycle, then a copy (or its manifest) deleted from the lake. The archive restore fails those days in
one line each (the others are restored); `--using raw` rebuilds them from their raw batches, which it
still refuses for a day whose copy is in the lake; a second run says what is true of them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.contracts import METER_READINGS
from metrify_assets.ingestion.assets import landing_spec
from metrify_assets.ingestion.batch import process_batch
from metrify_assets.ingestion.landing import land_lines
from metrify_assets.lifecycle import state
from metrify_assets.lifecycle.retention import delete_hot_day
from metrify_assets.lifecycle.tables import TABLES
from metrify_assets.lifecycle.tiers import copy_to_warm, data_key, manifest_key
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.lake import Lake

pytestmark = pytest.mark.postgres

DAY_OK, DAY_NO_DATA, DAY_NO_MANIFEST = date(2026, 3, 27), date(2026, 3, 28), date(2026, 3, 29)
DAYS = (DAY_OK, DAY_NO_DATA, DAY_NO_MANIFEST)
NOW = pd.Timestamp("2026-04-01T12:00:00Z")
TABLE = TABLES["meter_readings"]


@pytest.fixture(params=["local", "s3"])
def lake(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    pg_resource: PostgresResource,
    monkeypatch: pytest.MonkeyPatch,
) -> Lake:
    """The CLI on the test database and a temporary home, on a local lake or an S3 bucket."""
    if request.param == "s3":
        request.getfixturevalue("s3_endpoint")
        import boto3

        bucket = f"restore-{uuid.uuid4().hex[:12]}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        url = f"s3://{bucket}/lake"
    else:
        url = str(tmp_path / "lake")
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    monkeypatch.setenv("METRIFY_LAKE_URL", url)
    monkeypatch.setenv("COLUMNS", "300")  # rich tables unwrapped
    return Lake(url)


def invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit | None), result.exception  # no traceback
    return " ".join(result.output.split())


def last_json(*args: str, code: int = 0) -> object:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return json.loads(result.stdout.splitlines()[-1])


def ingest(conn: psycopg.Connection, lake: Lake, landing: Path) -> None:
    """Two meters' quarter-hours of the three days, as the landing sensor's run ingests a file."""
    lines = [
        json.dumps(
            {
                "meter_id": meter,
                "reading_start": (
                    datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(minutes=15 * q)
                )
                .isoformat()
                .replace("+00:00", "Z"),
                "interval_minutes": 15,
                "energy_kwh": 0.25 + q / 100,
            }
        )
        for day in DAYS
        for meter in ("M-1", "M-2")
        for q in range(8)
    ]
    landed = land_lines(landing, METER_READINGS.source, lines, seq=NOW.value // 1000)
    messages = landed.path.read_text().splitlines()
    process_batch(
        landing_spec(METER_READINGS, landed),
        messages,
        [landed.seq] * len(messages),
        lake,
        conn,
        NOW,
        received_at=NOW,
    )
    conn.commit()


def hot(conn: psycopg.Connection, day: date) -> int:
    count = len(TABLE.read_days(conn, day, day))
    conn.commit()  # no snapshot or lock held while the CLI works
    return count


def day_state(conn: psycopg.Connection, day: date) -> state.DayState:
    found = state.get(conn, "meter_readings", day)
    conn.commit()
    assert found is not None
    return found


def archive(conn: psycopg.Connection, lake: Lake, day: date) -> None:
    """The lifecycle's copy and hot deletion of the day."""
    now = datetime.now(UTC)  # after any restore before it, which the CLI records at the real time
    copy_to_warm(conn, lake, TABLE, day, now)
    conn.commit()
    assert delete_hot_day(conn, lake, TABLE, day, [], now, None).action == "deleted_hot"
    conn.commit()
    assert hot(conn, day) == 0


def delete(lake: Lake, key: str) -> None:
    if lake.is_s3:
        lake._s3.delete_object(Bucket=lake.bucket, Key=lake._s3_key(key))
    else:
        (lake.root / key).unlink()
    assert lake.head(key) is None


def test_a_day_whose_copy_is_missing_fails_alone_and_is_rebuilt_from_raw(
    pg: psycopg.Connection, lake: Lake, tmp_path: Path
) -> None:
    ingest(pg, lake, tmp_path / "landing")
    assert all(hot(pg, day) == 16 for day in DAYS)
    for day in DAYS:
        archive(pg, lake, day)
    delete(lake, data_key("meter_readings", DAY_NO_DATA))
    delete(lake, manifest_key("meter_readings", DAY_NO_MANIFEST))

    # The archive restore: the readable day comes back; each of the others fails in one line naming
    # the missing object and what to do; exit 1.
    every = ("--from", str(DAYS[0]), "--to", str(DAYS[-1]))
    out = invoke("restore", *every, code=1)
    assert "Traceback" not in out and "FileNotFoundError" not in out
    assert hot(pg, DAY_OK) == 16 and hot(pg, DAY_NO_DATA) == 0 and hot(pg, DAY_NO_MANIFEST) == 0
    archive(pg, lake, DAY_OK)
    outcomes = last_json("restore", *every, "--json", code=1)
    assert isinstance(outcomes, list)
    assert [(o["day"], o["action"]) for o in outcomes] == [
        (str(DAY_OK), "restored"),
        (str(DAY_NO_DATA), "failed"),
        (str(DAY_NO_MANIFEST), "failed"),
    ]
    for o, key in zip(outcomes[1:], (data_key, manifest_key), strict=True):
        missing = lake.uri(key("meter_readings", date.fromisoformat(o["day"])))
        assert o["detail"] == (
            f"not restored: {missing} is not in the lake: check METRIFY_LAKE_URL, or rebuild the day from "
            f"its raw batches (`metrify restore --using raw --dataset meter_readings --from {o['day']}`)"
        )
    assert day_state(pg, DAY_NO_DATA).hot_gone()

    # A raw rebuild still refuses a day whose copy is in the lake (archived again): restore it instead.
    archive(pg, lake, DAY_OK)
    refused = invoke("restore", "--using", "raw", "--from", str(DAY_OK), "--to", str(DAY_NO_DATA), code=1)
    assert f"meter_readings days {DAY_OK} were archived out of the hot tier: restore them first" in refused
    assert hot(pg, DAY_NO_DATA) == 0

    # A dry run of the days whose copy is missing: what would change, nothing changed.
    days = ("--from", str(DAY_NO_DATA), "--to", str(DAY_NO_MANIFEST))
    planned = invoke("restore", "--using", "raw", *days, "--dry-run")
    assert (
        f"{DAY_NO_DATA}, {DAY_NO_MANIFEST}: the lake copy is missing, so these days would be rebuilt"
        in planned
    )
    plan = last_json("restore", "--using", "raw", *days, "--dry-run", "--json")
    assert isinstance(plan, dict) and plan["dry_run"] and plan["rows_changed"] == 32
    assert plan["rematerialise"] == f"{DAY_NO_DATA}..{DAY_NO_MANIFEST}"
    assert hot(pg, DAY_NO_DATA) == 0 and day_state(pg, DAY_NO_DATA).hot_gone()

    # The rebuild: the rows the ingest wrote come back, recorded as restored (hot for --keep-days).
    rebuilt = last_json("restore", "--using", "raw", *days, "--keep-days", "10", "--json")
    assert isinstance(rebuilt, dict)
    until = datetime.now(UTC).date() + timedelta(days=10)
    assert rebuilt["copies_missing"] == f"{DAY_NO_DATA}, {DAY_NO_MANIFEST}" and rebuilt["hot_until"] == str(
        until
    )
    assert rebuilt["rows_changed"] == 32 and rebuilt["rematerialise"] == f"{DAY_NO_DATA}..{DAY_NO_MANIFEST}"
    # Checked against the copy: by its recorded checksum where its object is gone, by key where only
    # its manifest is.
    assert rebuilt["checked_against_copy"] == (
        f"{DAY_NO_DATA}: the 16 rows match the copy's content checksum; "
        f"{DAY_NO_MANIFEST}: every one of the 16 keys its copy held came back"
    )
    assert hot(pg, DAY_NO_DATA) == 16 and hot(pg, DAY_NO_MANIFEST) == 16
    for day in (DAY_NO_DATA, DAY_NO_MANIFEST):
        restored = day_state(pg, day)
        assert not restored.hot_gone() and restored.keep_hot_until == until

    # Again: the archive restore says they were restored and until when, not that rows never left;
    # a raw rebuild changes nothing and asks for no re-materialisation.
    again = last_json("restore", *days, "--json")
    assert isinstance(again, list)
    assert [o["action"] for o in again] == ["already hot", "already hot"]
    today = datetime.now(UTC).date()
    assert all(o["detail"] == f"restored {today}, hot until {until}" for o in again)
    unchanged = last_json("restore", "--using", "raw", *days, "--json")
    assert isinstance(unchanged, dict) and unchanged["rows_changed"] == unchanged["rows_corrected"] == 0
    assert unchanged["rematerialise"] == "nothing: no row changed" and "copies_missing" not in unchanged

    # When the rows next leave, retention first writes the missing copy again from them.
    archive(pg, lake, DAY_NO_DATA)
    assert lake.head(data_key("meter_readings", DAY_NO_DATA)) is not None
    assert last_json("restore", "--from", str(DAY_NO_DATA), "--json")[0]["action"] == "restored"  # type: ignore[index]
    assert hot(pg, DAY_NO_DATA) == 16


def test_a_day_whose_copy_is_missing_is_not_rebuilt_short(
    pg: psycopg.Connection, lake: Lake, tmp_path: Path
) -> None:
    """Raw that no longer gives every row the copy held (its batches left the ledger): refused."""
    ingest(pg, lake, tmp_path / "landing")
    archive(pg, lake, DAY_NO_DATA)
    delete(lake, data_key("meter_readings", DAY_NO_DATA))
    pg.execute("UPDATE ops.lifecycle_days SET row_count = row_count + 1")
    pg.commit()
    refused = invoke("restore", "--using", "raw", "--from", str(DAY_NO_DATA), code=1)
    assert f"{DAY_NO_DATA}: 16 rows of the 17 its copy held" in refused
    assert hot(pg, DAY_NO_DATA) == 0 and day_state(pg, DAY_NO_DATA).hot_gone()


def test_a_day_whose_copy_held_other_readings_than_raw_gives_is_not_rebuilt(
    pg: psycopg.Connection, lake: Lake, tmp_path: Path
) -> None:
    """Raw that gives as many rows as the copy held, but not the same readings: the rebuild compared
    counts only and put raw's readings in place of the copy's. Refused now, nothing changed: by key
    where the copy's object is still there (its manifest gone), by the recorded content checksum
    where it is not (the recorded state holds no keys: the refusal says so)."""
    ingest(pg, lake, tmp_path / "landing")
    for day in (DAY_NO_DATA, DAY_NO_MANIFEST):
        # The copy holds meter M-1's first reading of the day at 05:00 (moved by hand), raw at 00:00.
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        moved = pg.execute(
            "UPDATE ops.meter_readings SET reading_start = %s WHERE meter_id = 'M-1' AND reading_start = %s",
            (start + timedelta(hours=5), start),
        ).rowcount
        pg.commit()
        assert moved == 1
        archive(pg, lake, day)
    delete(lake, data_key("meter_readings", DAY_NO_DATA))
    delete(lake, manifest_key("meter_readings", DAY_NO_MANIFEST))
    days = ("--from", str(DAY_NO_DATA), "--to", str(DAY_NO_MANIFEST))
    for dry in ((), ("--dry-run",)):
        refused = invoke("restore", "--using", "raw", *days, *dry, code=1)
        assert f"{DAY_NO_DATA}: 16 rows, as many as its copy held, but not the copy's rows" in refused
        assert "only the copy's row count and checksum are recorded, not its keys" in refused
        assert (
            f"{DAY_NO_MANIFEST}: 1 of the 16 keys its copy held missing from raw "
            f"(e.g. M-1 {DAY_NO_MANIFEST}T05:00:00+00:00); 1 key the copy did not hold"
        ) in refused
        assert "a rebuild would lose or swap readings" in refused
        for day in (DAY_NO_DATA, DAY_NO_MANIFEST):
            assert hot(pg, day) == 0 and day_state(pg, day).hot_gone()
