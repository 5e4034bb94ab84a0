"""A registry file sent again must not version its meters: `metrify simulate` into a landing
directory, `meter_registry` into PostgreSQL and dbt's `snp_ops__meters` snapshot (what `dim_meter`
numbers its versions from), as the hourly refresh runs them."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from metrify_assets.contracts import METER_REGISTRY_FILE
from metrify_assets.meters.registry import meter_registry
from metrify_assets.resources import LandingResource, PostgresResource
from tests.simulation.test_writer import cli
from tests.warehouse.test_dbt_build import run_dbt_build

pytestmark = pytest.mark.postgres


def simulate_into(landing: Path, *options: str) -> None:
    """`metrify simulate` (one day, readings only) into `landing`, its registry file included."""
    args = ["simulate", "--days", "1", "--sources", "meter_readings", "--landing-dir", str(landing)]
    result = CliRunner().invoke(cli(), [*args, "--labels", str(landing.parent / "labels.jsonl"), *options])
    assert result.exit_code == 0, result.output


def load_and_snapshot(landing: Path, postgres: PostgresResource, target: Path) -> None:
    """`meter_registry` over the landing directory's registry file, then dbt's `snp_ops__meters`
    snapshot of ops.meters."""
    result = dg.materialize(
        [meter_registry], resources={"landing": LandingResource(directory=str(landing)), "postgres": postgres}
    )
    assert result.success
    results = run_dbt_build(postgres.get_url(), target, "--select", "snp_ops__meters")
    assert [(r["unique_id"], r["status"]) for r in results] == [
        ("snapshot.metrify.snp_ops__meters", "success")
    ]


def versions(conn: psycopg.Connection) -> dict[str, int]:
    """Snapshot rows (versions) per meter. The snapshot outlives `ops` between tests (other modules'
    meters may be in it), so the tests compare counts before and after."""
    rows = conn.execute(
        "SELECT meter_id, count(*) FROM snapshots.snp_ops__meters GROUP BY meter_id"
    ).fetchall()
    return {str(meter): int(n) for meter, n in rows}


def current(conn: psycopg.Connection, meter_id: str) -> tuple[str, str]:
    row = conn.execute(
        "SELECT tariff, grid_node_id FROM snapshots.snp_ops__meters WHERE meter_id = %s AND dbt_valid_to IS NULL",
        (meter_id,),
    ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


def test_a_registry_sent_again_versions_only_the_meters_that_changed(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """The user trial's case: `metrify simulate` again (more meters, a later start, another fault
    rate) and a refresh gave every meter a second version in `dim_meter`, though none had changed.
    Only a meter whose attributes changed (here a tariff and a grid node) gets one."""
    target = tmp_path / "dbt_target"
    landing = tmp_path / "landing"
    simulate_into(landing, "--meters", "20", "--start", "2026-03-28")
    first = pd.read_csv(landing / METER_REGISTRY_FILE, dtype=str)
    load_and_snapshot(landing, pg_resource, target)
    before = versions(pg)
    ids = list(first["meter_id"])
    assert len(ids) == 20 and all(before.get(meter, 0) >= 1 for meter in ids)

    load_and_snapshot(landing, pg_resource, target)  # the same file again
    assert versions(pg) == before

    simulate_into(landing, "--meters", "30", "--start", "2026-04-04", "--fault-rate", "0.05")
    again = pd.read_csv(landing / METER_REGISTRY_FILE, dtype=str)
    load_and_snapshot(landing, pg_resource, target)
    after = versions(pg)
    assert {meter: after[meter] for meter in ids} == {meter: before[meter] for meter in ids}
    pd.testing.assert_frame_equal(again.head(20), first)  # the same meters, described the same
    assert all(after.get(meter) == 1 for meter in again["meter_id"][20:])  # the 10 new meters: one each

    changed = again.copy()
    swapped, retariffed = ids[2], ids[6]
    changed.loc[changed["meter_id"] == swapped, "grid_node_id"] = "GN-099"
    changed.loc[changed["meter_id"] == retariffed, "tariff"] = "tariff-changed"
    changed.to_csv(landing / METER_REGISTRY_FILE, index=False)
    load_and_snapshot(landing, pg_resource, target)
    final = versions(pg)
    assert {m: final[m] - after[m] for m in again["meter_id"] if final[m] != after[m]} == {
        swapped: 1,
        retariffed: 1,
    }
    assert current(pg, swapped)[1] == "GN-099"
    assert current(pg, retariffed)[0] == "tariff-changed"
