"""`metrify dlq discard` closes dead letters no replay will ever accept: resolved as discarded, kept
in quarantine, audit-logged, and no longer counted as waiting (the metrify_dlq_records gauge that
`metrify status` reads, `dlq list`, `dlq replay`). `dlq list` shows the newest first and takes --since,
so a new fault is not hidden behind old junk."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.ingestion import dead_letters
from metrify_assets.observability.store_metrics import backlog_families
from metrify_assets.quality.quarantine import QuarantineRow, quarantine
from metrify_assets.resources import PostgresResource
from metrify_assets.storage.audit import Caller

pytestmark = pytest.mark.postgres
SOURCE = "weather_observations"
JUNK = "malformed:too_many_records (450000; at most 10000)"


def waiting(conn: psycopg.Connection) -> float:
    """The metrify_dlq_records gauge of the source (what `metrify status` says waits for a fix)."""
    [dlq, _] = backlog_families(conn)
    return next(s.value for s in dlq.samples if s.labels["source"] == SOURCE)


def seed(conn: psycopg.Connection) -> None:
    """Old junk (40 days ago, two batches), and a new fault of today."""
    for batch in ("old-1", "old-2"):
        quarantine(conn, SOURCE, batch, [QuarantineRow(i, '{"records":[7]}', JUNK, 1) for i in range(3)])
    conn.execute("UPDATE ops.quarantine SET quarantined_at = now() - interval '40 days'")
    quarantine(
        conn,
        SOURCE,
        "new-1",
        [QuarantineRow(0, '{"station_id": "W1"}', "malformed:missing_field:observed_at", 2)],
    )
    conn.commit()


def audit_entries(conn: psycopg.Connection, since_id: int) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT actor, action, target, affected, details->>'note', details->'filters', details->'batches' "
        "FROM ops.audit_log WHERE id > %s ORDER BY id",
        (since_id,),
    ).fetchall()


def last_audit_id(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT coalesce(max(id), 0) FROM ops.audit_log").fetchone()
    assert row is not None
    return int(row[0])


def test_discarded_dead_letters_are_resolved_kept_audited_and_no_longer_wait(pg: psycopg.Connection) -> None:
    seed(pg)
    start = last_audit_id(pg)
    assert waiting(pg) == 7
    selection = dead_letters.Selection(reason="malformed:too_many_records")
    letters = dead_letters.keys(pg, selection)
    done = dead_letters.discard(
        pg, letters, "test producer junk", Caller("ana", "cli", "host"), {"reason": "x"}
    )
    assert done == {SOURCE: 6}
    assert waiting(pg) == 1  # only the new fault waits
    rows = pg.execute(
        "SELECT batch_id, resolved_at IS NOT NULL, resolved_by, replays FROM ops.quarantine ORDER BY 1, record_index"
    ).fetchall()
    assert len(rows) == 7  # kept, for the quarantine's retention
    assert {r[1:] for r in rows if r[0] != "new-1"} == {(True, "discarded by ana: test producer junk", 0)}
    assert [r[1] for r in rows if r[0] == "new-1"] == [False]
    assert [d.batch_id for d in dead_letters.select(pg, dead_letters.Selection())] == [
        "new-1"
    ]  # what a replay takes
    old = dead_letters.select(pg, dead_letters.Selection(batch_ids=("old-1",), include_resolved=True))
    assert [d.discarded for d in old] == [True] * 3
    assert audit_entries(pg, start) == [
        (
            "ana",
            "dlq.discard",
            f"dead_letters:{SOURCE}",
            6,
            "test producer junk",
            {"reason": "x"},
            ["old-1", "old-2"],
        )
    ]
    # Discarding again finds nothing unresolved, and changes nothing.
    assert dead_letters.discard(pg, letters, "again", Caller("bo", "cli"), {}) == {}
    assert pg.execute("SELECT count(*) FROM ops.quarantine WHERE resolved_by LIKE '%%bo%%'").fetchone() == (
        0,
    )


def test_a_letter_a_replay_resolved_meanwhile_keeps_its_resolution(pg: psycopg.Connection) -> None:
    seed(pg)
    letters = dead_letters.keys(pg, dead_letters.Selection(batch_ids=("old-1",)))
    pg.execute(
        "UPDATE ops.quarantine SET resolved_at = now(), resolved_by = 'replay-x' WHERE record_index = 0"
    )
    pg.commit()
    assert dead_letters.discard(pg, letters, "junk", Caller("ana", "cli"), {}) == {SOURCE: 2}
    assert pg.execute(
        "SELECT resolved_by FROM ops.quarantine WHERE batch_id = 'old-1' AND record_index = 0"
    ).fetchone() == ("replay-x",)


@pytest.fixture
def cli_env(pg_resource: PostgresResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    return CliRunner()


def test_metrify_dlq_discard_counts_asks_and_discards(pg: psycopg.Connection, cli_env: CliRunner) -> None:
    seed(pg)
    runner = cli_env
    junk = ["--reason", "malformed:too_many_records"]
    unfiltered = runner.invoke(app, ["dlq", "discard", "--note", "junk"])
    assert unfiltered.exit_code == 2 and "name the dead letters to discard" in unfiltered.output
    no_note = runner.invoke(app, ["dlq", "discard", *junk])
    assert no_note.exit_code == 2 and "--note" in no_note.output
    blank = runner.invoke(app, ["dlq", "discard", *junk, "--note", "  "])
    assert blank.exit_code == 2

    dry = runner.invoke(app, ["dlq", "discard", *junk, "--note", "junk", "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    assert "would discard: 6 dead letters" in dry.output and "malformed:too_many_records" in dry.output
    unasked = runner.invoke(app, ["dlq", "discard", *junk, "--note", "junk"])  # stdin is no terminal
    assert unasked.exit_code == 2 and "--yes" in unasked.output
    pg.commit()
    assert waiting(pg) == 7

    old = ["--since", "2000-01-01", "--source", SOURCE, "--batch", "old-2"]
    done = runner.invoke(
        app,
        ["dlq", "discard", *old, *junk, "--note", "test producer", "--by", "ana", "--yes"],
        catch_exceptions=False,
    )
    assert done.exit_code == 0, done.output
    assert "discarded 3 dead letters (weather_observations 3) as ana" in done.output
    pg.commit()
    assert waiting(pg) == 4
    entry = pg.execute(
        "SELECT actor, affected, details->'filters' FROM ops.audit_log WHERE action = 'dlq.discard' ORDER BY id DESC"
    ).fetchone()
    assert entry is not None and entry[:2] == ("ana", 3)
    assert entry[2]["batch"] == "old-2" and entry[2]["since"].startswith("2000-01-01")

    listed = json.loads(runner.invoke(app, ["dlq", "list", "--json"], catch_exceptions=False).stdout)
    assert {r["batch_id"] for r in listed["records"]} == {"new-1", "old-1"}
    everything = runner.invoke(app, ["dlq", "list", "--all", "--batch", "old-2"], catch_exceptions=False)
    assert "discarded by ana" in everything.output


def test_dlq_list_shows_the_newest_first_and_takes_since(pg: psycopg.Connection, cli_env: CliRunner) -> None:
    seed(pg)
    runner = cli_env
    listed = json.loads(
        runner.invoke(app, ["dlq", "list", "--json", "--limit", "2"], catch_exceptions=False).stdout
    )
    assert [r["batch_id"] for r in listed["records"]] == ["new-1", "old-2"]  # the new fault is not buried
    recent = json.loads(
        runner.invoke(app, ["dlq", "list", "--json", "--since", "7d"], catch_exceptions=False).stdout
    )
    assert [r["batch_id"] for r in recent["records"]] == ["new-1"]
    assert recent["by_reason"] == [
        {"source": SOURCE, "reason": "malformed:missing_field:observed_at", "records": 1}
    ]
    table = runner.invoke(app, ["dlq", "list", "--since", "7d"], catch_exceptions=False)
    assert "newest first" in table.output and "old-1" not in table.output
    bad = runner.invoke(app, ["dlq", "list", "--since", "last tuesday"])
    assert bad.exit_code == 2 and "--since" in bad.output


def test_status_and_dlq_list_say_what_each_counts_and_agree(
    pg: psycopg.Connection, cli_env: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in a user trial: `metrify status` said 3 dead letters and `dlq list` 6, with no word of
    what either counted (records a replay could accept; reasons over every waiting record)."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    rows = [
        QuarantineRow(0, "{}", "malformed:missing_field:observed_at", 1),
        QuarantineRow(1, "{}", "malformed:missing_field:observed_at", 1),
        QuarantineRow(2, "{}", "out_of_range:temperature_c,out_of_range:humidity_pct", 1),  # two reasons
        QuarantineRow(3, "{}", "duplicate_exact", 1),  # never replayed
        QuarantineRow(4, "{}", "review_rejected:sensor swapped", 1),  # never replayed
        QuarantineRow(5, "{}", "malformed:missing_field:observed_at", 1),  # discarded below
    ]
    quarantine(pg, SOURCE, "b-1", rows)
    dead_letters.discard(pg, [("b-1", 5, SOURCE)], "junk", Caller("ana", "cli"), {})

    status = json.loads(cli_env.invoke(app, ["status", "--json"], catch_exceptions=False).stdout)
    weather = next(s for s in status["sources"] if s["source"] == SOURCE)
    assert weather["dead_letters"] == 3  # waiting records a replay could accept
    assert any(
        line.startswith("3 dead-letter records a replay could accept wait for a fix")
        for line in status["attention"]
    ), status["attention"]
    table = cli_env.invoke(app, ["status"], catch_exceptions=False).output
    assert "replayable" in table  # the column says what it counts

    listed = cli_env.invoke(app, ["dlq", "list"], catch_exceptions=False).output
    flat = " ".join(listed.split())
    assert "5 records waiting, 3 of them a replay could accept (what `metrify status` counts)" in flat, listed
    assert "2 never (duplicates, reviewer rejections, timestamps without an offset" in flat
    assert "6 reasons over 5 records" in flat  # a record counts under each of its reasons
    as_json = json.loads(cli_env.invoke(app, ["dlq", "list", "--json"], catch_exceptions=False).stdout)
    assert as_json["totals"] == {"records": 5, "replayable": 3}
    assert sum(r["records"] for r in as_json["by_reason"]) == 6
    everything = cli_env.invoke(app, ["dlq", "list", "--all"], catch_exceptions=False).output
    assert "6 records, resolved ones included, 3 waiting that a replay could accept" in " ".join(
        everything.split()
    )
