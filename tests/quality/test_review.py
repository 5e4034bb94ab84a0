"""Reviewers' decisions on a real PostgreSQL: approve keeps, reject quarantines, replays respect it,
reopen takes a decision back."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.contracts import METER_READINGS
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.meters.vee import review as vee_review
from metrify_assets.quality import review, review_context
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.lake import Lake
from metrify_assets.storage.audit import Caller

pytestmark = pytest.mark.postgres
NOW = pd.Timestamp("2026-04-01T00:00:00Z")


def reading(meter: str, start: str, kwh: float, **extra: object) -> str:
    return json.dumps(
        {"meter_id": meter, "reading_start": start, "interval_minutes": 15, "energy_kwh": kwh, **extra}
    )


MESSAGES = [
    reading("M1", "2026-03-29T00:00:00Z", 0.5, voltage_v=231.0),
    reading("M1", "2026-03-29T00:15:00Z", 0.6, voltage_v=262.0),  # flagged: voltage_out_of_range
    reading("M2", "2026-03-29T00:00:00Z", -0.2),  # rejected: negative_energy
]
KEY = "M1|2026-03-29T00:15:00Z"


def ingest(conn: psycopg.Connection, lake: Lake, batch_id: str, messages: list[str], version: int) -> None:
    spec = BatchSpec(METER_READINGS, batch_id, "landing", f"{batch_id}.jsonl", date(2026, 3, 29))
    process_batch(spec, messages, [version] * len(messages), lake, conn, NOW, alert_threshold=0)
    conn.commit()


def ledger(conn: psycopg.Connection, batch_id: str) -> tuple[int, int, int, int]:
    row = conn.execute(
        "SELECT records_in, accepted, flagged, quarantined FROM ops.ingest_ledger WHERE batch_id = %s",
        (batch_id,),
    ).fetchone()
    assert row is not None
    return row


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(str(tmp_path / "lake"))


@pytest.fixture
def flagged(pg: psycopg.Connection, lake: Lake) -> review.ReviewItem:
    ingest(pg, lake, "b1", MESSAGES, 10)
    (item,) = review.list_items(pg)
    assert (item.batch_id, item.record_index, item.record_key) == ("b1", 1, KEY)
    assert item.reasons == "voltage_out_of_range"
    assert ledger(pg, "b1") == (3, 2, 1, 1)
    return item


def day_seq(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT max(seq) FROM ops.touched_days WHERE batch_id = 'b1' AND day = '2026-03-29'"
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("decide", [review.approve, review.reject])
def test_a_decision_stamps_the_readings_day_again(
    pg: psycopg.Connection, flagged: review.ReviewItem, decide: Callable[..., review.ReviewItem]
) -> None:
    """So `late_days_sensor` and `metrify run` rebuild the day's series and marts with it."""
    before = day_seq(pg)
    decide(pg, "b1", 1, by="ana", why="checked on site")
    assert day_seq(pg) > before


def test_approve_keeps_the_reading_and_its_flags(pg: psycopg.Connection, flagged: review.ReviewItem) -> None:
    item = review.approve(pg, "b1", 1, by="ana", why="substation tap change, value is real")
    assert (item.status, item.decided_by, item.decision_note) == (
        "approved",
        "ana",
        "substation tap change, value is real",
    )
    assert item.decided_at is not None
    assert pg.execute(
        "SELECT quality_flags FROM ops.meter_readings WHERE meter_id = 'M1' AND energy_kwh = 0.6"
    ).fetchone() == ("voltage_out_of_range",)
    assert ledger(pg, "b1") == (3, 2, 1, 1)
    assert review.list_items(pg) == []
    with pytest.raises(review.ReviewError, match="already approved"):
        review.reject(pg, "b1", 1, by="bob", why="changed my mind")


