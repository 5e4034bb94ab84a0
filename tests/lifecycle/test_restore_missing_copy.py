"""`metrify restore` on a real PostgreSQL and a local or S3 (moto server) lake: days ingested through
the landing path, copied, their hot rows deleted by the lifecycle. A dry run changes nothing, on a
cold day as on an archived (GLACIER) one; a range nothing holds exits 1. Then a copy (or its manifest)
deleted from the lake: the archive restore fails those days in one line each (the others are restored); `--using raw` rebuilds them from their raw batches, which it
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
from metrify_assets.lifecycle.policy import Policy
from metrify_assets.lifecycle.retention import delete_hot_day
from metrify_assets.lifecycle.tables import TABLES
from metrify_assets.lifecycle.tiers import copy_to_warm, data_key, manifest_key, move_due
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
    report = last_json("restore", *every, "--json", code=1)
    assert isinstance(report, dict) and report["rebuild"] == [str(DAY_OK)] and not report["dry_run"]
    outcomes = report["outcomes"]
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
    assert plan["rematerialise"] == f"{DAY_NO_DATA}..{DAY_NO_MANIFEST}" and plan["using"] == "raw"
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
    assert isinstance(again, dict) and again["rebuild"] == []
    assert [o["action"] for o in again["outcomes"]] == ["already hot", "already hot"]
    today = datetime.now(UTC).date()
    assert all(o["detail"] == f"restored {today}, hot until {until}" for o in again["outcomes"])
    unchanged = last_json("restore", "--using", "raw", *days, "--json")
    assert isinstance(unchanged, dict) and unchanged["rows_changed"] == unchanged["rows_corrected"] == 0
    assert unchanged["rematerialise"] == "nothing: no row changed" and "copies_missing" not in unchanged

    # When the rows next leave, retention first writes the missing copy again from them.
    archive(pg, lake, DAY_NO_DATA)
    assert lake.head(data_key("meter_readings", DAY_NO_DATA)) is not None
    assert last_json("restore", "--from", str(DAY_NO_DATA), "--json")["outcomes"][0]["action"] == "restored"  # type: ignore[index]
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


def changes(conn: psycopg.Connection) -> tuple[object, ...]:
    """What a restore writes besides rows: audit entries, lifecycle log lines, rebuild marks, and the
    days' restore state."""
    found = conn.execute(
        "SELECT (SELECT count(*) FROM ops.audit_log), (SELECT count(*) FROM ops.lifecycle_log), "
        "(SELECT count(*) FROM ops.retouched_days), (SELECT array_agg((day, restored_at, "
        "restore_requested_at, keep_hot_until)::text ORDER BY day) FROM ops.lifecycle_days)"
    ).fetchone()
    conn.commit()
    assert found is not None
    return tuple(found)


def test_a_dry_run_changes_nothing_on_a_cold_and_an_archived_day(
    pg: psycopg.Connection, lake: Lake, tmp_path: Path
) -> None:
    """`restore --dry-run` without `--using raw` restored for real: rows written, audit entries, days
    marked to rebuild, and a restore request sent for a GLACIER copy (on S3 a paid retrieval). Now
    it reports each day (its tier and class, the copy's rows, whether a retrieval would be requested,
    what would be rebuilt) and changes nothing: no rows, no audit entry, no state, no lake request."""
    ingest(pg, lake, tmp_path / "landing")
    for day in DAYS:
        archive(pg, lake, day)
    # A year on, the oldest day's copy is in GLACIER (archive), the others' in STANDARD_IA (cold).
    today = DAY_OK + timedelta(days=365)
    for tier in ("cold", "archive"):
        move_due(pg, lake, Policy(), today, DAY_OK, DAY_NO_MANIFEST, tier, datetime.now(UTC))
        pg.commit()
    glacier = data_key("meter_readings", DAY_OK)
    assert lake.head(glacier).storage_class == "GLACIER"  # type: ignore[union-attr]
    before = changes(pg)

    every = ("--from", str(DAYS[0]), "--to", str(DAYS[-1]))
    plan = last_json("restore", *every, "--dry-run", "--json")
    assert isinstance(plan, dict) and plan["dry_run"] and plan["using"] == "archive"
    assert [(o["day"], o["action"], o["tier"], o["storage_class"], o["rows"]) for o in plan["outcomes"]] == [
        (str(DAY_OK), "would request restore", "archive", "GLACIER", 16),
        (str(DAY_NO_DATA), "would restore", "cold", "STANDARD_IA", 16),
        (str(DAY_NO_MANIFEST), "would restore", "cold", "STANDARD_IA", 16),
    ]
    assert plan["rebuild"] == [str(DAY_NO_DATA), str(DAY_NO_MANIFEST)]
    shown = invoke("restore", *every, "--dry-run")
    assert "dry run: nothing changed" in shown and "2 days would be restored and marked to rebuild" in shown
    assert "1 day needs a restore from the archive class first (on S3 a paid retrieval" in shown
    assert all(hot(pg, day) == 0 for day in DAYS) and changes(pg) == before
    assert lake.head(glacier).restore is None  # type: ignore[union-attr]  # no retrieval requested

    # A copy that is gone: the dry run says the day would fail, and exits 1, changing nothing still.
    delete(lake, manifest_key("meter_readings", DAY_NO_MANIFEST))
    failing = last_json("restore", *every, "--dry-run", "--json", code=1)
    assert isinstance(failing, dict)
    missing = failing["outcomes"][-1]
    assert missing["action"] == "failed" and missing["detail"].startswith(
        f"would not be restored: {lake.uri(manifest_key('meter_readings', DAY_NO_MANIFEST))} is not in the lake"
    )
    assert all(hot(pg, day) == 0 for day in DAYS) and changes(pg) == before

    # The restore itself does what the dry run said (the local lake and moto make GLACIER readable at
    # once): rows back, an audit entry and a rebuild mark per day restored.
    done = last_json("restore", "--from", str(DAY_OK), "--to", str(DAY_NO_DATA), "--json")
    assert isinstance(done, dict) and done["rebuild"] == [str(DAY_OK), str(DAY_NO_DATA)]
    assert hot(pg, DAY_OK) == 16 and hot(pg, DAY_NO_DATA) == 16
    audit, _, marks, _ = changes(pg)
    assert (audit, marks) == (before[0] + 3, before[2] + 2)  # type: ignore[operator]  # request + 2 restores


def test_a_range_with_nothing_in_any_tier_exits_1_and_one_already_hot_exits_0(
    pg: psycopg.Connection, lake: Lake, tmp_path: Path
) -> None:
    """A restore of days no tier holds said `no day ... has a lake copy` and exited 0, as if restored."""
    ingest(pg, lake, tmp_path / "landing")  # hot, never copied to the lake
    empty = invoke("restore", "--from", "2025-01-01", code=1)
    assert (
        "nothing to restore: no day of meter_readings 2025-01-01..2025-01-01 has a lake copy, and " in empty
    )
    hot_only = invoke("restore", "--from", str(DAY_OK))
    assert (
        f"nothing to restore: no day of meter_readings {DAY_OK}..{DAY_OK} has a lake copy; its rows"
        in hot_only
    )
