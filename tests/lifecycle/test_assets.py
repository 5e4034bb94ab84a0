"""The lifecycle assets materialized by Dagster on S3 over HTTP (an object-lock bucket) and a real
PostgreSQL: warm, cold and archive tiers at increasing clocks, a dry-run retention, then retention."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest

from metrify_assets.lifecycle import state
from metrify_assets.lifecycle.assets import archive_tier, cold_tier, retention_cleanup, warm_tier
from metrify_assets.lifecycle.policy import TIERED_DATASETS
from metrify_assets.lifecycle.tables import TABLES
from metrify_assets.lifecycle.tiers import data_key
from metrify_assets.partitions import partition_range_tags
from metrify_assets.resources import LakeResource, LandingResource, PostgresResource
from metrify_assets.resources.cache_resource import RedisResource
from metrify_assets.resources.lake import Lake, ObjectArchivedError
from tests.lifecycle.conftest import DAYS, FIRST_DAY, seed_hot_days

pytestmark = [pytest.mark.postgres, pytest.mark.s3]

LAST_DAY = FIRST_DAY + timedelta(days=DAYS - 1)
ALL_DAYS = DAYS * len(TIERED_DATASETS)


def materialize(
    asset: dg.AssetsDefinition,
    resources: dict[str, Any],
    as_of: date | None = None,
    dry_run: bool = False,
    partitioned: bool = True,
) -> dict[str, Any]:
    """Materialize one lifecycle asset; its materialization's metadata values."""
    name = asset.key.to_user_string()
    config = {"as_of": as_of.isoformat(), "dry_run": dry_run} if as_of else None
    result = dg.materialize(
        [asset],
        resources=resources,
        tags=partition_range_tags(FIRST_DAY, LAST_DAY) if partitioned else None,
        run_config={"ops": {name: {"config": config}}} if config else None,
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    materializations = result.asset_materializations_for_node(name)
    assert len(materializations) == (DAYS if partitioned else 1)
    return {k: v.value for k, v in materializations[0].metadata.items()}


def storage_classes(lake: Lake) -> set[str]:
    return {
        lake.head(data_key(ds, FIRST_DAY + timedelta(days=d))).storage_class  # type: ignore[union-attr]
        for ds in TIERED_DATASETS
        for d in range(DAYS)
    }


def hot_rows(conn: psycopg.Connection) -> int:
    count = sum(len(TABLES[ds].read_days(conn, FIRST_DAY, LAST_DAY)) for ds in TIERED_DATASETS)
    conn.commit()
    return count


def test_tier_assets_and_retention_on_s3(
    pg: psycopg.Connection, pg_resource: PostgresResource, s3_endpoint: str, redis_server: str, tmp_path: Path
) -> None:
    import boto3

    bucket = f"lifecycle-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    lake = Lake(f"s3://{bucket}/lake")
    resources = {
        "postgres": pg_resource,
        "lake": LakeResource(url=f"s3://{bucket}/lake"),
        "landing": LandingResource(directory=str(tmp_path / "landing")),
        "redis": RedisResource(url=redis_server),
    }
    seed_hot_days(pg)
    seeded = hot_rows(pg)

    warm = materialize(warm_tier, resources)
    assert warm["actions"] == {"copied": ALL_DAYS} and warm["failures"] == 0
    assert warm["days_processed"] == ALL_DAYS and warm["rows"] == seeded and warm["bytes"] > 0
    assert "| warm" in warm["days_by_tier"] and "STANDARD" in warm["days_by_tier"]
    assert warm["uri"] == f"s3://{bucket}/lake/curated/"
    assert storage_classes(lake) == {"STANDARD"}
    # Again, with the hot rows unchanged: nothing written.
    assert materialize(warm_tier, resources)["actions"] == {"unchanged": ALL_DAYS}

    # Not due yet: the tiers leave the days where they are.
    early = materialize(cold_tier, resources, as_of=FIRST_DAY + timedelta(days=89))
    assert early["days_processed"] == 0 and early["days"] == "nothing due" and early["failures"] == 0
    assert early["as_of"] == str(FIRST_DAY + timedelta(days=89)) and early["dry_run"] is False

    cold = materialize(cold_tier, resources, as_of=LAST_DAY + timedelta(days=90))
    assert cold["actions"] == {"moved to cold": ALL_DAYS} and cold["failures"] == 0
    assert "| cold" in cold["days_by_tier"] and "STANDARD_IA" in cold["days_by_tier"]
    assert "STANDARD -> STANDARD_IA" in cold["days"]
    assert storage_classes(lake) == {"STANDARD_IA"}

    as_of = LAST_DAY + timedelta(days=365)
    archive = materialize(archive_tier, resources, as_of=as_of)
    assert archive["actions"] == {"moved to archive": ALL_DAYS} and archive["failures"] == 0
    assert "| archive" in archive["days_by_tier"] and "GLACIER" in archive["days_by_tier"]
    assert storage_classes(lake) == {"GLACIER"}
    with pytest.raises(ObjectArchivedError):
        lake.get(data_key("grid_status", FIRST_DAY))

    # A dry run lists what would go and leaves every hot row.
    planned = materialize(retention_cleanup, resources, as_of=as_of, dry_run=True, partitioned=False)
    assert planned["dry_run"] is True and planned["failures"] == 0
    assert planned["actions"] == {"would delete hot": ALL_DAYS}
    assert "would delete hot" in planned["summary"]
    assert hot_rows(pg) == seeded
    assert {s.hot_deleted_at for ds in TIERED_DATASETS for s in state.days(pg, ds, FIRST_DAY, LAST_DAY)} == {
        None
    }
    pg.commit()

    # The API's cached result of the hot rows: the dry run leaves it, the retention retires it.
    cache = resources["redis"].get_cache()
    computed: list[int] = []

    def cached_rows() -> int:
        return int(
            cache.get_or_compute(["lifecycle-test", bucket], lambda: computed.append(1) or len(computed))
        )

    assert cached_rows() == 1 and cached_rows() == 1  # computed once, then served from Redis

    # Retention: the hot rows go, their archived copies verified to hold them (checksums recorded).
    done = materialize(retention_cleanup, resources, as_of=as_of, partitioned=False)
    assert done["actions"] == {"deleted_hot": ALL_DAYS} and done["failures"] == 0
    assert done["rows"] == seeded and done["dry_run"] is False
    assert "deleted_hot" in done["summary"]
    assert hot_rows(pg) == 0
    assert cached_rows() == 2  # a new generation: computed again from what PostgreSQL now holds
    cache.close()
    assert storage_classes(lake) == {"GLACIER"}
    # Nothing more is due at the same clock.
    assert materialize(retention_cleanup, resources, as_of=as_of, partitioned=False)["actions"] == {}


def test_a_day_that_cannot_be_copied_fails_the_run_and_the_other_days_are_copied(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """Days are copied by several threads at once: one day's failure (here a file where its lake
    directory goes) is that day's alone."""
    seed_hot_days(pg)
    pg.commit()
    blocked = tmp_path / "lake" / "curated" / "meter_readings" / f"dt={FIRST_DAY.isoformat()}"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a directory")
    result = dg.materialize(
        [warm_tier],
        resources={"postgres": pg_resource, "lake": LakeResource(url=str(tmp_path / "lake"))},
        tags=partition_range_tags(FIRST_DAY, LAST_DAY),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_failure_data.error is not None
    assert "1 days not copied" in failure.step_failure_data.error.message
    assert not any(e.event_type == dg.DagsterEventType.STEP_RESTARTED for e in result.all_events)
    copied = {(ds, s.day) for ds in TIERED_DATASETS for s in state.days(pg, ds, FIRST_DAY, LAST_DAY)}
    assert copied == {(ds, FIRST_DAY + timedelta(days=d)) for ds in TIERED_DATASETS for d in range(DAYS)} - {
        ("meter_readings", FIRST_DAY)
    }
