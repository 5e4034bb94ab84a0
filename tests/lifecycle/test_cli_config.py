"""`metrify lifecycle run --config FILE` and its exit status, against a real PostgreSQL and a local lake.

A trial's file with `dry_run: true` ran destructively (the loader dropped `dry_run` and `as_of`: it
deleted hot rows and moved days), the docs' launchpad-shaped example died in a Dagster traceback, and
a run in which a day failed its move exited 0. The files' parsing is tests/cli/test_lifecycle_config.py's.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.lifecycle.policy import TIERED_DATASETS
from metrify_assets.lifecycle.tables import TABLES
from metrify_assets.lifecycle.tiers import copy_to_warm, data_key
from metrify_assets.resources.lake import Lake
from tests.lifecycle.conftest import FIRST_DAY, seed_hot_days
from tests.lifecycle.test_cli import DAY_LIST, NOW, hot, invoke, lake, tiers  # noqa: F401 - `lake`: the CLI's fixture

pytestmark = pytest.mark.postgres

D = FIRST_DAY


def copied(pg: psycopg.Connection, lake: Lake) -> None:  # noqa: F811
    """The seeded days, each with its warm copy."""
    seed_hot_days(pg)
    for dataset in TIERED_DATASETS:
        for day in DAY_LIST:
            assert copy_to_warm(pg, lake, TABLES[dataset], day, NOW).action == "copied"
            pg.commit()


def test_a_dry_run_and_the_clock_in_the_file_are_honoured(
    pg: psycopg.Connection,
    lake: Lake,  # noqa: F811
    tmp_path: Path,
) -> None:
    copied(pg, lake)
    past_hot = D + timedelta(days=32)  # every seeded day is past the 30-day hot window
    flat = tmp_path / "lc.yaml"
    flat.write_text(f"dry_run: true\nas_of: '{past_hot}'\nages: {{grid_status: {{hot_days: 14}}}}\n")
    planned = invoke("lifecycle", "run", "--config", str(flat))
    assert f"as of {past_hot} (from as_of in {flat}); dry run (from dry_run: true in {flat})" in planned
    assert f"lifecycle as of {past_hot} (dry run: nothing changed)" in planned and "delete_hot" in planned
    assert all(hot(pg, ds, day) > 0 for ds in TIERED_DATASETS for day in DAY_LIST)
    applied = pg.execute(
        "SELECT count(*) FROM ops.lifecycle_log WHERE NOT dry_run AND run_id IS NOT NULL"
    ).fetchone()
    pg.commit()
    assert applied == (0,)

    # The docs' launchpad shape, unwrapped; --as-of wins over the file's clock.
    launchpad = tmp_path / "launchpad.yaml"
    launchpad.write_text(
        f"ops:\n  retention_cleanup:\n    config: {{dry_run: true, as_of: '{D}', ages: {{grid_status: {{hot_days: 14}}}}}}\n"
    )
    result = CliRunner().invoke(
        app, ["lifecycle", "run", "--config", str(launchpad), "--as-of", str(past_hot), "--json"]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    plan = json.loads(result.stdout)
    where = f"{launchpad} at ops.retention_cleanup.config"
    assert (plan["as_of"], plan["dry_run"], plan["dry_run_from"]) == (
        str(past_hot),
        True,
        f"dry_run: true in {where}",
    )
    assert plan["as_of_from"] == f"--as-of, over as_of {D} in {where}"
    assert {a["dataset"] for a in plan["actions"] if a["action"] == "delete_hot"} == set(TIERED_DATASETS)
    assert plan["failed"] == []
    assert all(hot(pg, ds, day) > 0 for ds in TIERED_DATASETS for day in DAY_LIST)
    assert tiers(pg) == ["warm"] * len(DAY_LIST)
    audited = pg.execute(
        "SELECT details->>'dry_run', details->>'dry_run_from' FROM ops.audit_log "
        "WHERE action = 'lifecycle.run' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    pg.commit()
    assert audited == ("true", f"dry_run: true in {where}")


def test_a_day_that_failed_its_move_fails_the_command_and_is_named(
    pg: psycopg.Connection,
    lake: Lake,  # noqa: F811
    tmp_path: Path,
) -> None:
    copied(pg, lake)
    # Grid days leave PostgreSQL after a day and go cold after five.
    policy = tmp_path / "lc.yaml"
    policy.write_text("ages: {grid_status: {hot_days: 1, warm_days: 5}}\n")
    first = invoke("lifecycle", "run", "--config", str(policy), "--as-of", str(D + timedelta(days=4)))
    assert re.search(r"grid_status\W+deleted_hot", first) and "failed" not in first.replace(str(policy), "")
    assert all(hot(pg, "grid_status", day) == 0 for day in DAY_LIST)
    # The first day's copy is damaged: its move to cold fails its check, the other day due moves, and
    # the run itself succeeds (the day's failure is an asset check and a lifecycle alert).
    damaged = lake.root / data_key("grid_status", D)
    body = bytearray(damaged.read_bytes())
    body[-20] ^= 0xFF
    damaged.write_bytes(bytes(body))
    ran = invoke("lifecycle", "run", "--config", str(policy), "--as-of", str(D + timedelta(days=6)), code=1)
    assert re.search(r"grid_status\W+moved_cold", ran)
    assert "1 day failed and stays where it was" in ran
    assert f"grid_status {D}: not moved to cold:" in ran and "SHA-256" in ran
    assert ran.index("1 day failed") > ran.index("tier days covered")  # at the end, after the table
    assert tiers(pg, "grid_status") == ["warm", "cold", "warm"]
    result = CliRunner().invoke(
        app, ["lifecycle", "run", "--config", str(policy), "--as-of", str(D + timedelta(days=6)), "--json"]
    )
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [(f["dataset"], f["day"]) for f in report["failed"]] == [("grid_status", str(D))]
