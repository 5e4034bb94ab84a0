"""`metrify holds`, `metrify lifecycle` and `metrify restore` against a real PostgreSQL and a local lake,
with `lifecycle run` executing the weekly job's lifecycle in process on a temporary Dagster instance."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.lifecycle import holds, state
from metrify_assets.lifecycle.policy import TIERED_DATASETS
from metrify_assets.lifecycle.tables import TABLES
from metrify_assets.lifecycle.tiers import copy_to_warm, data_key
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.lake import Lake
from tests.lifecycle.conftest import DAYS, FIRST_DAY, seed_hot_days

pytestmark = pytest.mark.postgres

D = FIRST_DAY
DAY_LIST = [D + timedelta(days=d) for d in range(DAYS)]
NOW = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.fixture
def lake(tmp_path: Path, pg_resource: PostgresResource, monkeypatch: pytest.MonkeyPatch) -> Lake:
    """The CLI on the test database, a local lake and a temporary home and Dagster instance."""
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    monkeypatch.setenv("METRIFY_LAKE_URL", str(tmp_path / "lake"))
    monkeypatch.setenv("COLUMNS", "200")  # rich tables unwrapped
    return Lake(str(tmp_path / "lake"))


def invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return " ".join(result.output.split())  # rich wraps long lines


def stdout_of(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def hot(conn: psycopg.Connection, dataset: str, day: date) -> int:
    count = len(TABLES[dataset].read_days(conn, day, day))
    conn.commit()  # no snapshot or lock held while the CLI works
    return count


def tiers(conn: psycopg.Connection, dataset: str = "meter_readings") -> list[str]:
    found = [s.tier for s in state.days(conn, dataset, D, DAY_LIST[-1])]
    conn.commit()
    return found


def test_holds_lifecycle_run_and_restore_through_the_cli(pg: psycopg.Connection, lake: Lake) -> None:
    seed_hot_days(pg)
    for dataset in TIERED_DATASETS:
        for day in DAY_LIST:
            assert copy_to_warm(pg, lake, TABLES[dataset], day, NOW).action == "copied"
            pg.commit()

    # A dry run lists what would move and go, and changes nothing.
    planned = invoke("lifecycle", "run", "--as-of", str(D + timedelta(days=31)), "--dry-run")
    assert "dry run: nothing changed" in planned and "delete_hot" in planned
    # Which days: with --json every day of each dataset's actions, in the table as ranges.
    plan = json.loads(
        stdout_of("lifecycle", "run", "--as-of", str(D + timedelta(days=31)), "--dry-run", "--json")
    )
    assert plan["dry_run"] and plan["as_of"] == str(D + timedelta(days=31))
    deleting = {a["dataset"]: a["days"] for a in plan["actions"] if a["action"] == "delete_hot"}
    assert set(deleting) == set(TIERED_DATASETS)
    due = deleting["meter_readings"]
    assert due and due == sorted(due) and set(due) <= {str(day) for day in DAY_LIST}
    shown = due[0] if len(due) == 1 else f"{due[0]}..{due[-1]}"
    assert shown in planned
    assert all(hot(pg, ds, day) > 0 for ds in TIERED_DATASETS for day in DAY_LIST)
    assert tiers(pg) == ["warm"] * DAYS
    assert lake.head(data_key("meter_readings", D)).storage_class == "STANDARD"  # type: ignore[union-attr]

    # A hold on every dataset's first day locks its lake objects (a data object and a manifest each).
    placed = invoke("holds", "add", "--reason", "case 2026-17", "--from", str(D), "--by", "x")
    assert f"on all {D} by x; 6 lake objects locked" in placed
    for dataset in TIERED_DATASETS:
        assert lake.head(data_key(dataset, D)).legal_hold  # type: ignore[union-attr]
    assert not lake.head(data_key("meter_readings", D + timedelta(days=1))).legal_hold  # type: ignore[union-attr]
    (hold,) = json.loads(invoke("holds", "list", "--json"))
    assert (hold["dataset"], hold["first_day"], hold["last_day"], hold["reason"], hold["author"]) == (
        "all",
        str(D),
        str(D),
        "case 2026-17",
        "x",
    )
    assert hold["objects_locked"] == 6 and hold["released_at"] is None
    bad = invoke("holds", "add", "--reason", "r", "--from", str(D), "--dataset", "bogus", code=2)
    assert "error: unknown dataset 'bogus'" in bad
    assert len(json.loads(invoke("holds", "list", "--json"))) == 1

    # The weekly lifecycle past the hot window: the held day stays hot, the others' hot rows go. (A run
    # covers a partition per day from the oldest day not archived to yesterday, and each costs Dagster
    # events, so the clock stays short here: the cold and archive moves are test_assets'.)
    ran = invoke("lifecycle", "run", "--as-of", str(D + timedelta(days=32)))
    assert "deleted_hot" in ran and "held" in ran and "dry run" not in ran
    for dataset in TIERED_DATASETS:
        assert hot(pg, dataset, D) > 0
        assert all(hot(pg, dataset, day) == 0 for day in DAY_LIST[1:])
    assert tiers(pg) == ["warm"] * DAYS
    status = json.loads(invoke("lifecycle", "status", "--json"))
    assert {
        (r["dataset"], r["tier"], r["storage_class"], r["days"], r["days_hot_deleted"]) for r in status
    } == {(ds, "warm", "STANDARD", DAYS, DAYS - 1) for ds in TIERED_DATASETS}
    assert "1 active legal holds" in invoke("lifecycle", "status")

    # Released: the locks are lifted, and the next run takes the day too.
    released = invoke("holds", "release", str(hold["hold_id"]), "--by", "x")
    assert f"hold {hold['hold_id']} on all {D} released by x; 6 lake objects unlocked" in released
    assert not lake.head(data_key("grid_status", D)).legal_hold  # type: ignore[union-attr]
    assert json.loads(invoke("holds", "list", "--json")) == []
    again = invoke("holds", "release", str(hold["hold_id"]), "--by", "x", code=1)
    assert "already released" in again
    ran = invoke("lifecycle", "run", "--as-of", str(D + timedelta(days=33)))
    assert "deleted_hot" in ran and "held" not in ran
    assert all(hot(pg, ds, day) == 0 for ds in TIERED_DATASETS for day in DAY_LIST)
    assert tiers(pg) == ["warm"] * DAYS
    status = json.loads(invoke("lifecycle", "status", "--json"))
    assert {(r["tier"], r["storage_class"], r["days"], r["days_hot_deleted"]) for r in status} == {
        ("warm", "STANDARD", DAYS, DAYS)
    }

    # A raw rebuild refuses archived days, and says how to bring them back.
    refused = invoke("restore", "--using", "raw", "--dataset", "grid_status", "--from", str(D), code=1)
    assert "were archived out of the hot tier: restore them first" in refused
    assert hot(pg, "grid_status", D) == 0

    # Restore from the lake copies: the rows come back; a second run finds them hot.
    last = str(DAY_LIST[-1])
    restored = invoke("restore", "--from", str(D), "--to", last)
    assert "restored" in restored and "from STANDARD" in restored
    assert all(hot(pg, "meter_readings", day) == 48 for day in DAY_LIST)
    assert hot(pg, "grid_status", D) == 0  # only the dataset asked for
    second = json.loads(stdout_of("restore", "--from", str(D), "--to", last, "--json").splitlines()[-1])
    assert [o["action"] for o in second["outcomes"]] == ["already hot"] * DAYS

    # Restored days are hot again, but not rebuildable from raw: their batches are not in the ledger.
    refused = invoke("restore", "--using", "raw", "--from", str(D), code=1)
    assert "batches the ledger does not know" in refused
    assert hot(pg, "meter_readings", D) == 48


def test_a_hold_on_a_meter_the_store_has_no_trace_of_is_refused_unless_asked_for(
    pg: psycopg.Connection, lake: Lake
) -> None:
    """A mistyped meter id would lock the days' lake objects (which a lock may keep for good) for no
    data: refused, nothing held; a hold for data expected later is placed with the flag."""
    seed_hot_days(pg)
    refused = invoke(
        "holds", "add", "--reason", "r", "--from", str(D), "--meter", "NOPE-1", "--by", "x", code=1
    )
    assert "no meter 'NOPE-1'" in refused and "--allow-unknown-meter" in refused
    assert json.loads(invoke("holds", "list", "--json")) == []
    known = pg.execute("SELECT meter_id FROM ops.meter_readings LIMIT 1").fetchone()
    pg.commit()
    assert known is not None
    invoke("holds", "add", "--reason", "r", "--from", str(D), "--meter", known[0], "--by", "x")
    invoke(
        "holds",
        "add",
        "--reason",
        "r",
        "--from",
        str(D),
        "--meter",
        "NEW-1",
        "--allow-unknown-meter",
        "--by",
        "x",
    )
    assert sorted(h["meter_id"] for h in json.loads(invoke("holds", "list", "--json"))) == sorted(
        [known[0], "NEW-1"]
    )


def test_lifecycle_run_shows_the_rows_a_hold_keeps(pg: psycopg.Connection, lake: Lake) -> None:
    """`held` said 0 rows for days a hold kept hot (retention logged no count), and nothing of a meter's
    hold, whose rows stay while the other meters' go. The rows are the day's, counted once a day as
    the days column counts days, in a dry run and in the run; a step without a count shows -."""
    seed_hot_days(pg)
    for dataset in TIERED_DATASETS:
        for day in DAY_LIST:
            assert copy_to_warm(pg, lake, TABLES[dataset], day, NOW).action == "copied"
            pg.commit()
    invoke("holds", "add", "--reason", "case 1", "--from", str(D), "--by", "x")  # every dataset's first day
    second = str(DAY_LIST[1])
    invoke("holds", "add", "--reason", "case 2", "--from", second, "--meter", "m-001", "--by", "x")
    past_hot = str(D + timedelta(days=32))

    def held(*extra: str) -> dict[str, tuple[list[str], int | None]]:
        report = json.loads(stdout_of("lifecycle", "run", "--as-of", past_hot, "--json", *extra))
        return {a["dataset"]: (a["days"], a["rows"]) for a in report["actions"] if a["action"] == "held"}

    # Day 1 is held whole (48 readings, 144 grid samples, 24 observations); of day 2, meter m-001's 24
    # readings stay while m-002's go.
    expected = {
        "meter_readings": ([str(D), second], 48 + 24),
        "grid_status": ([str(D)], 144),
        "weather_observations": ([str(D)], 24),
    }
    assert held("--dry-run") == expected
    table = invoke("lifecycle", "run", "--as-of", past_hot, "--dry-run")
    assert re.search(rf"meter_readings │ held │ 2 │ 72 │ {D}\.\.{second}", table), table
    assert held() == expected
    assert hot(pg, "meter_readings", D) == 48 and hot(pg, "meter_readings", DAY_LIST[1]) == 24
    assert hot(pg, "grid_status", DAY_LIST[1]) == 0

    # Later, past the warm window too: a held day is logged by the cold move (its copy stays warm) and
    # by retention (its hot rows stay), the same rows: counted once. The meter's hold keeps no grid day
    # (a grid sample has no meter): day 2 moves to cold.
    later = json.loads(
        stdout_of("lifecycle", "run", "--as-of", str(D + timedelta(days=120)), "--dry-run", "--json")
    )
    rows = {(a["dataset"], a["action"]): (a["entries"], a["days"], a["rows"]) for a in later["actions"]}
    entries, days, counted = rows[("grid_status", "held")]
    assert entries > len(days) and (days, counted) == ([str(D)], 144)
    assert second in rows[("grid_status", "move_cold")][1]
    assert rows[("meter_readings", "held")][1] == [str(D), second]


def test_a_hold_until_released_covers_every_day_from_its_first(pg: psycopg.Connection, lake: Lake) -> None:
    """A hold's days are bounded (a typo such as 0001-01-01..9999-12-31 is refused before any
    connection: tests/cli/test_main.py); a hold on every day to come has its own option."""
    seed_hot_days(pg)
    for day in DAY_LIST:
        assert copy_to_warm(pg, lake, TABLES["meter_readings"], day, NOW).action == "copied"
        pg.commit()
    second = DAY_LIST[1]
    placed = invoke(
        "holds", "add", "--reason", "case 5", "--from", str(second), "--until-released", "--by", "x"
    )
    assert f"on all {second} on (until released) by x; 4 lake objects locked" in placed
    (hold,) = json.loads(invoke("holds", "list", "--json"))
    assert (hold["first_day"], hold["last_day"], hold["until_released"]) == (str(second), "9999-12-31", True)
    later = second + timedelta(days=4000)  # a day whose data is yet to come
    assert [h.hold_id for h in holds.covering(pg, "meter_readings", later, later)] == [hold["hold_id"]]
    assert holds.covering(pg, "meter_readings", D, D) == []
    pg.commit()
    assert not lake.head(data_key("meter_readings", D)).legal_hold  # type: ignore[union-attr]
    assert lake.head(data_key("meter_readings", DAY_LIST[-1])).legal_hold  # type: ignore[union-attr]
    released = invoke("holds", "release", str(hold["hold_id"]), "--by", "x")
    assert "released by x; 4 lake objects unlocked" in released
