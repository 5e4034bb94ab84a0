"""The data-quality report and GX Data Docs land in the lake, on a local directory and on S3 over HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest

from metrify_assets.contracts import METER_READINGS, WEATHER_OBSERVATIONS
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.partitions import partition_range_tags
from metrify_assets.quality import review
from metrify_assets.reporting.assets import (
    REPORT_KEY,
    completeness_matrix,
    data_quality_report,
    reason_counts,
    report_key,
)
from metrify_assets.reporting.charts import processing_span
from metrify_assets.resources import LakeResource, PostgresResource, QualityResource
from metrify_assets.resources.lake import Lake

pytestmark = [pytest.mark.postgres, pytest.mark.s3]
NOW = pd.Timestamp("2026-04-01T00:00:00Z")


def reading(meter: str, minute: int, kwh: float, **extra: object) -> str:
    start = pd.Timestamp("2026-03-30T00:00:00Z") + pd.Timedelta(minutes=minute)
    return json.dumps(
        {
            "meter_id": meter,
            "reading_start": start.isoformat(),
            "interval_minutes": 15,
            "energy_kwh": kwh,
            **extra,
        }
    )


def seed(conn: psycopg.Connection, lake: Lake) -> None:
    """Two meter batches (M2 the worst: rejects and a flag, one of them rejected by review) and weather."""
    first = [reading("M1", 15 * i, 0.5) for i in range(8)] + [
        reading("M2", 0, -1.0),  # negative_energy
        reading("M2", 15, 0.4, voltage_v=270.0),  # flagged, then rejected by a reviewer
        reading("M2", 30, 0.4),
    ]
    second = [reading("M3", 0, 0.2), reading("M2", 45, 0.3, interval_minutes=7)]  # interval_invalid
    for batch_id, messages in (("m1", first), ("m2", second)):
        spec = BatchSpec(METER_READINGS, batch_id, "landing", f"{batch_id}.jsonl", date(2026, 3, 30))
        process_batch(
            spec, messages, [1] * len(messages), lake, conn, NOW, received_at=NOW, alert_threshold=95
        )
        conn.commit()  # one transaction per batch, as ingestion commits them: m2's processed_at is later
    weather = json.dumps(
        {"station_id": "W1", "observed_at": "2026-03-30T00:00:00Z", "temperature_c": 9.5, "humidity_pct": 80,
         "pressure_hpa": 1012, "wind_speed_ms": 3.2, "precipitation_mm": 0}
    )  # fmt: skip
    spec = BatchSpec(WEATHER_OBSERVATIONS, "w1", "landing", "w1.jsonl", date(2026, 3, 30))
    process_batch(spec, [weather], [1], lake, conn, NOW, received_at=NOW, alert_threshold=95)
    conn.commit()
    review.reject(conn, "m1", 9, by="ana", why="bad CT")


def seed_two_day_batch(conn: psycopg.Connection, lake: Lake) -> None:
    """Batch m3 touches 03-30 (a flagged reading) and 03-31 (a good one): its review item counts on
    both days' pages."""
    messages = [reading("M4", 0, 0.4, voltage_v=270.0), reading("M4", 24 * 60, 0.4)]
    spec = BatchSpec(METER_READINGS, "m3", "landing", "m3.jsonl", date(2026, 3, 31))
    process_batch(spec, messages, [1, 1], lake, conn, NOW, received_at=NOW, alert_threshold=95)
    conn.commit()


def test_reason_counts_count_codes_without_their_free_text() -> None:
    counts = reason_counts(
        pd.Series(
            [
                "negative_energy,spike",
                "malformed:invalid_json (unexpected end of data at char 224)",
                "malformed:invalid_json (unexpected character at char 3)",
                "malformed:missing_field:meter_id, malformed:bad_type:energy_kwh",
                "review_rejected:CT ratio wrong; see ticket 12",
                "review_rejected:x",
            ]
        )
    )
    assert counts.to_dict() == {
        "negative_energy": 1,
        "spike": 1,
        "malformed:invalid_json": 2,
        "malformed:missing_field:meter_id": 1,
        "malformed:bad_type:energy_kwh": 1,
        "review_rejected": 2,
    }


def test_score_chart_labels_its_axis_with_the_processing_span() -> None:
    same_day = pd.Series(pd.to_datetime(["2026-03-30T10:00:01Z", "2026-03-30T10:00:03Z"]))
    assert processing_span(same_day) == "batch, in processing order (2026-03-30 10:00:01 to 10:00:03 UTC)"
    two_days = pd.Series(pd.to_datetime(["2026-03-30T23:59:00+01:00", "2026-03-31T09:00:00Z"], utc=True))
    assert processing_span(two_days).endswith("(2026-03-30 22:59:00 to 2026-03-31 09:00:00 UTC)")
    assert processing_span(pd.Series([], dtype="datetime64[ns, UTC]")) == "batch (no batches)"


