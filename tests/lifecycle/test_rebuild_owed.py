"""A day touched (a late batch, a decision, a restore) keeps its hot rows until the refresh has rebuilt
it: the lifecycle holds it back, says why in its outcomes, log, dry run and CLI, and trims it on a later
run once every refreshed asset rebuilt it. Real PostgreSQL, a local lake."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from metrify_assets.grid.assets import grid_stability
from metrify_assets.lifecycle import retention
from metrify_assets.lifecycle.policy import TIERED_DATASETS, Policy
from metrify_assets.lifecycle.tables import TABLES
from metrify_assets.meters.anomaly.assets import anomaly_scores
from metrify_assets.meters.enrichment import enriched_meter_readings
from metrify_assets.meters.vee.assets import vee_meter_readings
from metrify_assets.partitions import partition_range_tags
from metrify_assets.resources import GridResource, LakeResource, PostgresResource, RedisResource
from metrify_assets.resources.lake import Lake
from metrify_assets.storage import rebuilt
from tests.lifecycle.conftest import DAYS, FIRST_DAY, seed_hot_days
from tests.lifecycle.test_cli import invoke, lake  # noqa: F401 - `lake`: the CLI's fixture

pytestmark = pytest.mark.postgres

LAST_DAY = FIRST_DAY + timedelta(days=DAYS - 1)
LATE = FIRST_DAY + timedelta(days=1)  # the day a late batch touches
NOW = datetime(2026, 1, 5, tzinfo=UTC)
TODAY = LAST_DAY + timedelta(days=30)  # every seeded day is past the 30-day hot window


def touch(conn: psycopg.Connection, day: date, batch_id: str = "late-1", records: int = 5) -> None:
    """What a batch storing `records` readings of `day` stamps (storage/writes.record_days)."""
    conn.execute(
        "INSERT INTO ops.ingest_days (batch_id, source, day, records) VALUES (%s, 'meter_readings', %s, %s)",
        (batch_id, day, records),
    )
    conn.commit()


def rebuild(conn: psycopg.Connection, day: date, assets: tuple[str, ...] = rebuilt.REFRESHED) -> None:
    began = rebuilt.begin(conn)
    for asset in assets:
        rebuilt.stamp(conn, asset, day, day, began)
    conn.commit()


def hot(conn: psycopg.Connection, dataset: str, day: date) -> int:
    count = len(TABLES[dataset].read_days(conn, day, day))
    conn.commit()
    return count


def by_day(report: retention.Report) -> dict[tuple[str, date], tuple[str, str]]:
    return {(o.dataset, o.day): (o.action, o.detail) for o in report.outcomes if o.dataset in TIERED_DATASETS}


def test_a_touched_day_keeps_its_hot_rows_until_every_refreshed_asset_rebuilt_it(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    seed_hot_days(pg)
    store = Lake(str(tmp_path / "lake"))
    touch(pg, LATE)
    touch(pg, LAST_DAY, "all-quarantined", records=0)  # stored nothing: nothing to rebuild

    # The dry run says which day is held back and why; nothing changes.
    planned = by_day(retention.apply(pg, store, Policy(), TODAY, NOW, dry_run=True))
    for dataset in TIERED_DATASETS:
        action, detail = planned[dataset, LATE]
        assert action == retention.REBUILD_OWED
        assert detail.startswith("rebuild owed: touched by late-1 (meter_readings) at ")
        assert detail.endswith(f"not rebuilt since by {', '.join(rebuilt.REFRESHED)}")
        assert planned[dataset, FIRST_DAY][0] == planned[dataset, LAST_DAY][0] == "would delete hot"
    logged = pg.execute(
        "SELECT dataset, day, dry_run FROM ops.lifecycle_log WHERE action = 'rebuild_owed' ORDER BY dataset"
    ).fetchall()
    assert logged == [(ds, LATE, True) for ds in sorted(TIERED_DATASETS)]

    # Rebuilt by all but the marts: still held, for the marts. The other days go.
    rebuild(pg, LATE, rebuilt.REFRESHED[:-1])
    report = retention.apply(pg, store, Policy(), TODAY, NOW)
    done = by_day(report)
    assert done["meter_readings", LATE] == (
        retention.REBUILD_OWED,
        done["meter_readings", LATE][1].split(", not rebuilt since by ")[0]
        + ", not rebuilt since by metrify_dbt",
    )
    assert report.counts().set_index(["dataset", "action"]).loc[("grid_status", "rebuild_owed"), "days"] == 1
    for dataset in TIERED_DATASETS:
        assert hot(pg, dataset, LATE) > 0
        assert hot(pg, dataset, FIRST_DAY) == hot(pg, dataset, LAST_DAY) == 0

    # Once the marts rebuilt it too, the next run trims it.
    rebuild(pg, LATE, ("metrify_dbt",))
    done = by_day(retention.apply(pg, store, Policy(), TODAY + timedelta(days=7), NOW))
    assert {done[ds, LATE][0] for ds in TIERED_DATASETS} == {"deleted_hot"}
    assert all(hot(pg, ds, LATE) == 0 for ds in TIERED_DATASETS)

    # A later touch (a reviewer's decision) makes the day owed again.
    pg.execute(
        "INSERT INTO ops.retouched_days (batch_id, source, day) VALUES ('decision', 'meter_readings', %s)",
        (LATE,),
    )
    pg.commit()
    assert set(rebuilt.owed(pg, [LATE])) == {LATE}


def test_a_day_touched_again_says_so(pg: psycopg.Connection) -> None:
    """The trial: a reviewer's decision held a day back "touched by landing-... at 09:49", naming the
    batch that had brought the reading hours before, as if it were the cause."""
    touch(pg, LATE)
    rebuild(pg, LATE)
    pg.execute(
        "INSERT INTO ops.retouched_days (batch_id, source, day) VALUES ('late-1', 'meter_readings', %s)",
        (LATE,),
    )
    pg.commit()
    (owed,) = rebuilt.owed(pg, [LATE]).values()
    assert owed.again and owed.reason.startswith(
        "rebuild owed: touched again for late-1 (meter_readings: a reviewer's decision, a restore, a rebuild "
        "from raw, a withdrawal or a meter's first reading moved earlier) at "
    )


def test_a_touch_committed_after_a_rebuild_began_is_not_rebuilt_by_it(
    pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    """A batch still being ingested when a rebuild began: its stamp's clock is earlier than the
    rebuild's, but the rebuild could not read its rows. The snapshot, not the clock, decides."""
    with pg_resource.connect() as batch:
        batch.execute(
            "INSERT INTO ops.ingest_days (batch_id, source, day, records) VALUES ('slow', 'meter_readings', %s, 9)",
            (LATE,),
        )
        began = rebuilt.begin(pg)  # the rebuild starts while the batch's transaction is open
        batch.commit()
    for asset in rebuilt.REFRESHED:
        rebuilt.stamp(pg, asset, LATE, LATE, began)
    pg.commit()
    touched_at = pg.execute("SELECT recorded_at FROM ops.ingest_days WHERE batch_id = 'slow'").fetchone()
    assert touched_at is not None and touched_at[0] < began.at
    owed = rebuilt.owed(pg, [LATE, LAST_DAY])
    assert list(owed) == [LATE] and owed[LATE].assets == rebuilt.REFRESHED
    rebuild(pg, LATE)
    assert rebuilt.owed(pg, [LATE]) == {}


