"""`data_quality_report`: what came in, what was accepted, quarantined and flagged, and why.

An HTML page (charts inlined) and the GX Data Docs of each source's latest batch, both in the lake:
`reports/quality/dt=<day>/index.html` (`dt=<first>_<last>` for several days; latest.html: the report
of the newest days, rendered afresh by every run: a run of older days renders it again for the days it
shows, so a review decision's rebuild of any day shows there too) and `reports/data_docs/index.html`.
A run also renders again every dated page that covers one of its days or a day its batches touched
(the page of a range, another day of a batch whose item was decided): no page shows other counts than
the marts and latest.html.
No `from __future__ import annotations`: dagster must resolve the `context` annotation.
"""

import base64
import html
import json
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg

from metrify_assets.errors import RETRY_POLICY, classified_step
from metrify_assets.lifecycle.policy import day_span
from metrify_assets.metadata import figure, markdown_table, png_markdown
from metrify_assets.partitions import DAYS, SINGLE_RUN, overlaps, partition_days
from metrify_assets.quality import data_docs, gx
from metrify_assets.quality.quarantine import reason_code
from metrify_assets.reporting import queries
from metrify_assets.reporting.charts import bar_chart_png, heatmap_png, score_over_time_png
from metrify_assets.resources import LakeResource, PostgresResource, QualityResource
from metrify_assets.resources.lake import Lake, ObjectLockedError
from metrify_assets.teams import DATA_QUALITY, owner

OWNERS = [owner(DATA_QUALITY)]
REPORTS_PREFIX = "reports/quality/"
REPORT_KEY = f"{REPORTS_PREFIX}latest.html"
# The days latest.html and the Data Docs report and the suites' results on the Data Docs ({"first": ...,
# "last": ..., "suites": {suite: passed}}): a run of older days (a backfill, a late day, a review
# decision's rebuild) writes its dated report, renders latest.html again for these days (their review
# items may have been decided since) and leaves the Data Docs to the newer days' report.
LATEST_SPAN_KEY = "reports/quality/latest.json"
HEATMAP_METERS = 30  # the meters with the lowest mean completeness; 200 rows would be unreadable
# Under a per-reason table: its counts may add up to more than the records it counts.
SEVERAL_REASONS = (
    ", by reason: a record with several reasons counts under each, so the counts may add up to more."
)


def report_key(first: date, last: date) -> str:
    """The lake key of the report of days `first`..`last` (one day: `dt=<day>`)."""
    span = f"dt={first}" if first == last else f"dt={first}_{last}"
    return f"reports/quality/{span}/index.html"


def covering_pages(store: Lake, run: tuple[date, date], days: set[date]) -> list[tuple[date, date]]:
    """The days of each dated page, other than the run's own, that covers a day of the run or one of
    `days` (those its batches touched), oldest first: one listing of the report folders."""
    spans = (day_span(prefix) for prefix in store.list_day_prefixes(REPORTS_PREFIX))
    return [
        span
        for span in spans
        if span != run and (overlaps(span, run) or any(span[0] <= day <= span[1] for day in days))
    ]


def latest_span(store: Lake) -> tuple[date, date] | None:
    """The days latest.html reports (None: no report yet, or one written before the span was kept)."""
    if not store.exists(LATEST_SPAN_KEY):
        return None
    span = json.loads(store.get(LATEST_SPAN_KEY))
    return date.fromisoformat(span["first"]), date.fromisoformat(span["last"])


def latest_suites(store: Lake) -> dict[str, bool]:
    """The suites' results on the published Data Docs, as latest.html lists them (none when latest.json
    was written before they were kept: the next run of the newest days writes them)."""
    if not store.exists(LATEST_SPAN_KEY):
        return {}
    suites = json.loads(store.get(LATEST_SPAN_KEY)).get("suites", {})
    return {str(name): bool(passed) for name, passed in suites.items()}


def is_newest(run: tuple[date, date], latest: tuple[date, date] | None) -> bool:
    """Whether a run of days `run` reports the newest days: it ends no earlier than latest.html's."""
    return latest is None or run[1] >= latest[1]


def reason_counts(reasons: pd.Series) -> pd.Series:
    """Count reason codes in comma-joined reason strings, as `fct_quarantine_reasons_daily` does."""
    codes = reasons.str.split(",").explode().dropna().map(reason_code)
    return codes[codes != ""].value_counts()


