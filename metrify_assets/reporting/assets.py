"""`data_quality_report`: what came in, what was accepted, quarantined and flagged, and why.

An HTML page (charts inlined) and the GX Data Docs of each source's latest batch, both in the lake:
`reports/quality/dt=<day>/index.html` (`dt=<first>_<last>` for several days; latest.html: the report
of the newest days) and `reports/data_docs/index.html`.
A run renders again every page that counts what it rebuilt: each dated page, and latest.html, that
covers one of its days or a day its batches touched (the page of a range, another day of a batch whose
item was decided), so no page shows other counts than the marts; a page of other days is left as it
is. It reads the days of all those pages once (`queries.read`) and renders each page once.
No `from __future__ import annotations`: dagster must resolve the `context` annotation.
"""

import base64
import html
import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg

from metrify_assets.errors import RETRY_POLICY, classified_step
from metrify_assets.lifecycle.policy import day_span
from metrify_assets.metadata import figure, markdown_table, png_markdown
from metrify_assets.meters.days import days_between
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
# decision's rebuild) writes its dated report, renders latest.html again for these days when it rebuilt
# one of them or one of their batches' days, and leaves the Data Docs to the newer days' report.
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


def shows_changes(span: tuple[date, date], run: tuple[date, date], days: set[date]) -> bool:
    """Whether the page of days `span` counts what a run of days `run` rebuilt: one of its days, or one
    of `days` (those the run's batches touched: a batch's review items count on each of its days)."""
    return overlaps(span, run) or any(span[0] <= day <= span[1] for day in days)


def covering_pages(store: Lake, run: tuple[date, date], days: set[date]) -> list[tuple[date, date]]:
    """The days of each dated page, other than the run's own, that counts what the run rebuilt
    (`shows_changes`), oldest first: one listing of the report folders."""
    spans = (day_span(prefix) for prefix in store.list_day_prefixes(REPORTS_PREFIX))
    return [span for span in spans if span != run and shows_changes(span, run, days)]


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


# The flags table's decision columns: pending first (what is still to decide), then what was decided
# and stays a flag (a rejected flag is quarantined, under review_rejected); superseded only when any.
FLAG_STATUSES = ("pending", "approved", "superseded")


def flag_counts(flags: pd.DataFrame) -> pd.DataFrame:
    """Flagged records per reason code (`records`) and by their review status, so a reviewer sees per
    reason what is still pending; the most flagged reason first."""
    codes = flags.assign(reason=flags["reasons"].str.split(",")).explode("reason").dropna(subset="reason")
    codes["reason"] = codes["reason"].map(reason_code)
    codes = codes[codes["reason"] != ""]
    table = pd.crosstab(codes["reason"], codes["status"]).reindex(columns=list(FLAG_STATUSES), fill_value=0)
    if not table["superseded"].any():
        table = table.drop(columns="superseded")
    table.insert(0, "records", table.sum(axis=1))
    table = table.sort_values("records", ascending=False, kind="stable")
    return table.rename_axis(index="reason", columns=None).reset_index()


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
    rejects = reason_counts(data.rejects).rename_axis("reason").reset_index(name="records")
    flags = flag_counts(data.flags)
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
<code>review_rejected</code> above){SEVERAL_REASONS} Pending: still to decide
(<code>metrify review list --reason CODE</code> lists them); approved: kept by a reviewer.</p>
{flags.to_html(classes="t", index=False)}
<h2>Completeness per meter-day</h2>
<p>The {HEATMAP_METERS} least complete meters; intervals received / intervals VEE expects of the
meter-day (on a meter's first day, from its first reading's interval; the whole local day where VEE has
not run), in per cent in each cell.</p>
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


def suites_of(
    conn: psycopg.Connection,
    loaded: queries.Loaded,
    span: tuple[date, date],
    known: dict[tuple[str, str], bool],
) -> dict[str, bool]:
    """The suites' results the dated page of `span` lists: each source's latest batch among the page's,
    as stored, validated against its suite. `known` holds the results of the run's batches so far
    ((suite, batch id): passed): each batch is read and validated once a run."""
    results = {}
    for suite, batch_id in loaded.latest_batches(*span).items():
        if (suite, batch_id) not in known:
            known[(suite, batch_id)] = gx.validate(suite, queries.batch_rows(conn, suite, batch_id)).success
        results[suite] = known[(suite, batch_id)]
    return results


def render_again(
    conn: psycopg.Connection,
    store: Lake,
    loaded: queries.Loaded,
    pages: dict[tuple[date, date], list[str]],
    threshold: float,
    known: dict[tuple[str, str], bool],
    log: Callable[[str], None],
) -> tuple[list[str], list[str]]:
    """Render the pages of each span in `pages` (its keys: its dated page, latest.html or both) again,
    as their days are now, each span's figures and charts once; dated pages list their suites' results
    (`suites_of`), latest.html those of the published Data Docs. Logs each span as it goes (a review
    decision on a batch of many days renders the page of each). A page a legal hold locks where the lake
    refuses to replace it is left as it was. The keys rendered, and those left under a hold."""
    rendered: list[str] = []
    held: list[str] = []
    started = time.perf_counter()
    for number, (span, keys) in enumerate(pages.items(), start=1):
        data = loaded.report(*span)
        charts = build_charts(data, threshold)
        for key in keys:
            suites = latest_suites(store) if key == REPORT_KEY else suites_of(conn, loaded, span, known)
            page = render_report(data, charts, suites, key)
            try:
                store.put(key, page.encode(), content_type="text/html")
            except ObjectLockedError:
                held.append(key)
            else:
                rendered.append(key)
        log(
            f"page {number}/{len(pages)} rendered again ({time.perf_counter() - started:.1f} s so far): "
            + ", ".join(keys)
        )
    return rendered, held