def test_the_refreshed_assets_record_the_days_they_rebuilt(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """VEE, anomaly scoring, enrichment and grid stability over the touched days each record them; a
    failed run records nothing (here: none failed). The marts' stamp is the dbt build's
    (tests/warehouse/test_assets.py)."""
    seed_hot_days(pg)
    touch(pg, LATE)
    result = dg.materialize(
        [vee_meter_readings, anomaly_scores, enriched_meter_readings, grid_stability],
        resources={
            "postgres": pg_resource,
            "redis": RedisResource(),
            "lake": LakeResource(url=str(tmp_path / "lake")),
            "grid": GridResource(),
        },
        tags=partition_range_tags(FIRST_DAY, LAST_DAY),
    )
    assert result.success
    stamped = pg.execute("SELECT asset, count(*) FROM ops.rebuilt_days GROUP BY 1 ORDER BY 1").fetchall()
    assert stamped == sorted((asset, DAYS) for asset in rebuilt.REFRESHED[:-1])
    owed = rebuilt.owed(pg, [FIRST_DAY, LATE, LAST_DAY])
    assert list(owed) == [LATE] and owed[LATE].assets == ("metrify_dbt",)


def test_the_cli_dry_run_and_run_show_the_day_held_back(pg: psycopg.Connection, lake: Lake) -> None:  # noqa: F811
    seed_hot_days(pg)
    touch(pg, LATE)
    as_of = str(TODAY)
    planned = invoke("lifecycle", "run", "--as-of", as_of, "--dry-run")
    assert "dry run: nothing changed" in planned and "rebuild_owed" in planned
    # and why, beside the table (it was only in ops.lifecycle_log)
    assert (
        f"meter_readings rebuild_owed ({LATE}): rebuild owed: touched by late-1 (meter_readings)"
        in " ".join(planned.split())
    )
    ran = invoke("lifecycle", "run", "--as-of", as_of)
    assert "rebuild_owed" in ran and "deleted_hot" in ran
    assert hot(pg, "meter_readings", LATE) == 48 and hot(pg, "meter_readings", FIRST_DAY) == 0
    detail = pg.execute(
        "SELECT detail FROM ops.lifecycle_log WHERE action = 'rebuild_owed' AND NOT dry_run "
        "AND dataset = 'meter_readings'"
    ).fetchone()
    assert detail is not None and "touched by late-1 (meter_readings)" in detail[0]
    rebuild(pg, LATE)
    again = invoke("lifecycle", "run", "--as-of", str(TODAY + timedelta(days=1)))
    assert "rebuild_owed" not in again and "deleted_hot" in again
    assert hot(pg, "meter_readings", LATE) == 0
