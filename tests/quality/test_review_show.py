"""What a reviewer decides from, on a real PostgreSQL: `metrify review list` shows the flagged value,
`metrify review show` why the rule fired (its figures), the neighbouring intervals with the flagged one
marked, the interval in the VEE series and the commands that decide it; an item with no neighbours
and no VEE series yet shows cleanly too."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.contracts import GRID_STATUS, METER_READINGS
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.store import run_days
from metrify_assets.quality import review
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.lake import Lake

pytestmark = pytest.mark.postgres
NOW = pd.Timestamp("2026-04-01T00:00:00Z")
DAY = pd.Timestamp("2026-03-29T00:00:00Z")
METER = "MTR-000018"
SPIKE = 40  # the spike's interval of the day: 10:00 UTC
SPIKE_KWH = 1.6358
ZEROS = range(60, 70)  # ten zero readings back to back: 15:00 to 17:30


def kwh(i: int) -> float:
    """The trial's meter: 0.03 to 0.05 kWh a quarter hour, a spike, a run of zeros."""
    return SPIKE_KWH if i == SPIKE else 0.0 if i in ZEROS else 0.03 + (i % 3) * 0.01


def reading(meter: str, i: int, energy: float, **extra: object) -> str:
    start = DAY + pd.Timedelta(minutes=15 * i)
    return json.dumps(
        {"meter_id": meter, "reading_start": start.isoformat(), "interval_minutes": 15, "energy_kwh": energy}
        | extra
    )


def ingest(
    conn: psycopg.Connection,
    lake: Lake,
    batch_id: str,
    messages: list[str],
    grid: bool = False,
    version: int = 10,
) -> None:
    contract = GRID_STATUS if grid else METER_READINGS
    spec = BatchSpec(contract, batch_id, "landing", f"{batch_id}.jsonl", date(2026, 3, 29))
    process_batch(spec, messages, [version] * len(messages), lake, conn, NOW, alert_threshold=0)
    conn.commit()