def test_reject_moves_the_reading_to_quarantine_and_rebalances_the_ledger(
    pg: psycopg.Connection, flagged: review.ReviewItem
) -> None:
    pg.execute(
        "INSERT INTO ops.anomaly_scores (meter_id, reading_start, score, is_anomaly, model_version) "
        "VALUES ('M1', '2026-03-29T00:15:00Z', 7.5, true, 'test')"
    )
    pg.commit()
    item = review.reject(pg, "b1", 1, by="ana", why="meter swap, voltage wrong")
    assert item.status == "rejected"
    assert pg.execute("SELECT count(*) FROM ops.meter_readings").fetchone() == (1,)
    assert pg.execute("SELECT count(*) FROM ops.anomaly_scores").fetchone() == (0,)
    reasons, payload = pg.execute(
        "SELECT reasons, payload FROM ops.quarantine WHERE batch_id = 'b1' AND record_index = 1"
    ).fetchone() or ("", "")
    # One reason, however the note is written: reasons are comma-joined (the note stays whole).
    assert reasons == "review_rejected:meter swap; voltage wrong"
    assert item.decision_note == "meter swap, voltage wrong"
    stored = json.loads(payload)
    assert (stored["meter_id"], stored["energy_kwh"], stored["voltage_v"]) == ("M1", 0.6, 262.0)
    assert (stored["record_version"], stored["quality_flags"]) == (10, "voltage_out_of_range")
    records_in, accepted, flagged_n, quarantined = ledger(pg, "b1")
    assert (records_in, accepted, flagged_n, quarantined) == (3, 1, 0, 2)
    assert records_in == accepted + quarantined


def test_replay_does_not_resurrect_a_rejected_reading(
    pg: psycopg.Connection, lake: Lake, flagged: review.ReviewItem
) -> None:
    review.reject(pg, "b1", 1, by="ana", why="wrong")
    quarantine_before = pg.execute("SELECT * FROM ops.quarantine ORDER BY record_index").fetchall()
    for _ in range(2):
        ingest(pg, lake, "b1", MESSAGES, 10)
    assert pg.execute("SELECT count(*) FROM ops.meter_readings").fetchone() == (1,)
    assert ledger(pg, "b1") == (3, 1, 0, 2)
    assert pg.execute("SELECT * FROM ops.quarantine ORDER BY record_index").fetchall() == quarantine_before
    assert review.get_item(pg, "b1", 1).status == "rejected"
    # The same reading in another batch (an overlapping replay) stays out too ...
    ingest(pg, lake, "b2", [MESSAGES[1]], 10)
    assert ledger(pg, "b2") == (1, 0, 0, 1)
    # ... but a newer version of the key is new data, judged by the rules again.
    ingest(pg, lake, "b3", [reading("M1", "2026-03-29T00:15:00Z", 0.61, voltage_v=232.0)], 11)
    assert ledger(pg, "b3") == (1, 1, 0, 0)
    assert pg.execute(
        "SELECT energy_kwh, batch_id FROM ops.meter_readings WHERE meter_id = 'M1' ORDER BY reading_start DESC"
    ).fetchone() == (0.61, "b3")


@pytest.mark.parametrize("verdict", ["approve", "reject"])
def test_a_decision_on_a_superseded_version_closes_the_item_and_changes_no_data(
    pg: psycopg.Connection, lake: Lake, flagged: review.ReviewItem, verdict: str
) -> None:
    """A newer version replaced the flagged one: reject was refused and approve "approved" a reading no
    longer stored, so the item stayed pending for good or recorded a judgement on nothing. Either now
    closes it as superseded, naming the batch, and leaves the data and the ledger alone."""
    ingest(pg, lake, "b2", [reading("M1", "2026-03-29T00:15:00Z", 0.7, voltage_v=231.0)], 20)
    stored_before = pg.execute("SELECT * FROM ops.meter_readings ORDER BY reading_start").fetchall()
    assert review.flagged_version(pg, flagged)[1] == "batch b2 replaced the flagged version"
    decide = review.approve if verdict == "approve" else review.reject
    item = decide(pg, "b1", 1, by="ana", why="looks wrong")
    assert (item.status, item.decided_by) == ("superseded", "ana")
    assert item.decision_note == "superseded: batch b2 replaced the flagged version; looks wrong"
    assert review.get_item(pg, "b1", 1) == item
    assert ledger(pg, "b1") == (3, 2, 1, 1)
    assert pg.execute("SELECT * FROM ops.meter_readings ORDER BY reading_start").fetchall() == stored_before
    assert pg.execute(
        "SELECT count(*) FROM ops.quarantine WHERE batch_id = 'b1' AND record_index = 1"
    ).fetchone() == (0,)
    with pytest.raises(review.ReviewError, match="already superseded"):
        review.approve(pg, "b1", 1, by="ana", why="again")


