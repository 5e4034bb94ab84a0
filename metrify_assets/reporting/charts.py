"""Charts as PNG bytes (matplotlib, headless), shared by the HTML report and Dagster metadata."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers
import matplotlib.pyplot as plt
import pandas as pd


def bar_chart_png(series: pd.Series, title: str, xlabel: str) -> bytes:
    """A horizontal bar chart of `series` (index = labels), largest at the top."""
    data = series.sort_values()
    fig, ax = plt.subplots(figsize=(7, max(2.0, 0.35 * len(data) + 1)))
    ax.barh([str(i) for i in data.index], data.to_numpy(), color="#3b6ea5")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    for y, v in enumerate(data.to_numpy()):
        ax.text(v, y, f" {v:,.0f}", va="center", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
