"""A chart of the risk score per hour for the Dagster UI (matplotlib, headless, imported on first use)."""

from __future__ import annotations

import pandas as pd

from metrify_assets.metadata import figure_png, pyplot

MAX_NODES = 8


def risk_chart_png(figures: pd.DataFrame) -> bytes:
    """Risk score per hour of the riskiest nodes (at most MAX_NODES), with the worst state's hours marked."""
    scored = figures.dropna(subset=["risk_score"])
    top = scored.groupby("grid_node_id")["risk_score"].max().sort_values(ascending=False).head(MAX_NODES)
    fig, ax = pyplot().subplots(figsize=(8, 3.5))
    for node in top.index:
        series = scored[scored["grid_node_id"] == node].sort_values("hour_start")
        hours = pd.to_datetime(series["hour_start"], utc=True)
        ax.plot(hours, series["risk_score"].astype(float), marker="o", markersize=2, label=str(node))
        bad = series["worst_state"] != "normal"
        ax.scatter(
            hours[bad.to_numpy()], series.loc[bad, "risk_score"].astype(float), color="#c0392b", zorder=3
        )
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("risk score (0-1)")
    ax.set_title("Risk per node and hour (red: alert or emergency in the hour)")
    if len(top):
        ax.legend(fontsize=7, ncol=2)
    return figure_png(fig)