def test_the_list_shows_a_pending_item_a_newer_version_replaced(
    pg: psycopg.Connection,
    pg_resource: PostgresResource,
    lake: Lake,
    flagged: review.ReviewItem,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """`metrify review list` showed such an item as plain `pending`, like one still to judge: only
    `review show`, item by item, said a newer version had replaced it (a decision closes it as
    superseded). Now its status reads `pending (replaced)`, a caption says what a decision does, and
    --json names the batch (`replaced_by`)."""
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    runner = CliRunner(env={"COLUMNS": "250"})

    def listed(*args: str) -> str:
        result = runner.invoke(app, ["review", "list", *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    assert "(replaced)" not in listed()  # the flagged version is the stored one
    assert [i["replaced_by"] for i in json.loads(listed("--json"))] == [None]
    ingest(pg, lake, "b2", [reading("M1", "2026-03-29T00:15:00Z", 0.7, voltage_v=231.0)], 20)
    assert review_context.replaced_by(pg, review.list_items(pg)) == {("b1", 1): "b2"}
    table = listed()
    (row,) = [line for line in table.splitlines() if KEY in line]
    assert "pending (replaced)" in row
    assert "a newer version of the record is stored" in table and "superseded" in table
    (item,) = json.loads(listed("--json"))
    assert (item["status"], item["replaced_by"]) == ("pending", "b2")
    # Decided, it is superseded: no longer pending, nothing to flag as replaced.
    review.approve(pg, "b1", 1, by="ana", why="looks fine")
    assert review_context.replaced_by(pg, review.list_items(pg, status=None)) == {}
    (row,) = [line for line in listed("--status", "all").splitlines() if KEY in line]
    assert "superseded" in row and "(replaced)" not in row
    assert [i["replaced_by"] for i in json.loads(listed("--status", "all", "--json"))] == [None]


def test_a_reading_no_longer_stored_is_not_superseded(
    pg: psycopg.Connection, lake: Lake, flagged: review.ReviewItem
) -> None:
    """Nothing replaced a reading whose day left the hot tier: a reject is refused with how to bring it
    back, and an approve records the approval as before (it was a judgement of that reading)."""
    pg.execute("DELETE FROM ops.meter_readings WHERE batch_id = 'b1'")
    pg.commit()
    with pytest.raises(
        review.ReviewError, match=r"no version of it is stored in ops\.meter_readings .* metrify restore"
    ):
        review.reject(pg, "b1", 1, by="ana", why="wrong")
    assert review.get_item(pg, "b1", 1).status == "pending"
    touched = pg.execute("SELECT count(*) FROM ops.touched_days").fetchone()
    # Through the one decision the CLI and the API make: VEE is not re-run over a day that left
    # PostgreSQL (it wrote an all-missing meter-day there, and the marts then billed it 0 kWh).
    decided = vee_review.decide(pg, "approve", "b1", 1, by="ana", note="real")
    assert decided.item.status == "approved" and decided.vee is None
    assert decided.vee_skipped is not None and "metrify restore" in decided.vee_skipped
    assert pg.execute("SELECT count(*) FROM ops.vee_readings").fetchone() == (0,)
    # Nothing stored changed, so no day is stamped for a rebuild (nor held hot by retention for one).
    assert pg.execute("SELECT count(*) FROM ops.touched_days").fetchone() == touched


def test_decisions_need_who_and_why(pg: psycopg.Connection, flagged: review.ReviewItem) -> None:
    with pytest.raises(review.ReviewError, match="--by"):
        review.approve(pg, "b1", 1, by="", why="ok")
    with pytest.raises(review.ReviewError, match="no review item"):
        review.approve(pg, "b1", 99, by="ana", why="ok")


def test_cli_lists_shows_and_decides(
    pg: psycopg.Connection,
    pg_resource: PostgresResource,
    flagged: review.ReviewItem,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    runner = CliRunner()
    listed = runner.invoke(app, ["review", "list", "--reason", "voltage_out_of_range"])
    assert listed.exit_code == 0, listed.output
    assert "voltage_out_of_range" in listed.output and "b1" in listed.output
    shown = runner.invoke(app, ["review", "show", "b1", "1", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["stored_row"]["voltage_v"] == 262.0
    rejected = runner.invoke(app, ["review", "reject", "b1", "1", "--by", "ana", "--reason", "bad CT"])
    assert rejected.exit_code == 0, rejected.output
    assert rejected.output.startswith("rejected: meter_readings " + KEY)
    # Two readings of 96 that day: too few to estimate from, so the rejected interval fails (by ana).
    assert "VEE: the interval is now failed (none); 1 audit row written" in rejected.output
    assert pg.execute(
        "SELECT status, edited_by, original_kwh FROM ops.vee_readings WHERE meter_id = 'M1' AND reading_start = %s",
        ("2026-03-29T00:15:00Z",),
    ).fetchone() == ("failed", "ana", 0.6)
    assert pg.execute("SELECT actor, value_before FROM ops.vee_audit").fetchall() == [("ana", 0.6)]
    # Rejected: no row stored under the key, and the flagged one as the rejection quarantined it.
    after = json.loads(runner.invoke(app, ["review", "show", "b1", "1", "--json"]).output)
    assert (after["stored_row"], after["not_the_flagged_version"]) == (None, None)
    assert after["quarantined_row"]["voltage_v"] == 262.0 and after["item"]["status"] == "rejected"
    again = runner.invoke(app, ["review", "approve", "b1", "1", "--by", "ana", "--reason", "oops"])
    assert again.exit_code == 1
    assert "already rejected" in again.output
    missing_by = runner.invoke(app, ["review", "approve", "b1", "1", "--reason", "x"])
    assert missing_by.exit_code == 2
    decided = runner.invoke(app, ["review", "list", "--status", "rejected"])
    assert "ana" in decided.output
    assert "item 1 of 1" in decided.output
    as_json = runner.invoke(app, ["review", "list", "--status", "all", "--json"])
    (item,) = json.loads(as_json.stdout)
    assert (item["batch_id"], item["record_index"], item["status"], item["decided_by"]) == (
        "b1",
        1,
        "rejected",
        "ana",
    )


def queue_items(conn: psycopg.Connection) -> None:
    """14 items of meters M1, M2 and M10 (M1's id is a prefix of M10's), and of a grid node named M1
    (its key also starts with `M1|`, yet it is no meter's reading), with ties on `flagged_at`."""
    flagged = datetime(2026, 3, 1, tzinfo=UTC)
    for index in range(14):
        source, owner = (
            ("grid_status", "M1") if index % 5 == 4 else ("meter_readings", ("M1", "M2", "M10")[index % 3])
        )
        conn.execute(
            "INSERT INTO ops.review_queue (batch_id, record_index, source, record_key, reasons, status, "
            "flagged_at) VALUES (%s, %s, %s, %s, 'energy_spike', %s, %s)",
            (
                f"b{index % 2}",
                index,
                source,
                f"{owner}|2026-03-01T{index:02d}:00:00+00:00",
                ("pending", "approved")[index % 2],
                flagged + timedelta(minutes=index % 4),
            ),
        )
    conn.commit()


def expected(conn: psycopg.Connection, meter: str | None) -> list[tuple[str, int]]:
    """The items of `meter` (all when None), oldest first, computed from the rows in Python."""
    rows = conn.execute(
        "SELECT batch_id, record_index, source, record_key FROM ops.review_queue "
        "ORDER BY flagged_at, batch_id, record_index"
    ).fetchall()
    return [
        (batch, index)
        for batch, index, source, key in rows
        if meter is None or (source == "meter_readings" and key.split("|")[0] == meter)
    ]


def keys(items: list[review.ReviewItem]) -> list[tuple[str, int]]:
    return [(i.batch_id, i.record_index) for i in items]


def test_the_meter_filter_lists_and_counts_one_meters_readings_only(pg: psycopg.Connection) -> None:
    queue_items(pg)
    for meter in ("M1", "M2", "M10", None):
        want = expected(pg, meter)
        assert keys(review.list_items(pg, None, meter=meter, limit=100)) == want, meter
        assert review.count_items(pg, None, meter=meter) == len(want)
    assert len(expected(pg, "M1")) == 4  # not M10's readings, nor the grid node M1's sample
    # With the other filters: a grid item is no meter's, whatever its key.
    assert review.list_items(pg, None, "grid_status", meter="M1") == []
    assert review.count_items(pg, "pending", meter="M2") == len(
        [i for i in review.list_items(pg, None, meter="M2", limit=100) if i.status == "pending"]
    )
    assert review.list_items(pg, None, meter="M9") == [] and review.count_items(pg, None, meter="M9") == 0


@pytest.mark.parametrize("limit", [1, 3, 5])
def test_offset_pages_cover_the_list_once(pg: psycopg.Connection, limit: int) -> None:
    queue_items(pg)
    for meter in (None, "M1"):
        paged: list[tuple[str, int]] = []
        while page := review.list_items(pg, None, meter=meter, limit=limit, offset=len(paged)):
            paged += keys(page)
        assert paged == expected(pg, meter)  # no repeats, no gaps, in order


def test_cli_filters_by_meter_and_pages_by_offset(
    pg: psycopg.Connection, pg_resource: PostgresResource, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    queue_items(pg)
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def listing(*args: str) -> str:
        result = runner.invoke(app, ["review", "list", "--status", "all", *args])
        assert result.exit_code == 0, result.output
        return result.output

    nul = runner.invoke(app, ["review", "list", "--meter", "M1\x00"])
    assert nul.exit_code == 2 and "NUL" in nul.output  # a usage error, as the API's 422; not a traceback
    everything = expected(pg, None)
    paged: list[tuple[str, int]] = []
    while page := json.loads(listing("--limit", "4", "--offset", str(len(paged)), "--json")):
        paged += [(i["batch_id"], i["record_index"]) for i in page]
    assert paged == everything
    second = listing("--limit", "4", "--offset", "4")
    assert f"items 5-8 of {len(everything)}" in second and "next: --offset 8" in second
    last = listing("--limit", "4", "--offset", "12")
    assert f"items 13-14 of {len(everything)}" in last and "next:" not in last
    assert "no items at --offset 20 of 14" in listing("--offset", "20")
    mine = expected(pg, "M1")
    one_meter = json.loads(listing("--meter", "M1", "--json"))
    assert [(i["batch_id"], i["record_index"]) for i in one_meter] == mine
    assert {i["record_key"].split("|")[0] for i in one_meter} == {"M1"}
    table = listing("--meter", "M1", "--limit", "2", "--offset", "1")
    assert f"review queue (all, meter M1): items 2-3 of {len(mine)}" in table
    assert "M10|" not in table and "grid_status" not in table
    pending = runner.invoke(app, ["review", "list", "--meter", "M2"])
    assert pending.exit_code == 0, pending.output
    count = review.count_items(pg, "pending", meter="M2")
    assert f"of {count}" in pending.output and "approved" not in pending.output
    refused = runner.invoke(app, ["review", "list", "--offset", "-1"])
    assert refused.exit_code == 2 and "--offset" in refused.output


# Taking a decision back (`review.reopen`, `metrify review reopen`). The reviewers are named for these
# tests alone: the audit log is shared, and other tests count entries by actor.
STORED = "SELECT to_jsonb(r) - 'ingested_at' FROM ops.meter_readings r WHERE meter_id = 'M1' ORDER BY reading_start"


def test_a_rejection_taken_back_restores_the_reading_as_it_was(
    pg: psycopg.Connection, flagged: review.ReviewItem
) -> None:
    before = pg.execute(STORED).fetchall()
    review.reject(pg, "b1", 1, by="ana", why="meter swap")
    assert len(pg.execute(STORED).fetchall()) == 1 and ledger(pg, "b1") == (3, 1, 0, 2)

    item = review.reopen(
        pg, "b1", 1, by="rosa", why="the swap was the other meter", caller=Caller("rosa", "cli")
    )
    assert (item.status, item.decided_by, item.decision_note) == ("pending", None, None)
    assert pg.execute(STORED).fetchall() == before  # every column as it was, flags and version included
    assert ledger(pg, "b1") == (3, 2, 1, 1)  # accepted and flagged again; in = accepted + quarantined
    assert pg.execute("SELECT count(*) FROM ops.quarantine WHERE record_index = 1").fetchone() == (0,)
    assert [i.record_index for i in review.list_items(pg)] == [1]
    (action, details) = pg.execute(
        "SELECT action, details FROM ops.audit_log WHERE action LIKE 'review.%' ORDER BY id DESC LIMIT 1"
    ).fetchone() or ("", {})
    assert action == "review.reopen"
    assert details["reopened"] == "rejected" and details["decided_by"] == "ana"
    assert details["note"] == "the swap was the other meter"
    # Decided anew: a reopened item is an ordinary pending one.
    assert review.approve(pg, "b1", 1, by="rosa", why="value is real").status == "approved"


def test_an_approval_taken_back_changes_no_stored_row(
    pg: psycopg.Connection, flagged: review.ReviewItem
) -> None:
    review.approve(pg, "b1", 1, by="ana", why="tap change")
    before = pg.execute(STORED).fetchall()
    assert review.reopen(pg, "b1", 1, by="ana", why="approved the wrong one").status == "pending"
    assert pg.execute(STORED).fetchall() == before and ledger(pg, "b1") == (3, 2, 1, 1)
    assert review.reject(pg, "b1", 1, by="ana", why="meter swap").status == "rejected"


def test_a_newer_version_stored_since_the_rejection_stays(
    pg: psycopg.Connection, lake: Lake, flagged: review.ReviewItem
) -> None:
    """The rejected version is not put back over a newer one; deciding the item then closes it as
    superseded, as for any replaced flagged version."""
    review.reject(pg, "b1", 1, by="ana", why="meter swap")
    ingest(pg, lake, "b2", [reading("M1", "2026-03-29T00:15:00Z", 0.61, voltage_v=230.0)], 20)
    assert review.reopen(pg, "b1", 1, by="ana", why="second look").status == "pending"
    assert pg.execute(
        "SELECT energy_kwh, batch_id FROM ops.meter_readings WHERE meter_id = 'M1' AND energy_kwh > 0.55"
    ).fetchall() == [(0.61, "b2")]
    assert ledger(pg, "b1") == (3, 2, 1, 1)
    assert review.approve(pg, "b1", 1, by="ana", why="fine").status == review.SUPERSEDED


def test_only_a_decision_can_be_taken_back(pg: psycopg.Connection, flagged: review.ReviewItem) -> None:
    with pytest.raises(review.ReviewError, match="is pending: there is no decision to take back"):
        review.reopen(pg, "b1", 1, by="ana", why="?")
    with pytest.raises(review.ReviewError, match="needs who made it"):
        review.reopen(pg, "b1", 1, by="", why="?")
    with pytest.raises(review.UnknownItemError):
        review.reopen(pg, "b1", 7, by="ana", why="?")


def test_reopen_from_the_cli_and_vee_re_runs_the_day(
    pg: psycopg.Connection,
    pg_resource: PostgresResource,
    flagged: review.ReviewItem,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """`metrify review reopen` takes a rejection back; VEE re-runs the meter-day, so the billing series
    holds the reading again instead of the estimate the rejection left."""
    decided = vee_review.decide(pg, "reject", "b1", 1, "ana", "meter swap")
    assert decided.vee_method not in (None, "actual")
    again = vee_review.decide(pg, vee_review.REOPEN, "b1", 1, "ana", "second look")
    assert again.item.status == "pending" and again.vee is not None
    review.reject(pg, "b1", 1, by="ana", why="meter swap after all")
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    shown = CliRunner().invoke(app, ["review", "show", "b1", "1"])
    assert "metrify review reopen b1 1 --by NAME" in shown.output, shown.output
    result = CliRunner().invoke(
        app, ["review", "reopen", "b1", "1", "--by", "rosa", "--reason", "wrong meter"]
    )
    assert result.exit_code == 0, result.output
    assert "reopened, pending again: meter_readings M1|2026-03-29T00:15:00Z (b1 #1)" in result.output
    again = CliRunner().invoke(app, ["review", "reopen", "b1", "1", "--by", "rosa", "--reason", "twice"])
    assert again.exit_code == 1 and "is pending: there is no decision to take back" in again.output
