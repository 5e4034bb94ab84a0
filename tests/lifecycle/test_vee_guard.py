"""VEE over a range that includes days archived out of PostgreSQL: those days are skipped (their series
and the marts' history stand), the hot days are processed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg

from metrify_assets.lifecycle import retention
from metrify_assets.lifecycle.policy import Policy
from metrify_assets.lifecycle.tables import TABLES
from metrify_assets.lifecycle.tiers import copy_to_warm
from metrify_assets.meters.vee.assets import vee_meter_readings
from metrify_assets.partitions import partition_range_tags
from metrify_assets.resources import PostgresResource, RedisResource
from metrify_assets.resources.lake import Lake
from tests.lifecycle.conftest import FIRST_DAY, seed_hot_days

NOW = datetime(2026, 1, 5, tzinfo=UTC)


def vee_days(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute(
        "SELECT local_date::text, count(*) FROM ops.vee_days GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {d: int(n) for d, n in rows}


def test_vee_skips_days_that_left_the_hot_tier(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: object
) -> None:
    seed_hot_days(pg, days=3)
    lake = Lake(str(tmp_path) + "/lake")  # type: ignore[operator]
    tags = partition_range_tags(FIRST_DAY, FIRST_DAY + timedelta(days=2))
    assert dg.materialize(
        [vee_meter_readings], resources={"postgres": pg_resource, "redis": RedisResource()}, tags=tags
    ).success
    before = vee_days(pg)
    assert set(before) == {str(FIRST_DAY + timedelta(days=d)) for d in range(3)}

    # The first day leaves PostgreSQL (with its VEE rows); a re-run over the range must not rewrite it.
    copy_to_warm(pg, lake, TABLES["meter_readings"], FIRST_DAY, NOW)
    pg.commit()
    policy = Policy().with_ages("meter_readings", hot_days=1, warm_days=90)
    retention.clean_hot(pg, lake, policy, FIRST_DAY + timedelta(days=1), NOW)
    assert str(FIRST_DAY) not in vee_days(pg)
    result = dg.materialize(
        [vee_meter_readings], resources={"postgres": pg_resource, "redis": RedisResource()}, tags=tags
    )
    assert result.success
    after = vee_days(pg)
    assert str(FIRST_DAY) not in after  # no "missing" series written over the archived day
    assert {d: n for d, n in before.items() if d != str(FIRST_DAY)} == after
