"""Days through hot -> warm -> cold -> archive as the clock advances, holds, failures, dry runs and
restore, on a local directory and on S3 over HTTP (an object-lock bucket), against real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import boto3
import pandas as pd
import psycopg
import pytest

from metrify_assets.lifecycle import holds, retention, state
from metrify_assets.lifecycle.policy import METERED_DATASETS, TIERED_DATASETS, Policy
from metrify_assets.lifecycle.restore import restore_days
from metrify_assets.lifecycle.tables import TABLES, content_checksum
from metrify_assets.lifecycle.tiers import Outcome, copy_to_warm, data_key, move_due
from metrify_assets.observability.store_metrics import lifecycle_families
from metrify_assets.resources.lake import Lake, ObjectArchivedError, ObjectLockedError
from tests.lifecycle.conftest import DAYS, FIRST_DAY, seed_hot_days

LAST_DAY = FIRST_DAY + timedelta(days=DAYS - 1)
NOW = datetime(2026, 1, 5, tzinfo=UTC)


def hot_count(conn: psycopg.Connection, dataset: str, day: date) -> int:
    return len(TABLES[dataset].read_days(conn, day, day))


def copy_all(conn: psycopg.Connection, lake: Lake) -> None:
    for dataset in TIERED_DATASETS:
        for d in range(DAYS):
            outcome = copy_to_warm(conn, lake, TABLES[dataset], FIRST_DAY + timedelta(days=d), NOW)
            conn.commit()
            assert outcome.action == "copied", outcome


def weekly(conn: psycopg.Connection, lake: Lake, policy: Policy, today: date) -> retention.Report:
    """What the weekly job does, in its order: cold, archive, then retention."""
    moves = move_due(conn, lake, policy, today, FIRST_DAY, LAST_DAY, "cold", NOW)
    moves += move_due(conn, lake, policy, today, FIRST_DAY, LAST_DAY, "archive", NOW)
    report = retention.apply(conn, lake, policy, today, NOW)
    report.outcomes[:0] = moves
    assert not report.failures, report.failures
    return report


pytestmark = pytest.mark.s3


def test_days_move_through_every_tier_and_restore_exactly(pg: psycopg.Connection, lake: Lake) -> None:
    seed_hot_days(pg)
    table = TABLES["meter_readings"]
    original = table.read_days(pg, FIRST_DAY, LAST_DAY)
    checksums = {d: content_checksum(table.read_days(pg, d, d), table.key) for d in (FIRST_DAY, LAST_DAY)}
    copy_all(pg, lake)
    # Copying again is a no-op while the hot rows are unchanged.
    assert copy_to_warm(pg, lake, table, FIRST_DAY, NOW).action == "unchanged"
    manifest = state.get(pg, "meter_readings", FIRST_DAY)
    assert manifest is not None and manifest.row_count == 48 and manifest.checksum == checksums[FIRST_DAY]
    assert lake.exists(f"curated/meter_readings/dt={FIRST_DAY}/manifest.json")
    policy = Policy()

    # Day 29 of age: still hot. Day 30: hot rows go, the warm copy stays.
    weekly(pg, lake, policy, LAST_DAY + timedelta(days=29))
    assert hot_count(pg, "meter_readings", LAST_DAY) == 48
    report = weekly(pg, lake, policy, LAST_DAY + timedelta(days=30))
    assert {o.action for o in report.outcomes if o.dataset in TIERED_DATASETS} == {"deleted_hot"}
    for dataset in TIERED_DATASETS:
        assert all(hot_count(pg, dataset, FIRST_DAY + timedelta(days=d)) == 0 for d in range(DAYS))
    info = lake.head(data_key("meter_readings", FIRST_DAY))
    assert info is not None and info.storage_class == "STANDARD"

    # 90 days: STANDARD_IA; 365 days: GLACIER, unreadable until restored.
    weekly(pg, lake, policy, LAST_DAY + timedelta(days=90))
    assert {s.tier for s in state.days(pg, "grid_status", FIRST_DAY, LAST_DAY)} == {"cold"}
    assert lake.head(data_key("weather_observations", LAST_DAY)).storage_class == "STANDARD_IA"  # type: ignore[union-attr]
    weekly(pg, lake, policy, LAST_DAY + timedelta(days=365))
    days = state.days(pg, "meter_readings", FIRST_DAY, LAST_DAY)
    assert [(s.tier, s.storage_class) for s in days] == [("archive", "GLACIER")] * DAYS
    with pytest.raises(ObjectArchivedError):
        lake.get(data_key("meter_readings", FIRST_DAY))

    # Restore: requested (S3 semantics: InvalidObjectState), then read, verified and inserted.
    restored_at = datetime.combine(LAST_DAY + timedelta(days=365), datetime.min.time(), UTC)
    outcomes = restore_days(pg, lake, "meter_readings", FIRST_DAY, LAST_DAY, restored_at)
    assert [o.action for o in outcomes] == ["restored"] * DAYS
    restored = table.read_days(pg, FIRST_DAY, LAST_DAY)
    pd.testing.assert_frame_equal(restored, original)
    for day, checksum in checksums.items():
        assert content_checksum(table.read_days(pg, day, day), table.key) == checksum
    # Each restored day is stamped to rebuild (VEE and what else derives from the readings left with
    # them): `metrify run` and late_days_sensor read ops.touched_days.
    stamped = pg.execute(
        "SELECT day, batch_id FROM ops.touched_days WHERE source = 'meter_readings' "
        "AND batch_id LIKE 'restore:%%' ORDER BY day"
    ).fetchall()
    days_restored = [FIRST_DAY + timedelta(days=d) for d in range(DAYS)]
    assert stamped == [(d, f"restore:meter_readings:{d}") for d in days_restored]
    # Idempotent: a second restore changes nothing (nor stamps a day again); restored days stay hot
    # through the next cleanup.
    again = restore_days(pg, lake, "meter_readings", FIRST_DAY, LAST_DAY, restored_at)
    assert {o.action for o in again} == {"already hot"}
    count = pg.execute("SELECT count(*) FROM ops.retouched_days WHERE batch_id LIKE 'restore:%%'").fetchone()
    assert count == (DAYS,)
    weekly(pg, lake, policy, LAST_DAY + timedelta(days=366))
    assert hot_count(pg, "meter_readings", FIRST_DAY) == 48


def test_held_days_survive_every_cleanup_until_released(pg: psycopg.Connection, lake: Lake) -> None:
    seed_hot_days(pg)
    copy_all(pg, lake)
    middle = FIRST_DAY + timedelta(days=1)
    whole = holds.add(pg, holds.ALL, middle, middle, "case 2026-17", "counsel@utility")
    meter = holds.add(pg, "meter_readings", FIRST_DAY, FIRST_DAY, "complaint 881", "ops", meter_id="m-001")
    keys = holds.scope_keys(lake, holds.ALL, middle, middle)
    assert len(keys) == 6  # a data object and a manifest per tiered dataset
    # A meter's scope locks its readings' objects only: the lifecycle moves grid and weather days
    # under a meter's hold (tiers.holding), which a lock on them would stop half way.
    metered = holds.scope_keys(lake, holds.ALL, middle, middle, meter_id="m-001")
    assert sorted(metered) == sorted(k for k in keys if k.startswith("curated/meter_readings/"))
    assert len(metered) == 2
    holds.lock_objects(lake, keys, on=True)
    pg.commit()
    assert lake.head(data_key("grid_status", middle)).legal_hold  # type: ignore[union-attr]
    with pytest.raises(ObjectLockedError):
        lake.delete(data_key("grid_status", middle))

    policy = Policy().with_ages("meter_readings", expire_days=400).with_ages("grid_status", expire_days=400)
    for age in (30, 90, 365, 400):
        weekly(pg, lake, policy, LAST_DAY + timedelta(days=age))
    # The held day: every row still hot, its copy still warm and locked, in every dataset.
    for dataset in TIERED_DATASETS:
        assert hot_count(pg, dataset, middle) > 0
        held = state.get(pg, dataset, middle)
        assert held is not None and held.tier == "warm"
    # The meter-scoped hold kept m-001's rows of the first day and let m-002's go; expiry spared the day.
    first = TABLES["meter_readings"].read_days(pg, FIRST_DAY, FIRST_DAY)
    assert set(first["meter_id"]) == {"m-001"} and len(first) == 24
    assert state.get(pg, "meter_readings", FIRST_DAY) is not None
    # The unheld last day expired everywhere it was allowed to.
    assert state.get(pg, "meter_readings", LAST_DAY) is None
    assert not lake.exists(data_key("meter_readings", LAST_DAY))
    assert state.get(pg, "weather_observations", LAST_DAY) is not None  # no expiry set for weather

    # Released: the next cleanup proceeds.
    for hold in (whole, meter):
        released = holds.release(pg, hold.hold_id, "counsel@utility", "case closed")
        holds.unlock_objects(pg, lake, released)
    pg.commit()
    weekly(pg, lake, policy, LAST_DAY + timedelta(days=401))
    assert hot_count(pg, "meter_readings", middle) == 0
    assert hot_count(pg, "meter_readings", FIRST_DAY) == 0
    assert state.get(pg, "meter_readings", middle) is None  # expired once free


def test_a_failed_copy_deletes_nothing(pg: psycopg.Connection, lake: Lake, s3_endpoint: str) -> None:
    seed_hot_days(pg)
    copy_all(pg, lake)
    # A corrupted warm object is not moved, and says why.
    key = data_key("meter_readings", FIRST_DAY)
    lake.put(key, b"not what the manifest says")
    moves = move_due(pg, lake, Policy(), LAST_DAY + timedelta(days=90), FIRST_DAY, LAST_DAY, "cold", NOW)
    failed = [o for o in moves if o.failed]
    assert [(o.dataset, o.day) for o in failed] == [("meter_readings", FIRST_DAY)]
    assert "SHA-256" in failed[0].detail or "rows" in failed[0].detail
    assert state.get(pg, "meter_readings", FIRST_DAY).tier == "warm"  # type: ignore[union-attr]
    assert lake.head(key).storage_class == "STANDARD"  # type: ignore[union-attr]

    # A lake that cannot be written (a bucket that does not exist): no hot row is deleted.
    broken = Lake("s3://no-such-bucket-metrify/lake")
    pg.execute("DELETE FROM ops.lifecycle_days")
    pg.commit()
    before = {d: hot_count(pg, d, FIRST_DAY) for d in TIERED_DATASETS}
    outcomes = retention.clean_hot(pg, broken, Policy(), LAST_DAY + timedelta(days=30), NOW)
    assert len(outcomes) == DAYS * len(TIERED_DATASETS) and {o.action for o in outcomes} == {"failed"}
    assert all("NoSuchBucket" in o.detail for o in outcomes)
    assert {d: hot_count(pg, d, FIRST_DAY) for d in TIERED_DATASETS} == before


def test_dry_run_lists_what_would_go_and_changes_nothing(pg: psycopg.Connection, lake: Lake) -> None:
    seed_hot_days(pg)
    copy_all(pg, lake)
    pg.execute(
        "INSERT INTO ops.quarantine (batch_id, record_index, source, payload, reasons, quarantined_at) "
        "VALUES ('old', 0, 'meter_readings', '{}', 'malformed:json', '2024-01-01')"
    )
    pg.commit()
    today = LAST_DAY + timedelta(days=800)
    moves = move_due(pg, lake, Policy(), today, FIRST_DAY, LAST_DAY, "cold", NOW, dry_run=True)
    report = retention.apply(pg, lake, Policy(), today, NOW, dry_run=True)
    counts = report.counts().set_index(["dataset", "action"])
    assert counts.loc[("meter_readings", "would delete hot"), "rows"] == 24 * 2 * DAYS
    assert counts.loc[("quarantine", "would expire"), "rows"] == 1
    assert {o.action for o in moves} == {"would move to cold"}
    # Warm days due in the archive: the run moves them to cold, then to the archive; the dry run, which
    # moves nothing, lists both (it listed the cold move only, and GLACIER came as a surprise).
    archive = move_due(pg, lake, Policy(), today, FIRST_DAY, LAST_DAY, "archive", NOW, dry_run=True)
    assert len(archive) == len(moves) and {o.action for o in archive} == {"would move to archive"}
    assert hot_count(pg, "meter_readings", FIRST_DAY) == 48
    assert {s.tier for s in state.days(pg, "meter_readings", FIRST_DAY, LAST_DAY)} == {"warm"}
    assert pg.execute("SELECT count(*) FROM ops.quarantine").fetchone()[0] == 1  # type: ignore[index]
    planned = pg.execute("SELECT count(*) FROM ops.lifecycle_log WHERE dry_run").fetchone()[0]  # type: ignore[index]
    assert planned >= DAYS * len(TIERED_DATASETS)
    # A pass on a clock far ahead keeps the log it is writing (ops retention ages rows by when written).
    report = retention.apply(pg, lake, Policy(), today, NOW)
    kept = pg.execute("SELECT count(*) FROM ops.lifecycle_log WHERE NOT dry_run").fetchone()[0]  # type: ignore[index]
    assert kept >= sum(1 for o in report.outcomes if o.action == "deleted_hot") == DAYS * len(TIERED_DATASETS)


def test_late_rows_merge_into_a_readable_copy(pg: psycopg.Connection, lake: Lake) -> None:
    seed_hot_days(pg, days=1)
    table = TABLES["meter_readings"]
    copy_to_warm(pg, lake, table, FIRST_DAY, NOW)
    pg.commit()
    retention.apply(pg, lake, Policy(), FIRST_DAY + timedelta(days=30), NOW)
    assert hot_count(pg, "meter_readings", FIRST_DAY) == 0
    # A late reading of a new meter, and a newer version of an archived one.
    pg.execute(
        "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, record_version, batch_id) "
        "VALUES ('m-late', '2026-01-01T05:00Z', 60, 0.5, 1, 'late'), ('m-001', '2026-01-01T06:00Z', 60, 9.9, 2, 'late')"
    )
    pg.commit()
    merged = copy_to_warm(pg, lake, table, FIRST_DAY, NOW)
    pg.commit()
    assert merged.action == "merged" and merged.rows == 49
    retention.apply(pg, lake, Policy(), FIRST_DAY + timedelta(days=31), NOW)
    assert hot_count(pg, "meter_readings", FIRST_DAY) == 0
    assert restore_days(pg, lake, "meter_readings", FIRST_DAY, FIRST_DAY, NOW)[0].action == "restored"
    back = table.read_days(pg, FIRST_DAY, FIRST_DAY).set_index(["meter_id", "reading_start"])
    assert len(back) == 49 and back.loc[("m-001", pd.Timestamp("2026-01-01T06:00Z")), "energy_kwh"] == 9.9


def test_bucket_object_lock_blocks_deleting_a_held_version(s3_endpoint: str) -> None:
    """The second line of defence: even a direct delete of a held object's version is refused by S3."""
    boto3.client("s3").create_bucket(Bucket="lock-check", ObjectLockEnabledForBucket=True)
    lake = Lake("s3://lock-check")
    lake.put("curated/x/dt=2026-01-01/x.parquet", b"x")
    lake.set_legal_hold("curated/x/dt=2026-01-01/x.parquet", True)
    with pytest.raises(ObjectLockedError):
        lake.delete("curated/x/dt=2026-01-01/x.parquet")
    assert lake.get("curated/x/dt=2026-01-01/x.parquet") == b"x"


