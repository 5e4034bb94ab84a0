"""`metrify status` says where the newest data lives once the lifecycle moved days to the lake: the
trial saw grid_status's newest record as `-` after retention, and weather's as a lone late record's
time while its data ran later, with no lifecycle line."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from metrify_assets.cli.status import lifecycle_line, newest_record
from metrify_assets.resources import PostgresResource
from metrify_assets.storage.days import LakeDays, holds_standing, lake_days

pytestmark = [pytest.mark.postgres]
NOW = datetime(2032, 7, 1, 12, tzinfo=UTC)


def test_the_newest_record_says_which_days_are_in_the_lake() -> None:
    lake = LakeDays("grid_status", {"cold": 4}, 4, date(2032, 3, 31))
    assert newest_record(None, lake, NOW) == "- (none hot; lake through 2032-03-31)"
    late = datetime(2032, 3, 29, 8, tzinfo=UTC)  # a late record of a day that already left
    assert (
        newest_record(late, lake, NOW)
        == "2032-03-29 08:00 (94 d ago) (a late record; lake through 2032-03-31)"
    )
    hot = datetime(2032, 7, 1, 11, 30, tzinfo=UTC)
    assert (
        newest_record(hot, lake, NOW) == "2032-07-01 11:30 (30 min ago) (older days: lake through 2032-03-31)"
    )
    assert newest_record(hot, None, NOW) == "2032-07-01 11:30 (30 min ago)"
    assert (
        newest_record(hot, LakeDays("grid_status", {"warm": 2}, 0, None), NOW)
        == "2032-07-01 11:30 (30 min ago)"
    )


def test_lake_days_counts_tiers_and_days_out_of_postgresql_in_one_read(pg_resource: PostgresResource) -> None:
    """Days per tier, those whose hot rows left (a restored one does not count) and the newest of them;
    standing holds (not released ones). In one transaction, rolled back: the shared database keeps
    nothing of it."""
    with pg_resource.connect() as conn:
        before, holds_before = lake_days(conn), holds_standing(conn)
        rows = [
            ("2032-03-01", "archive", "2032-04-10", None),
            ("2032-03-02", "cold", "2032-04-10", None),
            ("2032-03-03", "cold", "2032-04-10", "2032-04-20"),  # restored since
            ("2032-03-04", "warm", None, None),  # still hot too
        ]
        for day, tier, deleted, restored in rows:
            conn.execute(
                "INSERT INTO ops.lifecycle_days (dataset, day, tier, storage_class, object_key, manifest_key, "
                "row_count, bytes, checksum, sha256, verified_at, moved_at, hot_deleted_at, restored_at) "
                "VALUES ('weather_observations', %s, %s, 'STANDARD', 'k', 'm', 1, 1, 'c', 's', now(), now(), %s, %s)",
                (day, tier, deleted, restored),
            )
        conn.execute(
            "INSERT INTO ops.legal_holds (dataset, first_day, last_day, reason, author) "
            "VALUES ('weather_observations', '2032-03-01', '2032-03-02', 'case', 'counsel')"
        )
        after = lake_days(conn)["weather_observations"]
        old = before.get("weather_observations", LakeDays("weather_observations", {}, 0, None))
        added = {tier: n - old.tiers.get(tier, 0) for tier, n in after.tiers.items()}
        assert {tier: n for tier, n in added.items() if n} == {"archive": 1, "cold": 2, "warm": 1}
        assert after.hot_deleted - old.hot_deleted == 2
        assert after.newest_hot_deleted is not None and after.newest_hot_deleted >= date(2032, 3, 2)
        assert holds_standing(conn) == holds_before + 1
        line = lifecycle_line({"weather_observations": after}, holds_before + 1)
        assert line.startswith("days in the lake: weather_observations ")
        assert f"({after.hot_deleted} out of PostgreSQL)" in line
        assert line.endswith(f"legal holds standing: {holds_before + 1}")
        conn.rollback()
    assert lifecycle_line({}, None) == "no day in the lake yet"
    waiting = lifecycle_line({"weather_observations": after}, 0, {"weather_observations": 1200})
    assert f"({after.hot_deleted} out of PostgreSQL, 1,200 late rows wait for a restore)" in waiting
