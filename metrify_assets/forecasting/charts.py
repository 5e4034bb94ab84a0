"""The forecast day as a picture for the Dagster UI: per series, the chosen method's P50 and its
P10..P90 band over the local day (matplotlib, headless, imported on first use)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from metrify_assets.metadata import figure_png, pyplot

MAX_SERIES = 6  # the largest by forecast energy; the metadata table lists every series


def _kwh(values: pd.Series) -> np.ndarray:
    """Values as float64, NaN where null: a column of object dtype (None beside floats) is refused by
    matplotlib's masking (numpy's isfinite)."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")


def forecast_chart_png(selected: pd.DataFrame) -> bytes:
    """Small multiples of `selected` (the chosen rows: region, segment, local_date, horizon_hour,
    reading_start, method, p10_kwh, p50_kwh, p90_kwh) for its newest forecast day."""
    day = selected[selected["local_date"] == selected["local_date"].max()]
    energy = pd.Series(_kwh(day["p50_kwh"]), index=day.index)
    totals = energy.groupby([day["region"], day["segment"]]).sum().sort_values(ascending=False)
    keys = list(totals.index[:MAX_SERIES])
    columns = min(3, max(1, len(keys)))
    rows = -(-max(1, len(keys)) // columns)
    fig, axes = pyplot().subplots(rows, columns, figsize=(4 * columns, 2.6 * rows), squeeze=False)
    for ax, (region, segment) in zip(axes.flat, keys, strict=False):
        rows_of = day[(day["region"] == region) & (day["segment"] == segment)].sort_values("reading_start")
        hours = rows_of["horizon_hour"].to_numpy() + (
            pd.to_datetime(rows_of["reading_start"]).dt.minute.to_numpy() / 60
        )
        p10, p50, p90 = (_kwh(rows_of[c]) for c in ("p10_kwh", "p50_kwh", "p90_kwh"))
        ax.fill_between(hours, p10, p90, color="#9ecae1", label="P10..P90")
        ax.plot(hours, p50, color="#08519c", linewidth=1.2, label="P50")
        ax.axhline(0.0, color="#999999", linewidth=0.5)
        ax.set_title(f"{region} / {segment} ({rows_of['method'].iloc[0]})", fontsize=8)
        ax.set_xlabel("hours from local midnight", fontsize=7)
        ax.set_ylabel("kWh per quarter-hour", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    if keys:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"Load forecast for {day['local_date'].max()}", fontsize=9)
    return figure_png(fig)