def test_late_rows_for_a_held_day_leave_its_copy_alone_until_release(
    pg: psycopg.Connection, lake: Lake
) -> None:
    """A new version of a held object would carry no hold: while held, the copy stays and the late
    rows stay hot; after release they merge, and nothing is lost at any step."""
    seed_hot_days(pg, days=1)
    table = TABLES["meter_readings"]
    copy_to_warm(pg, lake, table, FIRST_DAY, NOW)
    pg.commit()
    retention.apply(pg, lake, Policy(), FIRST_DAY + timedelta(days=30), NOW)
    hold = holds.add(pg, holds.ALL, FIRST_DAY, FIRST_DAY, "case 9", "counsel")
    holds.lock_objects(lake, holds.scope_keys(lake, holds.ALL, FIRST_DAY, FIRST_DAY), on=True)
    pg.commit()
    pg.execute(
        "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, record_version, "
        "batch_id) VALUES ('m-late', '2026-01-01T05:00Z', 60, 0.5, 1, 'late')"
    )
    pg.commit()
    held = copy_to_warm(pg, lake, table, FIRST_DAY, NOW)
    pg.commit()
    assert held.action == "held"
    assert lake.head(data_key("meter_readings", FIRST_DAY)).legal_hold  # type: ignore[union-attr]
    retention.apply(pg, lake, Policy(), FIRST_DAY + timedelta(days=31), NOW)
    assert hot_count(pg, "meter_readings", FIRST_DAY) == 1  # the late row waits, hot
    with pytest.raises(ObjectLockedError):
        lake.delete(data_key("meter_readings", FIRST_DAY))

    released = holds.release(pg, hold.hold_id, "counsel")
    holds.unlock_objects(pg, lake, released)
    pg.commit()
    assert not lake.head(data_key("meter_readings", FIRST_DAY)).legal_hold  # type: ignore[union-attr]
    assert copy_to_warm(pg, lake, table, FIRST_DAY, NOW).action == "merged"
    pg.commit()
    retention.apply(pg, lake, Policy(), FIRST_DAY + timedelta(days=32), NOW)
    assert hot_count(pg, "meter_readings", FIRST_DAY) == 0
    moves = move_due(pg, lake, Policy(), FIRST_DAY + timedelta(days=91), FIRST_DAY, FIRST_DAY, "cold", NOW)
    assert [o.action for o in moves if o.dataset == "meter_readings"] == ["moved to cold"]
    restored = restore_days(pg, lake, "meter_readings", FIRST_DAY, FIRST_DAY, NOW)
    assert restored[0].action == "restored" and restored[0].rows == 49


