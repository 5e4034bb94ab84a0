"""Charts as PNG bytes (matplotlib, headless), shared by the HTML report and Dagster metadata."""

from __future__ import annotations

import numpy as np
import pandas as pd

from metrify_assets.metadata import figure_png, pyplot

ANNOTATED_CELLS = 600  # the heat map writes each cell's per cent up to this many cells (30 meters x 20 days)


def bar_chart_png(series: pd.Series, title: str, xlabel: str) -> bytes:
    """A horizontal bar chart of `series` (index = labels), largest at the top."""
    data = series.sort_values()
    fig, ax = pyplot().subplots(figsize=(7, max(2.0, 0.35 * len(data) + 1)))
    ax.barh([str(i) for i in data.index], data.to_numpy(), color="#3b6ea5")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    for y, v in enumerate(data.to_numpy()):
        ax.text(v, y, f" {v:,.0f}", va="center", fontsize=8)
    return figure_png(fig, dpi=90)


def score_over_time_png(ledger: pd.DataFrame, threshold: float) -> bytes:
    """Quality score of each batch in processing order, one line per source, with the alert threshold.

    The x axis is the batches' order, not their processing time: a backfill processes days of data
    within seconds, where a time axis would crowd every batch into one tick. The time span is in the
    axis label."""
    fig, ax = pyplot().subplots(figsize=(8, 3.5))
    ordered = ledger.sort_values("processed_at", kind="stable").reset_index(drop=True)
    for source, batches in ordered.groupby("source"):
        ax.plot(batches.index + 1, batches["quality_score"], marker="o", markersize=3, label=str(source))
    ax.axhline(
        threshold, color="#c0392b", linestyle="--", linewidth=1, label=f"alert threshold {threshold:g}"
    )
    ax.set_title("Quality score per batch")
    ax.set_ylabel("score (0-100)")
    ax.set_xlabel(processing_span(ordered["processed_at"]))
    ax.xaxis.get_major_locator().set_params(integer=True)
    lowest = ledger["quality_score"].min()
    ax.set_ylim((threshold if pd.isna(lowest) else min(float(lowest), threshold)) - 5, 101)
    ax.legend(fontsize=8, loc="lower left")
    return figure_png(fig, dpi=90)


def processing_span(processed_at: pd.Series) -> str:
    """The score chart's x label: batches in processing order, processed from when to when (UTC)."""
    if processed_at.empty:
        return "batch (no batches)"
    first, last = (pd.Timestamp(t).tz_convert("UTC") for t in (processed_at.min(), processed_at.max()))
    end = f"{last:%H:%M:%S}" if first.date() == last.date() else f"{last:%Y-%m-%d %H:%M:%S}"
    return f"batch, in processing order ({first:%Y-%m-%d %H:%M:%S} to {end} UTC)"


def heatmap_png(matrix: pd.DataFrame, title: str) -> bytes:
    """A 0..1 heat map (rows: index labels, columns: column labels), red low, green high, read in percent
    (cells and colour bar alike)."""
    fig, ax = pyplot().subplots(
        figsize=(max(4.0, 0.6 * matrix.shape[1] + 2.5), max(2.5, 0.22 * len(matrix) + 1.2))
    )
    if matrix.empty:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        return figure_png(fig, dpi=90)
    image = ax.imshow(matrix.to_numpy(dtype="float64"), cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(
        range(matrix.shape[1]), [str(c) for c in matrix.columns], rotation=45, ha="right", fontsize=7
    )
    ax.set_yticks(range(len(matrix)), [str(i) for i in matrix.index], fontsize=7)
    if matrix.size <= ANNOTATED_CELLS:  # 0.97 and 1.0 are the same green: the number tells them apart
        for (row, col), value in np.ndenumerate(matrix.to_numpy(dtype="float64")):
            dark = value < 0.25 or value > 0.8  # the deep red and green ends of RdYlGn
            ax.text(col, row, f"{100 * value:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")  # fmt: skip
    ax.set_title(title)
    bar = fig.colorbar(image, ax=ax, fraction=0.04)
    bar.ax.yaxis.set_major_formatter(lambda value, _: f"{100 * value:.0f} %")  # as the cells read
    return figure_png(fig, dpi=90)