def completeness_matrix(meter_days: pd.DataFrame, meters: int = HEATMAP_METERS) -> pd.DataFrame:
    """Meters x local dates of completeness, the least complete meters first (missing day = 0)."""
    if meter_days.empty:
        return pd.DataFrame()
    matrix = meter_days.pivot_table(
        index="meter_id", columns="local_date", values="completeness", aggfunc="max"
    ).fillna(0.0)
    order = matrix.mean(axis=1).sort_values(kind="stable").index[:meters]
    return matrix.loc[order]


def weighted_quality_score(ledger: pd.DataFrame) -> pd.Series:
    """Each source's quality score over the report's batches, each batch's score weighted by its
    records (`records_in`), as `fct_data_quality_daily.avg_quality_score` weighs them: a late
    one-record batch scoring 90 barely moves a day of 19,000 records scoring 99.7 (a plain mean of
    its three batches said 96.5). Batches with no score are left out; a source whose scored batches hold no record gets their plain mean."""
    scored = ledger.dropna(subset=["quality_score"])
    records = scored["records_in"].astype("float64")
    weighted = (scored["quality_score"] * records).groupby(scored["source"]).sum()
    total = records.groupby(scored["source"]).sum()
    plain = scored.groupby("source")["quality_score"].mean()
    return (weighted / total.where(total > 0)).fillna(plain)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def render_report(
    data: queries.ReportData, charts: dict[str, bytes], docs: dict[str, bool], key: str = REPORT_KEY
) -> str:
    """A self-contained HTML page (charts inlined), readable without any server, to be stored at
    `key` (the Data Docs link is relative to it)."""
    docs_href = "../" * (key.count("/") - 1) + "data_docs/index.html"
    ledger = data.ledger
    totals = ledger.groupby("source")[["records_in", "accepted", "flagged", "quarantined"]].sum()
    totals["quality_score"] = weighted_quality_score(ledger).round(1)
    totals = totals.reset_index()  # `source` a column: an index name renders as an extra header row
    rejects, flags = (
        reason_counts(reasons).rename_axis("reason").reset_index(name="records")
        for reasons in (data.rejects, data.flags)
    )
    suites = "".join(
        f"<li>{html.escape(n)}: {'passed' if ok else '<b>failed</b>'}</li>" for n, ok in docs.items()
    )
    review = ", ".join(f"{n} {s}" for s, n in sorted(data.review_status.items())) or "none"
    generated = datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    newest = (
        "" if key == REPORT_KEY else ' The newest days\' report: <a href="../latest.html">latest.html</a>.'
    )
    span = str(data.first) if data.first == data.last else f"{data.first} to {data.last}"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Metrify data-quality report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:64rem}}