def test_a_copy_a_bucket_rule_moved_first_is_recorded_where_it_is(pg: psycopg.Connection, lake: Lake) -> None:
    seed_hot_days(pg, days=1)
    copy_to_warm(pg, lake, TABLES["grid_status"], FIRST_DAY, NOW)
    pg.commit()
    lake.set_storage_class(data_key("grid_status", FIRST_DAY), "GLACIER")  # as an S3 rule would
    moves = move_due(pg, lake, Policy(), FIRST_DAY + timedelta(days=100), FIRST_DAY, FIRST_DAY, "cold", NOW)
    assert [(o.action, "bucket lifecycle rule" in o.detail) for o in moves] == [("moved to archive", True)]
    recorded = state.get(pg, "grid_status", FIRST_DAY)
    assert recorded is not None and (recorded.tier, recorded.storage_class) == ("archive", "GLACIER")


def test_a_silent_meters_vee_day_leaves_the_hot_tier_with_the_days_readings(
    pg: psycopg.Connection, lake: Lake
) -> None:
    """A registered meter that sent nothing has a VEE day of missing intervals and no reading: the
    derived rows were deleted for the meters with readings only, so its rows stayed hot for good
    (19,008 VEE rows of one demo day, the trial)."""
    seed_hot_days(pg)
    pg.execute(
        "INSERT INTO ops.vee_readings (meter_id, reading_start, local_date, interval_minutes, status, method, "
        "rule_version) SELECT 'SILENT', %s::timestamptz + make_interval(mins => 15 * i), %s, 15, 'missing', "
        "'none', 'test' FROM generate_series(0, 95) AS i",
        (datetime.combine(FIRST_DAY, datetime.min.time(), tzinfo=UTC), FIRST_DAY),
    )
    pg.commit()
    copy_all(pg, lake)
    retention.apply(pg, lake, Policy(), LAST_DAY + timedelta(days=800), NOW)
    assert pg.execute(
        "SELECT count(*) FROM ops.vee_readings WHERE local_date = %s", (FIRST_DAY,)
    ).fetchone() == (0,)


