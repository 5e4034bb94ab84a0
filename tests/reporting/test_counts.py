"""The quality report counts each record once: a record a reviewer rejected is quarantined, not flagged
too, and a record with several flag reasons is one flagged record (counted under each reason)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from metrify_assets.contracts import METER_READINGS
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.meters.days import days_between
from metrify_assets.quality import review
from metrify_assets.reporting import queries
from metrify_assets.reporting.assets import render_report
from metrify_assets.resources.lake import Lake
from tests.reporting.test_report import NOW, reading

pytestmark = pytest.mark.postgres


def report_of(conn: psycopg.Connection, first: date, last: date) -> queries.ReportData:
    """The report of days `first`..`last` read alone (a run reads all its pages' days at once)."""
    return queries.read(conn, days_between(first, last)).report(first, last)


DAY = date(2026, 3, 30)


def seed(conn: psycopg.Connection, lake: Lake) -> None:
    """M2: a reject, a flag a reviewer rejects and a record flagged for two reasons; M3: a flag approved."""
    first = [reading("M1", 15 * i, 0.5) for i in range(8)] + [
        reading("M2", 0, -1.0),  # negative_energy: quarantined at ingest
        reading("M2", 15, 0.4, voltage_v=270.0),  # voltage_out_of_range, then rejected by a reviewer
        reading("M2", 30, 0.4, voltage_v=270.0, power_factor=0.5),  # two reasons, pending
        reading("M2", 45, 0.4),
    ]
    second = [reading("M3", 0, 0.2), reading("M3", 15, 0.2, voltage_v=180.0)]  # flagged, then approved
    for batch_id, messages in (("m1", first), ("m2", second)):
        spec = BatchSpec(METER_READINGS, batch_id, "landing", f"{batch_id}.jsonl", DAY)
        process_batch(
            spec, messages, [1] * len(messages), lake, conn, NOW, received_at=NOW, alert_threshold=95
        )
        conn.commit()  # one transaction per batch, as ingestion commits them
    review.reject(conn, "m1", 9, by="ana", why="bad CT, see ticket 12")
    review.approve(conn, "m2", 1, by="ana", why="brown-out, genuine")


def table(page: str, heading: str) -> list[list[str]]:
    """The rows (header first) of the first table after an <h2> heading of the page."""
    section = page.split(f"<h2>{heading}</h2>", 1)[1]
    body = section[section.index("<table") : section.index("</table>")]
    return [
        [cell.strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


@pytest.fixture
def page(tmp_path: Path, pg: psycopg.Connection) -> tuple[queries.ReportData, str]:
    """The report of the seeded day: its data and its page (charts left blank)."""
    seed(pg, Lake(str(tmp_path)))
    data = report_of(pg, DAY, DAY)
    charts = dict.fromkeys(("score", "rejects", "completeness", "offenders"), b"")
    return data, render_report(data, charts, {})


def test_top_offending_meters_count_a_rejected_flag_once(page: tuple[queries.ReportData, str]) -> None:
    data, html = page
    # M2's offending records: the reject, the flag a reviewer rejected (quarantined: under rejected
    # only) and the two-reason flag (once); M1 has none.
    assert table(html, "Top offending meters") == [
        ["meter_id", "rejected", "flagged", "total"],
        ["M2", "2", "1", "3"],
        ["M3", "0", "1", "1"],
    ]
    assert "each record counts once" in html
    ledger = data.ledger
    assert int(data.offenders["rejected"].sum()) == int(ledger["quarantined"].sum()) == 2
    assert int(data.offenders["flagged"].sum()) == int(ledger["flagged"].sum()) == 2


def test_flags_by_reason_count_the_records_the_ledger_flags(page: tuple[queries.ReportData, str]) -> None:
    _, html = page
    by_source = table(html, "Records by source")
    assert by_source == [
        ["source", "records_in", "accepted", "flagged", "quarantined", "quality_score"],
        ["meter_readings", "14", "12", "2", "2", by_source[1][-1]],
    ]
    # The ledger's 2 flagged records: M2's two-reason one and M3's approved one. M2's rejected flag is
    # one of the 2 quarantined (review_rejected), not a flag any more. One record carries two
    # reasons, so the reasons add up to 3, as the caption warns.
    # Per reason, what is still to decide: M2's two-reason flag is pending under both, M3's approved.
    assert table(html, "Flags for review by reason") == [
        ["reason", "records", "pending", "approved"],
        ["voltage_out_of_range", "2", "1", "1"],
        ["power_factor_out_of_range", "1", "1", "0"],
    ]
    assert "<code>metrify review list --reason CODE</code> lists them" in html
    assert "<p>2 records flagged (those a reviewer rejected are quarantined" in html
    assert "a record with several reasons counts under each" in html
    assert sorted(table(html, "Rejects by reason")[1:]) == [
        ["negative_energy", "1"],
        ["review_rejected", "1"],
    ]
    assert "<p>2 records quarantined, by reason" in html
    assert "review items of these batches: 1 approved, 1 pending, 1 rejected." in html


def test_a_small_late_batch_barely_moves_the_days_quality_score() -> None:
    """The trial's day: 19,209 records in two batches scoring 99.66 and 99.74, then a one-record
    correction scoring 90 (late). The plain mean of the three batches said 96.5, as if a third of the
    day were late; weighted by records the day stays at 99.7. A source with empty scored batches only
    keeps their plain mean, and an unscored batch is left out."""
    at = pd.Timestamp("2026-03-30T06:00:00Z")
    ledger = pd.DataFrame(
        {
            "batch_id": ["a", "b", "late", "unscored", "w0", "w1"],
            "source": ["meter_readings"] * 4 + ["weather_observations"] * 2,
            "processed_at": [at + pd.Timedelta(minutes=m) for m in range(6)],
            "records_in": [9_600, 9_609, 1, 500, 0, 0],
            "accepted": [9_600, 9_609, 1, 500, 0, 0],
            "flagged": [0] * 6,
            "quarantined": [0] * 6,
            "quality_score": [99.66, 99.74, 90.0, None, 0.0, 50.0],
        }
    )
    data = queries.ReportData(
        first=DAY,
        last=DAY,
        ledger=ledger,
        rejects=pd.Series([], dtype=object),
        flags=pd.DataFrame({"reasons": pd.Series([], dtype=object), "status": pd.Series([], dtype=object)}),
        meter_days=pd.DataFrame(),
        offenders=pd.DataFrame({"meter_id": [], "rejected": [], "flagged": [], "total": []}),
        alerts=1,
        anomalies=0,
        review_status={},
    )
    html = render_report(data, dict.fromkeys(("score", "rejects", "completeness", "offenders"), b""), {})
    scores = {row[0]: row[-1] for row in table(html, "Records by source")[1:]}
    assert scores == {"meter_readings": "99.7", "weather_observations": "25.0"}
    assert round(ledger["quality_score"][:3].mean(), 1) == 96.5  # what the plain mean said
    assert "weighted by their records" in html


def test_a_run_of_many_days_reads_each_day_as_a_query_of_that_day_alone(
    tmp_path: Path, pg: psycopg.Connection
) -> None:
    """The reports of a run are cut from one read of all their days (readings a week at a time): each
    day's figures are those a read of that day alone gives, across the week's boundary too."""
    days = [date(2026, 3, 20) + pd.Timedelta(days=n).to_pytimedelta() for n in range(11)]  # .. 03-30
    messages = [reading("M1", -24 * 60 * n + 15 * i, 0.5) for n in range(11) for i in range(n + 1)]
    spec = BatchSpec(METER_READINGS, "b", "landing", "b.jsonl", DAY)
    process_batch(spec, messages, [1] * len(messages), Lake(str(tmp_path)), pg, NOW, received_at=NOW)
    pg.commit()
    loaded = queries.read(pg, days)
    assert loaded.ranges == [(days[0], days[-1])]
    for day in days:
        alone = report_of(pg, day, day)
        cut = loaded.report(day, day)
        pd.testing.assert_frame_equal(cut.meter_days, alone.meter_days)
        assert cut.meter_days["received"].tolist() == [
            11 - (day - days[0]).days
        ]  # 11 readings on 03-20 .. 1 on 03-30
        pd.testing.assert_frame_equal(cut.ledger, alone.ledger)
    week = loaded.report(days[2], days[9])
    assert sorted(week.meter_days["local_date"]) == days[2:10]
    with pytest.raises(ValueError, match="were not read"):
        loaded.report(date(2026, 3, 19), days[0])
