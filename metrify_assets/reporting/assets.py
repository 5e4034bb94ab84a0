"""`data_quality_report`: what came in, what was accepted, quarantined and flagged, and why."""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from metrify_assets.metadata import markdown_table, png_markdown
from metrify_assets.reporting.charts import bar_chart_png
from metrify_assets.resources import LakeResource, PostgresResource
from metrify_assets.storage.frames import read_frame
from metrify_assets.storage.migrate import migrate

OWNERS = ["team:data-quality"]
REPORT_KEY = "reports/quality/latest.html"


def reason_counts(reasons: pd.Series) -> pd.Series:
    """Count reason codes in comma-joined reason strings (malformed details folded into their code)."""
    codes = reasons.str.split(",").explode().str.strip()
    codes = codes.str.replace(r"^malformed:.*$", "malformed", regex=True)
    return codes[codes != ""].value_counts()


def render_report(ledger: pd.DataFrame, reasons: pd.Series, anomalies: int, chart_png: bytes) -> str:
    """A self-contained HTML page (charts inlined), readable without any server."""
    totals = ledger.groupby("source")[["records_in", "accepted", "flagged", "quarantined"]].sum()
    totals["quality_score"] = ledger.groupby("source")["quality_score"].mean().round(1)
    reason_table = reasons.rename("records").to_frame().to_html(classes="t")
    img = base64.b64encode(chart_png).decode()
    generated = datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Metrify data-quality report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}}
table.t{{border-collapse:collapse}} .t td,.t th{{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}}
</style></head><body>
<h1>Metrify data-quality report</h1><p>Generated {html.escape(generated)}; {len(ledger)} batches.</p>
<h2>Records by source</h2>{totals.to_html(classes="t")}
<p>Input = accepted + quarantined holds for every batch (enforced by the ledger). Flagged records are
accepted and wait in the review queue. Anomalies scored: {anomalies}.</p>
<h2>Quarantine and review reasons</h2><img alt="reasons" src="data:image/png;base64,{img}">
{reason_table}
</body></html>"""


@dg.asset(
    deps=[
        "validated_meter_readings",
        "validated_grid_status",
        "validated_weather_observations",
        "anomaly_scores",
    ],
    group_name="reporting",
    kinds={"html", "s3"},
    owners=OWNERS,
    description="Data-quality report for reviewers: batches, acceptance, quarantine and review reasons, "
    "with charts; an HTML page in the lake under reports/quality/.",
    metadata={"lake_key": REPORT_KEY},
)
def data_quality_report(postgres: PostgresResource, lake: LakeResource) -> dg.MaterializeResult:
    with postgres.connect() as conn:
        migrate(conn)
        ledger = read_frame(
            conn,
            "SELECT * FROM ops.ingest_ledger",
        )
        quarantine = read_frame(
            conn,
            "SELECT reasons FROM ops.quarantine",
        )
        review = read_frame(
            conn,
            "SELECT reasons FROM ops.review_queue",
        )
        anomalies = int(
            read_frame(conn, "SELECT count(*) AS n FROM ops.anomaly_scores WHERE is_anomaly")["n"][0]
        )
    reasons = reason_counts(pd.concat([quarantine["reasons"], review["reasons"]], ignore_index=True))
    chart = bar_chart_png(reasons, "Records by reason (quarantined or flagged)", "records")
    page = render_report(ledger, reasons, anomalies, chart)
    store = lake.get_lake()
    day = datetime.now(tz=UTC).date().isoformat()
    store.put(f"reports/quality/dt={day}/index.html", page.encode(), content_type="text/html")
    uri = store.put(REPORT_KEY, page.encode(), content_type="text/html")
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.path(uri),
            "batches": dg.MetadataValue.int(len(ledger)),
            "records_in": dg.MetadataValue.int(int(ledger["records_in"].sum())),
            "quarantined": dg.MetadataValue.int(int(ledger["quarantined"].sum())),
            "flagged": dg.MetadataValue.int(int(ledger["flagged"].sum())),
            "reasons": dg.MetadataValue.md(markdown_table(reasons.rename("records").reset_index())),
            "chart": dg.MetadataValue.md(png_markdown(chart, "records by reason")),
        }
    )


defs = dg.Definitions(assets=[data_quality_report])