def test_hot_rows_go_only_once_their_copy_is_read_back(pg: psycopg.Connection, lake: Lake) -> None:
    """The database's record of a copy is not taken on its word: a trial deleted a day's hot rows whose
    copy had been deleted from the lake, "copy verified". A copy that is gone is written again from the
    hot rows (then read back) before they go; one that does not verify keeps them; one that held rows
    already gone from PostgreSQL cannot be written from what is left, and says how to rebuild it."""
    seed_hot_days(pg)
    table = TABLES["meter_readings"]
    original = table.read_days(pg, FIRST_DAY, FIRST_DAY)
    copy_all(pg, lake)
    gone, tampered = data_key("meter_readings", FIRST_DAY), data_key("grid_status", FIRST_DAY)
    lake.delete(gone)
    size = lake.head(tampered).size  # type: ignore[union-attr]
    lake.put(tampered, b"x" * size)  # the size the database recorded, other bytes
    second = FIRST_DAY + timedelta(days=1)
    holds.add(pg, "meter_readings", second, second, "complaint 881", "ops", meter_id="m-001")
    pg.commit()

    # A dry run plans the rows the run deletes: not those of the meter under a hold (it planned 48).
    planned = retention.clean_hot(pg, lake, Policy(), LAST_DAY + timedelta(days=30), NOW, dry_run=True)
    assert {o.day: o.rows for o in planned if o.dataset == "meter_readings"} == {
        FIRST_DAY: 48,
        second: 24,
        LAST_DAY: 48,
    }
    outcomes = retention.clean_hot(pg, lake, Policy(), LAST_DAY + timedelta(days=30), NOW)
    by_day = {(o.dataset, o.day): o for o in outcomes}
    assert by_day[("meter_readings", FIRST_DAY)].action == "deleted_hot"
    assert lake.exists(gone) and hot_count(pg, "meter_readings", FIRST_DAY) == 0
    logged = pg.execute(
        "SELECT detail FROM ops.lifecycle_log WHERE dataset = 'meter_readings' AND day = %s"
        " AND action = 'copy_missing'",
        (FIRST_DAY,),
    ).fetchall()
    assert len(logged) == 1 and "is not in the lake" in logged[0][0]
    restore_days(pg, lake, "meter_readings", FIRST_DAY, FIRST_DAY, NOW)
    pg.commit()
    back = table.read_days(pg, FIRST_DAY, FIRST_DAY)
    assert content_checksum(back, table.key) == content_checksum(original, table.key)

    # Bytes of the recorded size that are not the copy, beside whole hot rows: written again from them.
    assert by_day[("grid_status", FIRST_DAY)].action == "deleted_hot"
    corrupt = pg.execute(
        "SELECT detail FROM ops.lifecycle_log WHERE dataset = 'grid_status' AND action = 'copy_corrupt'"
    ).fetchall()
    assert len(corrupt) == 1 and "SHA-256" in corrupt[0][0]
    assert lake.get(tampered) != b"x" * size
    assert by_day[("grid_status", second)].action == "deleted_hot"

    # The second day's copy holds m-002's rows, which left PostgreSQL (m-001's stay under the hold).
    assert hot_count(pg, "meter_readings", second) == 24
    lake.delete(data_key("meter_readings", second))
    outcome = copy_to_warm(pg, lake, table, second, NOW)
    pg.commit()
    assert outcome.action == "failed" and "--using raw" in outcome.detail, outcome
    assert hot_count(pg, "meter_readings", second) == 24
    # The weekly pass fails with it (it said kept_hot, and the scheduled run went green).
    again = retention.clean_hot(pg, lake, Policy(), LAST_DAY + timedelta(days=30), NOW)
    assert [o.action for o in again if (o.dataset, o.day) == ("meter_readings", second)] == ["failed"]