@pytest.fixture
def cli(pg_resource: PostgresResource, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def run(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_show_prints_why_the_neighbours_and_the_vee_interval_of_a_spike(
    pg: psycopg.Connection, tmp_path: Path, cli: CliRunner
) -> None:
    ingest(pg, Lake(str(tmp_path / "lake")), "b1", [reading(METER, i, kwh(i)) for i in range(96)])
    items = {i.record_index: i for i in review.list_items(pg, limit=100)}
    assert items[SPIKE].reasons == "spike" and {i for i in items if i != SPIKE} == set(ZEROS)
    vee = run_days(pg, date(2026, 3, 29), date(2026, 3, 29), VeeConfig(), now=NOW)
    assert vee.written
    status, billed, original = pg.execute(
        "SELECT status, energy_kwh, original_kwh FROM ops.vee_readings WHERE meter_id = %s AND reading_start = %s",
        (METER, DAY + pd.Timedelta(minutes=15 * SPIKE)),
    ).fetchone() or (None, None, None)
    assert status == "estimated" and original == SPIKE_KWH and 0.02 < billed < 0.06  # VEE replaced it

    listed = run(cli, "review", "list", "--reason", "spike")
    assert "value" in listed and "1.6358 kWh" in listed
    (as_json,) = json.loads(run(cli, "review", "list", "--reason", "spike", "--json"))
    assert as_json["value"] == {"energy_kwh": SPIKE_KWH}
    assert "0 kWh" in run(cli, "review", "list", "--reason", "zero_run")

    shown = run(cli, "review", "show", "b1", str(SPIKE))
    assert "flagged value: 1.6358 kWh" in shown
    # The rule's figures: the batch median of the meter (0.04 kWh: 31 x 0.03, 0.04, 0.05 and 10 x 0)
    assert (
        "spike: 1.6358 kWh is 40.895 x this meter's median in batch b1 (0.04 kWh over its 96 readings"
        in shown
    )
    assert "above 8 x that median and above 0.5 kWh" in shown
    lines = shown.splitlines()
    rows = [line for line in lines if "2026-03-29 " in line and "│" in line]
    assert len(rows) == 9  # 4 before, the flagged one, 4 after
    (marked,) = [line for line in rows if ">" in line.split("│")[1]]
    assert rows.index(marked) == 4 and "10:00" in marked and "1.6358" in marked and "spike" in marked
    assert f"estimated {round(billed, 4):g}" in marked
    assert "09:00" in rows[0] and "11:00" in rows[-1] and "actual 0.03" in rows[0]
    assert (
        f"VEE (billing series): estimated {round(billed, 4):g} kWh by " in shown
        and "original 1.6358 kWh" in shown
    )
    assert 'metrify review approve b1 40 --by NAME --reason "..."' in shown
    assert 'metrify review reject  b1 40 --by NAME --reason "..."' in shown
    assert f"(VEE holds estimated {round(billed, 4):g} kWh now)" in shown

    context = json.loads(run(cli, "review", "show", "b1", str(SPIKE), "--json"))["context"]
    assert [n["flagged"] for n in context["neighbours"]] == [False] * 4 + [True] + [False] * 4
    assert context["vee"]["status"] == "estimated" and context["vee"]["original_kwh"] == SPIKE_KWH
    (why,) = context["why"]
    assert why["code"] == "spike" and why["figures"]["batch_median_kwh"] == 0.04
    assert why["figures"]["batch_readings"] == 96 and why["figures"]["spike_factor"] == 8.0

    zero = run(cli, "review", "show", "b1", str(ZEROS[3]))
    expected = (
        "in a run of 10 back-to-back zero intervals (2026-03-29T15:00:00+00:00 to 2026-03-29T17:30:00+00:00)"
    )
    assert expected in zero and "a run of 8 or more" in zero

    # Decided: no commands, who decided; the VEE interval now the reviewer's edit.
    run(cli, "review", "approve", "b1", str(SPIKE), "--by", "ana", "--reason", "heater test, real")
    after = run(cli, "review", "show", "b1", str(SPIKE))
    assert "decided: approved by ana" in after and "to decide" not in after
    assert "review approve" not in after and 'metrify review reopen b1 40 --by NAME --reason "..."' in after
    assert "VEE (billing series): edited 1.6358 kWh" in after and "edited by ana" in after
    # A rejected zero: its row is out of the table, its place in the neighbours kept from the quarantine.
    run(cli, "review", "reject", "b1", str(ZEROS[0]), "--by", "ana", "--reason", "meter off")
    (gone,) = [
        line for line in run(cli, "review", "show", "b1", str(ZEROS[0])).splitlines() if "│ > │" in line
    ]
    vee = json.loads(run(cli, "review", "show", "b1", str(ZEROS[0]), "--json"))["context"]["vee"]
    assert [c.strip() for c in gone.split("│")[2:-1]] == [
        "2026-03-29 15:00",
        "0",
        "zero_run",
        "(not stored)",
        f"{vee['status']} {round(vee['energy_kwh'], 4):g}",
    ]
    assert vee["edited_by"] == "ana" and vee["original_kwh"] == 0.0


def test_a_replaced_version_says_a_decision_closes_it(
    pg: psycopg.Connection, tmp_path: Path, cli: CliRunner
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ingest(pg, lake, "b1", [reading(METER, i, kwh(i)) for i in range(96)])
    ingest(pg, lake, "b2", [reading(METER, SPIKE, 0.04)], version=11)
    shown = run(cli, "review", "show", "b1", str(SPIKE))
    assert "note: batch b2 replaced the flagged version" in shown
    assert "either decision closes the item as superseded and changes nothing" in shown
    assert "flagged value: not stored" in shown and "spike: the flagged value is not stored" in shown


def test_an_item_without_neighbours_or_vee_series_shows_cleanly(
    pg: psycopg.Connection, tmp_path: Path, cli: CliRunner
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ingest(pg, lake, "b1", [reading("M-LONE", 0, 0.6, voltage_v=262.0)])
    grid = {"grid_node_id": "N1", "measured_at": DAY.isoformat(), "voltage_v": 230.0, "load_mw": 5.0}
    ingest(pg, lake, "g1", [json.dumps(grid | {"frequency_hz": 50.7})], grid=True)

    listed = run(cli, "review", "list")
    assert "0.6 kWh, 262 V" in listed and "50.7 Hz" in listed
    shown = run(cli, "review", "show", "b1", "0")
    assert "voltage_out_of_range: voltage 262 V is outside 207-253 V (230 V +/- 10%)" in shown
    assert "neighbours: none stored for this meter around it" in shown
    assert "VEE (billing series): no VEE series for this interval yet" in shown
    assert "metrify review reject  b1 0 --by NAME" in shown
    context = json.loads(run(cli, "review", "show", "b1", "0", "--json"))["context"]
    assert context["vee"] is None and [n["flagged"] for n in context["neighbours"]] == [True]

    node = run(cli, "review", "show", "g1", "0")
    assert "frequency_out_of_range: frequency 50.7 Hz is outside 49.5-50.5 Hz" in node
    assert "VEE" not in node and "quarantine it" in node and "none stored for this node" in node

    # Rejected: the row left the table; show still says what was flagged (from the quarantine).
    run(cli, "review", "reject", "b1", "0", "--by", "ana", "--reason", "CT wrong")
    gone = run(cli, "review", "show", "b1", "0")
    assert (
        "flagged value: 0.6 kWh, 262 V" in gone and "VEE (billing series): failed, original 0.6 kWh" in gone
    )
    (ghost,) = json.loads(run(cli, "review", "show", "b1", "0", "--json"))["context"]["neighbours"]
    assert (ghost["flagged"], ghost["stored"], ghost["energy_kwh"], ghost["voltage_v"]) == (
        True,
        False,
        0.6,
        262.0,
    )
    assert "decided: rejected by ana" in gone
    assert "0.6 kWh, 262 V" in run(cli, "review", "list", "--status", "rejected")


def test_an_item_pending_again_shows_who_decided_it_before_and_who_took_that_back(
    pg: psycopg.Connection, tmp_path: Path, cli: CliRunner
) -> None:
    """A trial reviewer approved a frequency dip, a lead reopened it ("recheck"): `review show` then
    printed the item as if never decided, and a second approval of a decided item said only "already
    approved". Show prints the item's decisions from the audit log, and the refusal the reopen command."""
    grid = {"grid_node_id": "N-RVH", "measured_at": DAY.isoformat(), "voltage_v": 230.0, "load_mw": 5.0}
    ingest(pg, Lake(str(tmp_path / "lake")), "rvh-g1", [json.dumps(grid | {"frequency_hz": 49.1})], grid=True)
    assert "history" not in run(cli, "review", "show", "rvh-g1", "0")  # never decided: nothing to tell

    approved = run(cli, "review", "approve", "rvh-g1", "0", "--by", "ana", "--reason", "real dip")
    assert "marts and quality report: not yet; the next `metrify run` (or the daemon's" in approved
    again = cli.invoke(app, ["review", "reject", "rvh-g1", "0", "--by", "bob", "--reason", "no"])
    assert again.exit_code == 1
    assert "was already approved by ana (real dip)" in again.output
    assert (
        'take the decision back first: metrify review reopen rvh-g1 0 --by NAME --reason "..."'
        in again.output
    )
    assert "history" not in run(
        cli, "review", "show", "rvh-g1", "0"
    )  # decided once: the `decided:` line says it

    run(cli, "review", "reopen", "rvh-g1", "0", "--by", "bob", "--reason", "recheck with control room")
    shown = run(cli, "review", "show", "rvh-g1", "0")
    lines = shown[shown.index("history (audit log, oldest first):") :].splitlines()
    assert " approved by ana (account " in lines[1] and lines[1].endswith(", cli): real dip")
    assert " reopened by bob (account " in lines[2]
    assert lines[2].endswith(", cli, taking back: approved): recheck with control room")
    assert lines[3].strip().startswith("metrify audit --target 'review:rvh-g1#0'")
    assert shown.index("history") < shown.index("to decide:")  # pending again: decided from this

    history = json.loads(run(cli, "review", "show", "rvh-g1", "0", "--json"))["context"]["history"]
    assert [(h["action"], h["actor"], h["note"], h["status"]) for h in history] == [
        ("approve", "ana", "real dip", "approved"),
        ("reopen", "bob", "recheck with control room", "pending"),
    ]
    assert history[1]["reopened"] == "approved" and history[1]["decided_by"] == "ana"
    listed = run(cli, "audit", "--target", "review:rvh-g1#0")
    assert "review.approve" in listed and "review.reopen" in listed