table.t{{border-collapse:collapse}} .t td,.t th{{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}}
</style></head><body>
<h1>Metrify data-quality report: {span}</h1><p>Generated {html.escape(generated)}; {len(ledger)} batches,
{data.alerts} quality alerts; review items of these batches: {html.escape(review)}.</p>
<p><small>This page is rendered again whenever a run rebuilds one of its days or a day its batches
touched (a review decision, late data, a replay): its figures are those of its Generated
time.{newest}</small></p>
<h2>Quality score over time</h2>{_img(charts["score"], "quality score per batch")}
<h2>Records by source</h2>{totals.to_html(classes="t", index=False)}
<p>quality_score: the batches' scores weighted by their records (records_in), so a small batch
moves it little; the chart above shows each batch's own score.
Input = accepted + quarantined holds for every batch (enforced by the ledger). Flagged records are
accepted and wait in the review queue; a record a reviewer rejects moves from flagged to quarantined
(reason <code>review_rejected</code>). Anomalies scored: {data.anomalies}.</p>
<h2>Rejects by reason</h2>{_img(charts["rejects"], "rejects by reason")}
<p>{len(data.rejects)} records quarantined{SEVERAL_REASONS}</p>{rejects.to_html(classes="t", index=False)}
<h2>Flags for review by reason</h2>
<p>{len(data.flags)} records flagged (those a reviewer rejected are quarantined, under
<code>review_rejected</code> above){SEVERAL_REASONS}</p>{flags.to_html(classes="t", index=False)}
<h2>Completeness per meter-day</h2>
<p>The {HEATMAP_METERS} least complete meters; intervals received / intervals in the local day, in per
cent in each cell.</p>
{_img(charts["completeness"], "completeness per meter-day")}
<h2>Top offending meters</h2>{_img(charts["offenders"], "top offending meters")}
<p>Records per meter: rejected = quarantined (a record a reviewer rejected included), flagged = flagged
for review and not rejected; each record counts once, so total = the meter's offending records.</p>
{data.offenders.to_html(classes="t", index=False)}
<h2>GX Data Docs</h2><p><a href="{docs_href}">Data Docs</a> of each source's latest batch:</p>
<ul>{suites}</ul>
</body></html>"""


def build_charts(data: queries.ReportData, threshold: float) -> dict[str, bytes]:
    offenders = data.offenders.set_index("meter_id")["total"]
    return {
        "score": score_over_time_png(data.ledger, threshold),
        "rejects": bar_chart_png(reason_counts(data.rejects), "Rejected records by reason", "records"),
        "completeness": heatmap_png(completeness_matrix(data.meter_days), "Completeness per meter-day"),
        "offenders": bar_chart_png(offenders, "Meters by records rejected or flagged", "records"),
    }


def render_again(
    conn: psycopg.Connection, store: Lake, spans: list[tuple[date, date]], threshold: float
) -> tuple[list[str], list[str]]:
    """Render the dated pages of `spans` again, as their days are now (their suites' results too: each
    source's latest batch validated as stored). A page a legal hold locks where the lake refuses to
    replace it is left as it was. The keys rendered, and those left under a hold."""
    rendered: list[str] = []
    held: list[str] = []
    for span in spans:
        key = report_key(*span)
        data = queries.load(conn, *span)
        latest = queries.latest_batches(conn, *span)
        suites = {suite: gx.validate(suite, batch.rows).success for suite, batch in latest.items()}
        page = render_report(data, build_charts(data, threshold), suites, key)
        try:
            store.put(key, page.encode(), content_type="text/html")
        except ObjectLockedError:
            held.append(key)
        else:
            rendered.append(key)
    return rendered, held


@dg.asset(
    deps=[
        "validated_meter_readings",
        "validated_grid_status",
        "validated_weather_observations",
        "anomaly_scores",
    ],
    partitions_def=DAYS,
    backfill_policy=SINGLE_RUN,
    group_name="reporting",
    kinds={"html", "s3"},
    owners=OWNERS,
    description="Data-quality report for reviewers: score over time, rejects by reason, completeness per "
    "meter-day, top offending meters of the batches that touched the run's days; and GX Data Docs of "
    "each source's latest such batch. HTML in the lake under `reports/quality/dt=<day>/` "
    "(`dt=<first>_<last>/` for several days; `latest.html`: the report of the newest days, rendered "
    "afresh by every run: a run of older days, a backfill or a review decision's rebuild, renders it "
    "again for the newest days) and `reports/data_docs/`. Every dated page that covers one of the run's "
    "days or a day its batches touched is rendered again too, so no page keeps counts from before.",
    metadata={"lake_key": REPORT_KEY, "data_docs_key": f"{data_docs.DATA_DOCS_PREFIX}/index.html"},
    retry_policy=RETRY_POLICY,
)
@classified_step
def data_quality_report(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    lake: LakeResource,
    quality: QualityResource,
) -> dg.MaterializeResult:
    first, last = partition_days(context)
    with postgres.connect() as conn:
        data = queries.load(conn, first, last)
        latest = queries.latest_batches(conn, first, last)
    store = lake.get_lake()
    shown = latest_span(store)
    newest = is_newest((first, last), shown)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="metrify-data-docs-") as site:
        docs = data_docs.build_site(
            {suite: b.rows for suite, b in latest.items()},
            Path(site),
            run_names={suite: b.batch_id for suite, b in latest.items()},
        )
        # The Data Docs show each source's latest batch: not replaced by older days' batches.
        published = data_docs.publish(store, Path(site)) if newest and latest else None
    docs_seconds = time.perf_counter() - started
    if published is None:
        context.log.info("Data Docs left as they are: the run's days hold no batch, or newer days' do")
    else:
        context.log.info(
            f"Data Docs: {len(published.written)} files written ({published.bytes_written:,} bytes), "
            f"{len(published.skipped)} unchanged skipped ({published.bytes_skipped:,} bytes), "
            f"in {docs_seconds:.1f} s; written under {data_docs.DATA_DOCS_PREFIX}/: "
            + (
                ", ".join(k.removeprefix(f"{data_docs.DATA_DOCS_PREFIX}/") for k in published.written)
                or "none"
            )
        )
    charts = build_charts(data, quality.alert_threshold)
    dated_key = report_key(first, last)
    dated = store.put(
        dated_key, render_report(data, charts, docs, dated_key).encode(), content_type="text/html"
    )
    if newest:
        uri = store.put(REPORT_KEY, render_report(data, charts, docs).encode(), content_type="text/html")
        store.put(
            LATEST_SPAN_KEY,
            json.dumps({"first": first.isoformat(), "last": last.isoformat(), "suites": docs}).encode(),
            content_type="application/json",
        )
    else:
        # Still the newest days' report, but as they are now: this run may be a review decision's
        # rebuild, and its batches (their review items) may be latest.html's too.
        assert shown is not None
        with postgres.connect() as conn:
            current = queries.load(conn, *shown)
        page = render_report(current, build_charts(current, quality.alert_threshold), latest_suites(store))
        uri = store.put(REPORT_KEY, page.encode(), content_type="text/html")
        context.log.info(
            f"latest.html stays the report of {shown[0]} .. {shown[1]}, newer than this run's days, "
            f"rendered again as they are now; this run's report: {dated}"
        )
    started = time.perf_counter()
    with postgres.connect() as conn:
        spans = covering_pages(store, (first, last), queries.batch_days(conn, first, last))
        rendered, held = render_again(conn, store, spans, quality.alert_threshold)
    pages_seconds = time.perf_counter() - started
    if rendered or held:
        context.log.info(
            f"dated pages of these days or their batches' rendered again in {pages_seconds:.1f} s: "
            f"{', '.join(rendered) or 'none'}"
            + (f"; left as they were under a legal hold: {', '.join(held)}" if held else "")
        )
    ledger = data.ledger
    return dg.MaterializeResult(
        metadata={
            "days": dg.MetadataValue.text(f"{first} .. {last}"),
            "report": dg.MetadataValue.path(dated),
            "latest": dg.MetadataValue.path(uri),
            "data_docs": dg.MetadataValue.path(store.uri(f"{data_docs.DATA_DOCS_PREFIX}/index.html")),
            "data_docs_seconds": figure(docs_seconds),
            "latest_replaced": dg.MetadataValue.bool(newest),
            "latest_days": dg.MetadataValue.text(
                f"{first} .. {last}" if newest or shown is None else f"{shown[0]} .. {shown[1]}"
            ),
            "pages_rendered_again": dg.MetadataValue.json(rendered),
            "pages_held": dg.MetadataValue.json(held),
            "pages_seconds": figure(pages_seconds),
            "data_docs_files_written": dg.MetadataValue.int(len(published.written) if published else 0),
            "data_docs_files_skipped": dg.MetadataValue.int(len(published.skipped) if published else 0),
            "data_docs_bytes_written": dg.MetadataValue.int(published.bytes_written if published else 0),
            "suites_passed": dg.MetadataValue.json(docs),
            "batches": dg.MetadataValue.int(len(ledger)),
            "records_in": dg.MetadataValue.int(int(ledger["records_in"].sum())),
            "quarantined": dg.MetadataValue.int(int(ledger["quarantined"].sum())),
            "flagged": dg.MetadataValue.int(int(ledger["flagged"].sum())),
            "quality_alerts": dg.MetadataValue.int(data.alerts),
            "min_quality_score": figure(float(ledger["quality_score"].min()) if len(ledger) else 0.0),
            "rejects": dg.MetadataValue.md(
                markdown_table(reason_counts(data.rejects).rename("records").reset_index())
            ),
            "top_offending_meters": dg.MetadataValue.md(markdown_table(data.offenders)),
            "chart": dg.MetadataValue.md(png_markdown(charts["score"], "quality score per batch")),
        }
    )


defs = dg.Definitions(assets=[data_quality_report])