def test_a_lake_that_holds_none_of_the_copies_is_not_written_to(pg: psycopg.Connection, lake: Lake) -> None:
    """A mistyped METRIFY_LAKE_URL: every recorded copy is missing with its manifest. Writing them again
    there, then deleting the hot rows, would leave the rows in the wrong lake: the pass keeps them and
    says why, and its dry run says so first."""
    seed_hot_days(pg)
    copy_all(pg, lake)
    elsewhere = Lake(lake.uri("").rstrip("/") + "-typo")
    today = LAST_DAY + timedelta(days=30)
    planned = retention.clean_hot(pg, elsewhere, Policy(), today, NOW, dry_run=True)
    assert {o.action for o in planned} == {"would fail"}
    outcomes = retention.clean_hot(pg, elsewhere, Policy(), today, NOW)
    assert len(outcomes) == DAYS * len(TIERED_DATASETS) and {o.action for o in outcomes} == {"failed"}
    assert all("METRIFY_LAKE_URL" in o.detail for o in outcomes)
    assert all(hot_count(pg, d, FIRST_DAY) > 0 for d in TIERED_DATASETS)
    assert elsewhere.list("curated/") == []
    assert {o.action for o in retention.clean_hot(pg, lake, Policy(), today, NOW)} == {"deleted_hot"}