def test_completeness_matrix_puts_the_least_complete_meters_first() -> None:
    days = pd.DataFrame(
        {"meter_id": ["A", "B", "B"], "local_date": ["d1", "d1", "d2"], "completeness": [1.0, 0.5, 0.9]}
    )
    matrix = completeness_matrix(days, meters=2)
    assert list(matrix.index) == ["A", "B"]  # A misses d2 (0.0): mean 0.5 < B's 0.7
    assert matrix.loc["A", "d2"] == 0.0


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_report_and_data_docs_land_in_the_lake(
    kind: str, tmp_path: Path, pg: psycopg.Connection, pg_resource: PostgresResource, s3_endpoint: str
) -> None:
    url = "s3://metrify-lake/report-test" if kind == "s3" else str(tmp_path / "lake")
    lake = Lake(url)
    seed(pg, lake)
    result = dg.materialize(
        [data_quality_report],
        resources={"postgres": pg_resource, "lake": LakeResource(url=url), "quality": QualityResource()},
        partition_key="2026-03-30",
    )
    assert result.success
    (materialization,) = result.asset_materializations_for_node("data_quality_report")
    meta = materialization.metadata
    assert meta["batches"].value == 3
    assert meta["quarantined"].value == 3  # negative_energy, review_rejected, interval_invalid
    assert meta["quality_alerts"].value >= 1
    assert str(meta["chart"].value).startswith("![quality score per batch](data:image/png;base64,")
    # M2: negative_energy, interval_invalid and the flag a reviewer rejected (quarantined, not flagged too)
    assert "| M2 | 3 | 0 | 3 |" in str(meta["top_offending_meters"].value)
    assert meta["suites_passed"].value == {
        "validated_meter_readings": True,
        "validated_weather_observations": True,
    }

    page = lake.get(REPORT_KEY).decode()
    dated = lake.get(report_key(date(2026, 3, 30), date(2026, 3, 30))).decode()
    assert 'href="../../data_docs/index.html"' in dated  # one folder deeper than latest.html
    assert "data-quality report: 2026-03-30" in page
    for heading in (
        "Quality score over time",
        "Rejects by reason",
        "Completeness per meter-day",
        "Top offending meters",
        'href="../data_docs/index.html"',  # latest.html sits in reports/quality/
    ):
        assert heading in page
    assert page.count("data:image/png;base64,") == 4
    assert "review_rejected" in page
    assert "<th></th>" not in page  # no table has an index column or an index-name row
    assert "<th>reason</th>" in page and "<th>source</th>" in page
    docs = lake.list("reports/data_docs/")
    assert "reports/data_docs/index.html" in docs
    assert "reports/data_docs/expectations/validated_meter_readings.html" in docs
    validations = [k for k in docs if k.startswith("reports/data_docs/validations/validated_meter_readings/")]
    assert len(validations) == 1
    # A result page names the batch it validated (GX's default run name: "__none__"); its data asset,
    # the suite's name, names the file.
    assert "/validated_meter_readings/m2/" in validations[0]  # m2: the newest meter batch
    result_page = lake.get(validations[0]).decode()
    assert "__none__" not in result_page and validations[0].endswith("/metrify-validated_meter_readings.html")
    assert "Data asset: validated_meter_readings<br>" in result_page  # GX's own page said None
    # Offline: the pages load the vendored copies, which are published with the site.
    assert 'src="../../../../static/vendor/jquery-3.7.1/jquery.min.js"' in result_page
    assert "reports/data_docs/static/vendor/bootstrap-4.3.1/bootstrap.min.css" in docs
    assert "reports/data_docs/static/vendor/fontawesome-free-6.6.0/webfonts/fa-solid-900.woff2" in docs
    assert (
        validations[0].removeprefix("reports/data_docs/") in lake.get("reports/data_docs/index.html").decode()
    )
    assert b"validated_weather_observations" in lake.get("reports/data_docs/index.html")


