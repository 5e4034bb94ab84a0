"""Bulk review decisions on a real PostgreSQL: every selected item decided as a single decision is
(audit entry, reviewer, note, day stamped for rebuild), one VEE re-run per meter-day, and an item
decided meanwhile skipped and counted, never decided twice."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.contracts import METER_READINGS
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.meters.vee import review as vee_review
from metrify_assets.quality import review
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.lake import Lake
from metrify_assets.storage.audit import Caller

pytestmark = pytest.mark.postgres
NOW = pd.Timestamp("2026-04-01T00:00:00Z")
N = 6  # flagged readings of M1 on 2026-03-29


def reading(meter: str, start: pd.Timestamp, voltage: float) -> str:
    return json.dumps(
        {
            "meter_id": meter,
            "reading_start": start.isoformat(),
            "interval_minutes": 15,
            "energy_kwh": 0.5,
            "voltage_v": voltage,
        }
    )


def seed(conn: psycopg.Connection, lake: Lake) -> None:
    """A day of M1 with N readings flagged `voltage_out_of_range`, one flagged reading of M2 that day
    and one of M1 the next day."""
    day = pd.Timestamp("2026-03-29T00:00:00Z")
    messages = [
        reading("M1", day + pd.Timedelta(minutes=15 * i), 262.0 if i < N else 231.0) for i in range(96)
    ]
    messages.append(reading("M2", day, 262.0))
    messages.append(reading("M1", day + pd.Timedelta(days=1), 262.0))
    spec = BatchSpec(METER_READINGS, "b1", "landing", "b1.jsonl", date(2026, 3, 29))
    process_batch(spec, messages, [10] * len(messages), lake, conn, NOW, alert_threshold=0)
    conn.commit()
    assert review.count_items(conn) == N + 2


@pytest.fixture
def seeded(pg: psycopg.Connection, tmp_path: Path) -> psycopg.Connection:
    seed(pg, Lake(str(tmp_path / "lake")))
    return pg


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[date, list[str]]]:
    """The VEE re-runs a bulk decision makes: (day, meters) each."""
    made: list[tuple[date, list[str]]] = []
    real = vee_review.run_days

    def counted(conn: psycopg.Connection, first: date, last: date, *args: Any, **kwargs: Any) -> Any:
        assert first == last
        made.append((first, list(kwargs["meter_ids"])))
        return real(conn, first, last, *args, **kwargs)

    monkeypatch.setattr(vee_review, "run_days", counted)
    return made


def one_day_of_m1() -> review.Selection:
    return review.Selection(meter="M1", first=date(2026, 3, 29), last=date(2026, 3, 29))


def test_bulk_approve_of_one_meter_day_decides_each_item_and_reruns_vee_once(
    seeded: psycopg.Connection, runs: list[tuple[date, list[str]]]
) -> None:
    items = review.select_pending(seeded, one_day_of_m1())
    assert len(items) == N and {(i.meter, i.day) for i in items} == {("M1", date(2026, 3, 29))}
    before = seeded.execute("SELECT count(*) FROM ops.touched_days").fetchone()
    # The audit log is append-only (never truncated between tests): this test's entries come after.
    audited = seeded.execute("SELECT coalesce(max(id), 0) FROM ops.audit_log").fetchone()
    caller = Caller("ana", "cli", "host")
    done = vee_review.decide_many(seeded, "approve", items, "ana", "CT swap, voltage fine", caller=caller)
    assert (done.selected, done.decided, done.already_decided, done.superseded, done.refused) == (
        N,
        N,
        0,
        0,
        [],
    )
    assert runs == [(date(2026, 3, 29), ["M1"])]  # one re-run for the meter-day, not N
    assert done.meter_days == {date(2026, 3, 29): ["M1"]} and not done.vee_errors
    decided = review.list_items(seeded, "approved", limit=100)
    assert len(decided) == N
    assert {(i.decided_by, i.decision_note) for i in decided} == {("ana", "CT swap, voltage fine")}
    audit = seeded.execute(
        "SELECT actor, channel, details->>'status' FROM ops.audit_log WHERE action = 'review.approve' AND id > %s",
        audited,
    ).fetchall()
    assert audit == [("ana", "cli", "approved")] * N
    # each decision stamps the reading's day again, as a single one does
    after = seeded.execute("SELECT count(*) FROM ops.touched_days").fetchone()
    assert before is not None and after is not None and after[0] >= before[0]
    stamped = seeded.execute(
        "SELECT count(*) FROM ops.touched_days WHERE batch_id = 'b1' AND day = '2026-03-29'"
    ).fetchone()
    assert stamped is not None and stamped[0] >= N
    edited = seeded.execute(
        "SELECT count(*) FROM ops.vee_readings WHERE meter_id = 'M1' AND edited_by = 'ana'"
    ).fetchone()
    assert edited == (N,)
    # the other items stay pending
    assert {(i.record_key.split("|")[0]) for i in review.list_items(seeded)} == {"M1", "M2"}
    assert review.count_items(seeded) == 2


def test_items_decided_meanwhile_are_skipped_and_counted(
    seeded: psycopg.Connection, runs: list[tuple[date, list[str]]]
) -> None:
    items = review.select_pending(seeded, one_day_of_m1())
    first, second = items[0], items[1]
    vee_review.decide(seeded, "reject", first.batch_id, first.record_index, by="bo", note="bad CT")
    runs.clear()
    review.approve(seeded, second.batch_id, second.record_index, by="bo", why="fine")
    done = vee_review.decide_many(seeded, "approve", items, "ana", "bulk ok")
    assert (done.decided, done.already_decided) == (N - 2, 2)
    assert runs == [(date(2026, 3, 29), ["M1"])]
    kept = review.get_item(seeded, first.batch_id, first.record_index)
    assert (kept.status, kept.decided_by, kept.decision_note) == ("rejected", "bo", "bad CT")
    # nothing left: a second bulk run selects nothing and re-runs nothing
    assert review.select_pending(seeded, one_day_of_m1()) == []


def test_a_bulk_reject_over_days_reruns_each_meter_day_once(
    seeded: psycopg.Connection, runs: list[tuple[date, list[str]]]
) -> None:
    items = review.select_pending(seeded, review.Selection(reason="voltage_out_of_range"))
    assert len(items) == N + 2
    done = vee_review.decide_many(seeded, "reject", items, "ana", "meter fault")
    assert done.decided == N + 2
    assert runs == [(date(2026, 3, 29), ["M1", "M2"]), (date(2026, 3, 30), ["M1"])]
    assert seeded.execute(
        "SELECT count(*) FROM ops.quarantine WHERE reasons LIKE 'review_rejected:%'"
    ).fetchone() == (N + 2,)


def test_a_selection_needs_a_filter(seeded: psycopg.Connection) -> None:
    with pytest.raises(review.ReviewError, match="needs a filter"):
        review.select_pending(seeded, review.Selection())
    with pytest.raises(review.ReviewError, match="who made it"):
        vee_review.decide_many(seeded, "approve", [], " ", "x")


def test_show_is_one_definition_for_the_cli(seeded: psycopg.Connection) -> None:
    (item, *_) = review.list_items(seeded)
    shown = review.show(seeded, item.batch_id, item.record_index)
    assert shown["item"]["record_key"] == item.record_key
    assert shown["stored_row"]["voltage_v"] == 262.0 and shown["not_the_flagged_version"] is None
    with pytest.raises(review.UnknownItemError):
        review.show(seeded, "nope", 0)


def test_cli_bulk_approve_previews_asks_and_decides(
    seeded: psycopg.Connection,
    pg_resource: PostgresResource,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    runs: list[tuple[date, list[str]]],
) -> None:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    base = ["review", "approve", "--by", "ana", "--reason", "fine"]
    nothing = runner.invoke(app, base)
    assert nothing.exit_code == 2 and "filter for a bulk decision" in nothing.output
    both = runner.invoke(app, [*base, "b1", "1", "--meter", "M1"])
    assert both.exit_code == 2 and "not both" in both.output
    one_dry = runner.invoke(app, [*base, "b1", "1", "--dry-run"])
    assert (
        one_dry.exit_code == 2
        and "--dry-run is for a bulk decision (a filter), not one item" in one_dry.output
    )
    missing = runner.invoke(app, [*base, "nope", "0"])
    assert missing.exit_code == 1 and "no review item nope #0" in missing.output
    assert "metrify review list" in missing.output  # where the items' BATCH_ID RECORD_INDEX are
    blank = runner.invoke(app, ["review", "approve", "--by", " ", "--reason", "fine", "b1", "1"])
    assert blank.exit_code == 1 and "needs who made it (--by): it is blank" in blank.output
    unknown = runner.invoke(app, [*base, "--flag", "spkie"])
    assert unknown.exit_code == 2 and "unknown reason 'spkie'" in unknown.output
    preview = runner.invoke(app, [*base, "--meter", "M1", "--day", "2026-03-29", "--dry-run"])
    assert preview.exit_code == 0, preview.output
    assert (
        f"would approve {N} pending items (meter M1, day 2026-03-29): 1 meter, 1 meter-day" in preview.output
    )
    assert review.count_items(seeded) == N + 2 and runs == []
    no_yes = runner.invoke(app, [*base, "--meter", "M1", "--day", "2026-03-29"], input="")
    assert no_yes.exit_code == 2 and review.count_items(seeded) == N + 2  # not confirmed
    assert "no terminal to confirm on: add --yes to approve them" in no_yes.output
    done = runner.invoke(app, [*base, "--meter", "M1", "--day", "2026-03-29", "--yes"])
    assert done.exit_code == 0, done.output
    assert f"approved {N} of {N}; skipped 0 already decided" in done.output
    assert "VEE: re-ran 1 meter-day;" in done.output
    # VEE took the decisions; the marts and the report only after the next run, which the output says.
    assert "marts and quality report: not yet; the next `metrify run`" in done.output
    assert runs == [(date(2026, 3, 29), ["M1"])]
    assert review.count_items(seeded) == 2
    shown = runner.invoke(app, ["review", "show", "b1", "0", "--json"])
    assert shown.exit_code == 0 and json.loads(shown.output)["item"]["status"] == "approved"


def test_a_day_bound_selects_a_registered_meters_items_by_its_local_day(seeded: psycopg.Connection) -> None:
    """The registry's time zone places an item (storage.days.METER_TIMEZONE, as ingestion and VEE
    place its reading): M2's reading at 00:00 UTC on 29 March is 20:00 on the 28th in New York; M1,
    not in the registry, keeps the UTC day."""
    seeded.execute(
        "INSERT INTO ops.meters (meter_id, segment, region, timezone) "
        "VALUES ('M2', 'residential', 'US-NY', 'America/New_York')"
    )
    seeded.commit()

    def days(meter: str, day: date) -> set[tuple[str | None, date | None]]:
        items = review.select_pending(seeded, review.Selection(meter=meter, first=day, last=day))
        return {(i.meter, i.day) for i in items}

    assert days("M2", date(2026, 3, 28)) == {("M2", date(2026, 3, 28))}
    assert days("M2", date(2026, 3, 29)) == set()
    assert days("M1", date(2026, 3, 29)) == {("M1", date(2026, 3, 29))}