def test_a_report_ages_from_when_it_was_written_not_the_days_it_is_about(
    pg: psycopg.Connection, lake: Lake
) -> None:
    """A report made today of last spring's backfill is dated by those days; aged by them, the next
    weekly pass deleted it (a trial's, twice). It ages as the bucket's expiration rule counts: from
    when it was written. A folder emptied on a local lake goes too, as a prefix does on S3."""
    folder = "reports/quality/dt=2026-01-01_2026-01-02/"
    lake.put(f"{folder}report.html", b"<html>batches of the backfill</html>")
    written = lake.last_written(folder)
    assert written is not None and abs(datetime.now(UTC) - written) < timedelta(minutes=5)

    def reports(today: date, dry_run: bool = False) -> list[str]:
        report = retention.apply(pg, lake, Policy(reports_days=90), today, NOW, dry_run=dry_run)
        return [o.action for o in report.outcomes if o.dataset == "reports"]

    assert reports(written.date() + timedelta(days=89)) == []
    assert lake.exists(f"{folder}report.html")
    assert reports(written.date() + timedelta(days=90), dry_run=True) == ["would expire"]
    assert reports(written.date() + timedelta(days=90)) == ["expired"]
    assert not lake.exists(f"{folder}report.html")
    assert lake.list_day_prefixes("reports/quality/") == []