@dg.asset(
    deps=[
        "validated_meter_readings",
        "validated_grid_status",
        "validated_weather_observations",
        "anomaly_scores",
        "vee_meter_readings",  # the intervals each meter-day is expected to hold (completeness)
    ],
    partitions_def=DAYS,
    backfill_policy=SINGLE_RUN,
    group_name="reporting",
    kinds={"html", "s3"},
    owners=OWNERS,
    description="Data-quality report for reviewers: score over time, rejects by reason, completeness per "
    "meter-day, top offending meters of the batches that touched the run's days; and GX Data Docs of "
    "each source's latest such batch. HTML in the lake under `reports/quality/dt=<day>/` "
    "(`dt=<first>_<last>/` for several days; `latest.html`: the report of the newest days) and "
    "`reports/data_docs/`. Every page that counts what the run rebuilt (covers one of its days or a day "
    "its batches touched: latest.html, a range's page, a decided batch's other days) is rendered again "
    "too, so no page keeps counts from before; pages of other days are left as they are. Each day is "
    "read once and each page rendered once per run (metadata days_read, pages_rendered_again).",
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
    run = (first, last)
    store = lake.get_lake()
    shown = latest_span(store)
    newest = is_newest(run, shown)
    with postgres.connect() as conn:
        touched = queries.batch_days(conn, first, last)
        # Each other page that counts what this run rebuilt, rendered again: the dated pages of its days
        # and its batches' days, and latest.html when this run's days are not the newest but it rebuilt
        # one of the newest (or one of their batches' days); a page of other days is left as it is.
        pages: dict[tuple[date, date], list[str]] = {
            span: [report_key(*span)] for span in covering_pages(store, run, touched)
        }
        latest_again = shown is not None and not newest and shows_changes(shown, run, touched)
        if latest_again:
            assert shown is not None
            pages.setdefault(shown, []).append(REPORT_KEY)
        started = time.perf_counter()
        loaded = queries.read(conn, {day for span in (run, *pages) for day in days_between(*span)})
        load_seconds = time.perf_counter() - started
        context.log.info(
            f"read the days {', '.join(f'{a} .. {b}' for a, b in loaded.ranges)} for {len(pages) + 1} "
            f"pages' reports in {load_seconds:.1f} s"
        )
        latest = loaded.latest_batches(first, last)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="metrify-data-docs-") as site:
            docs = data_docs.build_site(
                {suite: queries.batch_rows(conn, suite, batch_id) for suite, batch_id in latest.items()},
                Path(site),
                run_names=latest,
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
        data = loaded.report(first, last)
        charts = build_charts(data, quality.alert_threshold)
        dated_key = report_key(first, last)
        dated = store.put(
            dated_key, render_report(data, charts, docs, dated_key).encode(), content_type="text/html"
        )
        if newest:
            store.put(REPORT_KEY, render_report(data, charts, docs).encode(), content_type="text/html")
            store.put(
                LATEST_SPAN_KEY,
                json.dumps({"first": first.isoformat(), "last": last.isoformat(), "suites": docs}).encode(),
                content_type="application/json",
            )
        else:
            assert shown is not None
            context.log.info(
                f"latest.html stays the report of {shown[0]} .. {shown[1]}, newer than this run's days, "
                + (
                    "rendered again as they are now"
                    if latest_again
                    else "left as it is: this run rebuilt none of its days or their batches' days"
                )
                + f"; this run's report: {dated}"
            )
        started = time.perf_counter()
        rendered, held = render_again(
            conn,
            store,
            loaded,
            pages,
            quality.alert_threshold,
            {(suite, latest[suite]): passed for suite, passed in docs.items()},
            context.log.info,
        )
        pages_seconds = time.perf_counter() - started
    again = [key for key in rendered if key != REPORT_KEY]
    if again or held:
        context.log.info(
            f"dated pages of these days or their batches' rendered again in {pages_seconds:.1f} s: "
            f"{', '.join(again) or 'none'}"
            + (f"; left as they were under a legal hold: {', '.join(held)}" if held else "")
        )
    ledger = data.ledger
    return dg.MaterializeResult(
        metadata={
            "days": dg.MetadataValue.text(f"{first} .. {last}"),
            "report": dg.MetadataValue.path(dated),
            "latest": dg.MetadataValue.path(store.uri(REPORT_KEY)),
            "latest_rendered": dg.MetadataValue.bool(newest or REPORT_KEY in rendered),
            "data_docs": dg.MetadataValue.path(store.uri(f"{data_docs.DATA_DOCS_PREFIX}/index.html")),
            "data_docs_seconds": figure(docs_seconds),
            "latest_replaced": dg.MetadataValue.bool(newest),
            "latest_days": dg.MetadataValue.text(
                f"{first} .. {last}" if newest or shown is None else f"{shown[0]} .. {shown[1]}"
            ),
            "pages_rendered_again": dg.MetadataValue.json(again),
            "pages_held": dg.MetadataValue.json(held),
            "pages_seconds": figure(pages_seconds),
            "pages_written": dg.MetadataValue.int(1 + newest + len(rendered)),
            "days_read": dg.MetadataValue.json([f"{a} .. {b}" for a, b in loaded.ranges]),
            "load_seconds": figure(load_seconds),
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