def test_a_run_of_older_days_leaves_latest_html_and_the_data_docs_to_the_newer_report(
    tmp_path: Path, pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    """A backfill of days with no data made latest.html an empty report of those days (a trial saw
    "0 batches ... review queue: empty" while 591 items waited): a run of older days writes its dated
    report only; a run of newer days, even an empty one, is the latest."""
    url = str(tmp_path / "lake")
    lake = Lake(url)
    seed(pg, lake)
    resources = {"postgres": pg_resource, "lake": LakeResource(url=url), "quality": QualityResource()}

    def report(day: str) -> dict[str, object]:
        result = dg.materialize([data_quality_report], resources=resources, partition_key=day)
        (materialization,) = result.asset_materializations_for_node("data_quality_report")
        return {k: v.value for k, v in materialization.metadata.items()}

    assert report("2026-03-30")["latest_replaced"] is True
    docs_index = lake.get("reports/data_docs/index.html")
    older = report("2026-03-20")
    assert older["latest_replaced"] is False and older["batches"] == 0
    assert (
        "data-quality report: 2026-03-20"
        in lake.get(report_key(date(2026, 3, 20), date(2026, 3, 20))).decode()
    )
    assert "data-quality report: 2026-03-30" in lake.get(REPORT_KEY).decode()
    assert lake.get("reports/data_docs/index.html") == docs_index
    newer = report("2026-03-31")  # nothing arrived: the latest report says so; the Data Docs stay
    assert newer["latest_replaced"] is True and newer["data_docs_files_written"] == 0
    page = lake.get(REPORT_KEY).decode()
    assert "data-quality report: 2026-03-31" in page and "review items of these batches: none" in page
    assert lake.get("reports/data_docs/index.html") == docs_index


def reporter(pg_resource: PostgresResource, url: str) -> Callable[[str, str], dict[str, object]]:
    """A function that materialises the report of days first..last on the lake at `url` and returns
    its metadata's values."""
    resources = {"postgres": pg_resource, "lake": LakeResource(url=url), "quality": QualityResource()}

    def report(first: str, last: str) -> dict[str, object]:
        result = dg.materialize(
            [data_quality_report],
            resources=resources,
            tags=partition_range_tags(date.fromisoformat(first), date.fromisoformat(last)),
        )
        (materialization, *_) = result.asset_materializations_for_node("data_quality_report")
        return {k: v.value for k, v in materialization.metadata.items()}

    return report


def _review_line(page: str) -> str:
    match = re.search(r"review items of these batches: ([^.]*)\.", page)
    assert match is not None
    return match.group(1)


def _same_page(page: str) -> str:
    """The page without its time and its link to latest.html (on a dated page only)."""
    page = re.sub(r" The newest days' report: <a [^>]*>latest.html</a>.", "", page)
    return re.sub(r"Generated [^;]*;", "Generated;", page)


def test_latest_html_shows_a_review_decision_after_a_rebuild_of_one_of_its_days(
    tmp_path: Path, pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    """A trial's latest.html (the demo's two days) still said "619 pending" after two decisions and the
    rebuild of the first day, whose own page said "1 approved, 318 pending, 1 rejected": a run of
    older days renders latest.html again for the newest days, as they are now; a run of the newest
    day makes it that day's report; a run of older days never makes it theirs."""
    url = str(tmp_path / "lake")
    lake = Lake(url)
    seed(pg, lake)
    flagged = [reading("M4", 0, 0.4, voltage_v=270.0)]
    spec = BatchSpec(METER_READINGS, "m3", "landing", "m3.jsonl", date(2026, 3, 30))
    process_batch(spec, flagged, [1], lake, pg, NOW, received_at=NOW, alert_threshold=95)
    pg.commit()
    report = reporter(pg_resource, url)

    both = report("2026-03-30", "2026-03-31")
    assert both["latest_replaced"] is True and both["latest_days"] == "2026-03-30 .. 2026-03-31"
    assert _review_line(lake.get(REPORT_KEY).decode()) == "1 pending, 1 rejected"
    review.approve(pg, "m3", 0, by="ana", why="voltage ok after recalibration")

    rebuilt = report("2026-03-30", "2026-03-30")  # the decided reading's day, older than the newest
    assert rebuilt["latest_replaced"] is False and rebuilt["latest_days"] == "2026-03-30 .. 2026-03-31"
    day = lake.get(report_key(date(2026, 3, 30), date(2026, 3, 30))).decode()
    latest = lake.get(REPORT_KEY).decode()
    assert _review_line(day) == _review_line(latest) == "1 approved, 1 rejected"  # was 1 pending
    assert "data-quality report: 2026-03-30 to 2026-03-31" in latest  # still the newest days' report
    assert "<li>validated_meter_readings: passed</li>" in latest  # the Data Docs' suites, as published

    newest = report("2026-03-31", "2026-03-31")  # the newest day rebuilt: latest.html is its page
    assert newest["latest_replaced"] is True
    latest = lake.get(REPORT_KEY).decode()
    assert "data-quality report: 2026-03-31<" in latest
    page = lake.get(report_key(date(2026, 3, 31), date(2026, 3, 31))).decode()
    assert _same_page(page.replace("../../data_docs/", "../data_docs/")) == _same_page(latest)
    older = report("2026-03-20", "2026-03-20")
    assert older["latest_replaced"] is False and older["latest_days"] == "2026-03-31 .. 2026-03-31"
    assert "data-quality report: 2026-03-31<" in lake.get(REPORT_KEY).decode()


def test_every_dated_page_of_a_rebuilt_day_or_of_its_batches_shows_current_counts(
    tmp_path: Path, pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    """The page of a range (dt=<first>_<last>) kept the counts it was written with after one of its days
    was rebuilt (a review decision, late data, a replay), disagreeing with latest.html and the day's own
    page; so did the page of another day of a batch whose item was decided. A run renders again every
    dated page that covers one of its days or a day its batches touched, and no other."""
    url = str(tmp_path / "lake")
    lake = Lake(url)
    seed(pg, lake)
    seed_two_day_batch(pg, lake)
    report = reporter(pg_resource, url)

    def page(first: str, last: str) -> str:
        return lake.get(report_key(date.fromisoformat(first), date.fromisoformat(last))).decode()

    report("2026-03-20", "2026-03-20")  # a day no batch touched
    report("2026-03-30", "2026-03-31")  # a backfill of the two days
    report("2026-03-31", "2026-03-31")  # the nightly report of the last
    assert _review_line(page("2026-03-30", "2026-03-31")) == "1 pending, 1 rejected"
    assert _review_line(page("2026-03-31", "2026-03-31")) == "1 pending"
    untouched = page("2026-03-20", "2026-03-20")
    review.approve(pg, "m3", 0, by="ana", why="voltage ok after recalibration")

    rebuilt = report("2026-03-30", "2026-03-30")  # the decided reading's day
    assert _review_line(page("2026-03-30", "2026-03-30")) == "1 approved, 1 rejected"
    assert _review_line(page("2026-03-30", "2026-03-31")) == "1 approved, 1 rejected"  # was 1 pending
    assert _review_line(page("2026-03-31", "2026-03-31")) == "1 approved"  # m3's other day; was 1 pending
    assert _review_line(lake.get(REPORT_KEY).decode()) == "1 approved"  # latest.html: 03-31
    assert page("2026-03-20", "2026-03-20") == untouched  # none of its days or batches rebuilt
    assert rebuilt["pages_rendered_again"] == [
        "reports/quality/dt=2026-03-30_2026-03-31/index.html",
        "reports/quality/dt=2026-03-31/index.html",
    ]
    assert rebuilt["pages_held"] == []
    # The range's page renders as a fresh report of its days would (its suites' results too).
    again = page("2026-03-30", "2026-03-31")
    fresh = report("2026-03-30", "2026-03-31")
    assert _same_page(page("2026-03-30", "2026-03-31")) == _same_page(again)
    assert "<li>validated_meter_readings: passed</li>" in again
    assert fresh["pages_rendered_again"] == [
        "reports/quality/dt=2026-03-30/index.html",
        "reports/quality/dt=2026-03-31/index.html",
    ]
    # Each dated page says when it was rendered, that a rebuild renders it again, and links the newest days.
    day = page("2026-03-30", "2026-03-30")
    assert 'href="../latest.html"' in day and "rendered again whenever" in day


def test_a_dated_page_under_a_legal_hold_is_left_as_it_was(
    tmp_path: Path, pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    """A page a legal hold locks cannot be replaced (a local lake refuses it, as Object Lock protects
    the held version): the run renders the other pages and names the held one instead of failing."""
    url = str(tmp_path / "lake")
    lake = Lake(url)
    seed(pg, lake)
    report = reporter(pg_resource, url)

    report("2026-03-29", "2026-03-30")
    report("2026-03-30", "2026-03-31")
    held = report_key(date(2026, 3, 29), date(2026, 3, 30))
    before = lake.get(held)
    lake.set_legal_hold(held, True)
    rebuilt = report("2026-03-30", "2026-03-30")
    assert rebuilt["pages_held"] == [held]
    assert rebuilt["pages_rendered_again"] == ["reports/quality/dt=2026-03-30_2026-03-31/index.html"]
    assert lake.get(held) == before


def test_a_run_reads_each_day_once_and_leaves_pages_of_other_days_as_they_are(
    tmp_path: Path, pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    """latest.html was rendered again by every run, even one of older days it does not show (a trial's
    backfill of a day no batch touched rewrote it), and a run rebuilding one of its days read those days
    twice, for latest.html and for their dated page. Now a run renders latest.html only when it rebuilt
    one of its days (or one of their batches' days), and reads each day once for all its pages."""
    url = str(tmp_path / "lake")
    lake = Lake(url)
    seed(pg, lake)
    seed_two_day_batch(pg, lake)
    report = reporter(pg_resource, url)
    latest_file = tmp_path / "lake" / REPORT_KEY

    report("2026-03-20", "2026-03-20")
    both = report("2026-03-30", "2026-03-31")  # the newest days: latest.html is their page
    before = latest_file.stat().st_mtime_ns

    older = report("2026-03-20", "2026-03-20")  # a day latest.html does not show, no batch of its days
    assert latest_file.stat().st_mtime_ns == before  # was rewritten by every run
    assert older["latest_rendered"] is False and older["latest_days"] == "2026-03-30 .. 2026-03-31"
    assert older["pages_written"] == 1 and older["days_read"] == ["2026-03-20 .. 2026-03-20"]
    assert both["latest_rendered"] is True and both["pages_written"] == 2

    review.approve(pg, "m3", 0, by="ana", why="voltage ok after recalibration")
    rebuilt = report("2026-03-30", "2026-03-30")  # one of latest.html's days: it is rendered again
    assert rebuilt["latest_rendered"] is True and latest_file.stat().st_mtime_ns != before
    # Its own page, the range's and latest.html (the same days: one read, one render for both keys);
    # 03-30 and 03-31 read once (were read three times: the run's day, latest.html's, the range page's).
    assert rebuilt["days_read"] == ["2026-03-30 .. 2026-03-31"]
    assert rebuilt["pages_written"] == 3
    assert rebuilt["pages_rendered_again"] == ["reports/quality/dt=2026-03-30_2026-03-31/index.html"]
    range_page = lake.get(report_key(date(2026, 3, 30), date(2026, 3, 31))).decode()
    assert _review_line(range_page) == _review_line(lake.get(REPORT_KEY).decode()) == "1 approved, 1 rejected"


def test_a_decision_on_a_batch_of_many_days_renders_each_of_their_pages_once_with_progress(
    tmp_path: Path, pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    """A review decision on a batch spanning many days renders the page of each of them in the rebuild's
    run (1.5-3 s each, with no word until the end): every page is rendered in that run, none left stale,
    the days read once for all of them, and the log says each page as it goes; the metadata gives their
    count and time."""
    url = str(tmp_path / "lake")
    lake = Lake(url)
    seed(pg, lake)
    days = [date(2026, 3, 26) + pd.Timedelta(days=n).to_pytimedelta() for n in range(5)]  # .. 03-30
    # One late batch touching five days: a flagged reading on the first, a good one on each other day
    messages = [reading("M5", -4 * 24 * 60, 0.4, voltage_v=270.0)] + [
        reading("M5", -24 * 60 * n, 0.4) for n in range(4)
    ]
    spec = BatchSpec(METER_READINGS, "wide", "landing", "wide.jsonl", days[-1])
    process_batch(spec, messages, [1] * 5, lake, pg, NOW, received_at=NOW, alert_threshold=95)
    pg.commit()
    report = reporter(pg_resource, url)
    for day in days:  # the nightly page of each day; latest.html: the last day's
        report(str(day), str(day))
    review.approve(pg, "wide", 0, by="ana", why="voltage ok after recalibration")

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [data_quality_report],
        resources={"postgres": pg_resource, "lake": LakeResource(url=url), "quality": QualityResource()},
        partition_key=str(days[0]),
        instance=instance,
    )
    (materialization,) = result.asset_materializations_for_node("data_quality_report")
    meta = {k: v.value for k, v in materialization.metadata.items()}
    others = [report_key(day, day) for day in days[1:]]
    assert meta["pages_rendered_again"] == others
    progress = [
        e.user_message for e in instance.all_logs(result.run_id) if e.user_message.startswith("page ")
    ]
    assert [line.split(" rendered again")[0] for line in progress] == [f"page {n}/4" for n in range(1, 5)]
    assert progress[-1].endswith(f"{others[-1]}, {REPORT_KEY}")  # the last day's page and latest.html
    assert meta["pages_written"] == 6  # the run's page, four other days' pages and latest.html (the last's)
    assert meta["latest_rendered"] is True and meta["days_read"] == ["2026-03-26 .. 2026-03-30"]
    assert float(meta["pages_seconds"]) > 0  # type: ignore[arg-type]
    for key in [report_key(days[0], days[0]), *others, REPORT_KEY]:
        assert "1 approved" in _review_line(lake.get(key).decode()), key