def test_a_reports_days_are_days_not_outcomes() -> None:
    """Landing files are one outcome per source and day: 6 over 2 days read as "6 days" (a trial)."""
    outcomes = [
        Outcome("landing", FIRST_DAY + timedelta(days=d), "expired", f"{source}/: 1 files", 1, 10)
        for source in ("meter_readings", "grid_status", "weather_observations")
        for d in range(2)
    ]
    counts = retention.Report(outcomes, dry_run=False).counts()
    assert counts[["dataset", "action", "days", "rows", "bytes"]].values.tolist() == [
        ["landing", "expired", 2, 6, 60]
    ]


def test_a_dry_run_plans_late_rows_as_the_run_keeps_or_deletes_them(
    pg: psycopg.Connection, lake: Lake
) -> None:
    """A late grid sample merged into the cold copy, then archived with it, goes from the hot tier like
    the rest (a trial kept it hot, advising a retrieval of a copy that already held it); a late weather
    sample of a day whose copy the run archives first stays hot, and the dry run, which moves nothing,
    says so (it planned to delete it). The dry run's plan is the run's actions, day by day."""
    seed_hot_days(pg, days=1)
    copy_all_days = [copy_to_warm(pg, lake, TABLES[d], FIRST_DAY, NOW) for d in TIERED_DATASETS]
    pg.commit()
    assert {o.action for o in copy_all_days} == {"copied"}
    retention.apply(pg, lake, Policy(), FIRST_DAY + timedelta(days=30), NOW)
    move_due(pg, lake, Policy(), FIRST_DAY + timedelta(days=91), FIRST_DAY, FIRST_DAY, "cold", NOW)
    pg.execute(
        "INSERT INTO ops.grid_status (grid_node_id, measured_at, frequency_hz, record_version, batch_id) "
        "VALUES ('n-1', '2026-01-01T00:05Z', 50.01, 1, 'late')"
    )
    pg.commit()
    merged = copy_to_warm(pg, lake, TABLES["grid_status"], FIRST_DAY, NOW)
    pg.commit()
    assert merged.action == "merged" and merged.rows == 145
    pg.execute(
        "INSERT INTO ops.weather_observations (station_id, observed_at, temperature_c, record_version, batch_id) "
        "VALUES ('s-1', '2026-01-01T00:30Z', -1.5, 1, 'late')"
    )
    pg.commit()

    today = FIRST_DAY + timedelta(days=400)
    for tier in ("cold", "archive"):
        move_due(pg, lake, Policy(), today, FIRST_DAY, FIRST_DAY, tier, NOW, "dry", dry_run=True)
    retention.apply(pg, lake, Policy(), today, NOW, dry_run=True, run_id="dry")
    assert (
        hot_count(pg, "grid_status", FIRST_DAY) == 1 and hot_count(pg, "weather_observations", FIRST_DAY) == 1
    )
    for tier in ("cold", "archive"):
        move_due(pg, lake, Policy(), today, FIRST_DAY, FIRST_DAY, tier, NOW, "run")
    retention.apply(pg, lake, Policy(), today, NOW, run_id="run")

    def plan(run_id: str) -> set[tuple[str, str, int]]:
        rows = pg.execute(
            "SELECT dataset, action, rows FROM ops.lifecycle_log WHERE run_id = %s AND day = %s "
            "AND dataset = ANY(%s) AND action NOT LIKE 'move%%'",
            (run_id, FIRST_DAY, list(TIERED_DATASETS)),
        ).fetchall()
        return {(d, {"delete_hot": "deleted_hot"}.get(a, a), n) for d, a, n in rows}

    assert plan("run") == {("grid_status", "deleted_hot", 1), ("weather_observations", "late_rows_kept", 1)}
    assert plan("dry") == plan("run")
    assert (
        hot_count(pg, "grid_status", FIRST_DAY) == 0 and hot_count(pg, "weather_observations", FIRST_DAY) == 1
    )
    archived = state.get(pg, "grid_status", FIRST_DAY)
    assert archived is not None and (archived.storage_class, archived.row_count) == ("GLACIER", 145)
    # What operators see of it: the weather row waits for a restore; the grid row is gone, not waiting.
    (family,) = lifecycle_families(pg)
    assert {s.labels["dataset"]: s.value for s in family.samples} == {
        "meter_readings": 0,
        "grid_status": 0,
        "weather_observations": 1,
    }
    restored_at = datetime.combine(today, datetime.min.time(), UTC)  # the wait ends with the restore
    assert (
        restore_days(pg, lake, "weather_observations", FIRST_DAY, FIRST_DAY, restored_at)[0].action
        == "restored"
    )
    (family,) = lifecycle_families(pg)
    assert sum(s.value for s in family.samples) == 0


def test_a_meters_hold_keeps_that_meters_readings_and_no_grid_or_weather_day(
    pg: psycopg.Connection, lake: Lake
) -> None:
    """A trial's hold on one meter (dataset all) kept the whole grid and weather day warm and hot."""
    seed_hot_days(pg, days=1)
    for dataset in TIERED_DATASETS:
        assert copy_to_warm(pg, lake, TABLES[dataset], FIRST_DAY, NOW).action == "copied"
        pg.commit()
    holds.add(pg, holds.ALL, FIRST_DAY, FIRST_DAY, "dispute 8", "counsel", meter_id="m-001")
    pg.commit()
    today = FIRST_DAY + timedelta(days=400)
    for tier in ("cold", "archive"):
        move_due(pg, lake, Policy(), today, FIRST_DAY, FIRST_DAY, tier, NOW)
    retention.apply(pg, lake, Policy(), today, NOW)
    where = {d: state.get(pg, d, FIRST_DAY) for d in TIERED_DATASETS}
    assert {d: s.tier for d, s in where.items() if s is not None} == {
        "meter_readings": "warm",  # the meter's data stays where it is
        "grid_status": "archive",
        "weather_observations": "archive",
    }
    assert hot_count(pg, "grid_status", FIRST_DAY) == hot_count(pg, "weather_observations", FIRST_DAY) == 0
    kept = TABLES["meter_readings"].read_days(pg, FIRST_DAY, FIRST_DAY)
    assert set(kept["meter_id"]) == {"m-001"} and len(kept) == 24


def test_the_metered_datasets_are_the_tables_that_name_a_meter() -> None:
    """A meter's hold keeps these datasets' data only (holds.scope_keys, tiers.holding): the list must
    follow the tables, or a hold would lock (or release) a dataset whose rows hold its meter."""
    assert set(METERED_DATASETS) == {name for name, table in TABLES.items() if table.meter_column}
