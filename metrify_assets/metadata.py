"""Small helpers that turn results into Dagster UI metadata."""

from __future__ import annotations

import base64
import io
import math
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def markdown_table(frame: pd.DataFrame, max_rows: int = 20) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency), cut at `max_rows`."""
    shown = frame.head(max_rows)
    header = "| " + " | ".join(str(c) for c in shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    more = [f"\n_{len(frame) - max_rows} more rows_"] if len(frame) > max_rows else []
    return "\n".join([header, rule, *rows, *more])


def figure(value: float, significant: int = 4) -> dg.FloatMetadataValue:
    """A float as a person reads it on an asset's page: `significant` digits, but never fewer than its
    whole part (a 0..100 score 99.75255977 is 99.75, a rate 0.0181648936 is 0.01816, 12.3456 s is
    12.35), and never rounded to a whole number it is not: 94.996 stays 94.996 beside a threshold of
    95, a share 0.99996 is not "all" (1.0), 1234.567 is 1234.6. Only the UI's value: what PostgreSQL
    and the lake store is not rounded here."""
    value = float(value)
    if not math.isfinite(value) or value == 0:
        return dg.MetadataValue.float(value)
    decimals = max(0, significant - 1 - math.floor(math.log10(abs(value))))
    shown = round(value, decimals)
    while (
        shown.is_integer() and not math.isclose(shown, value, rel_tol=1e-9, abs_tol=1e-12) and decimals < 15
    ):
        decimals += 1
        shown = round(value, decimals)
    return dg.MetadataValue.float(shown)


def png_markdown(png: bytes, alt: str) -> str:
    """Embed a PNG in Markdown metadata, so the chart shows in the Dagster UI."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


@cache
def pyplot() -> ModuleType:
    """pyplot on the headless backend (no display on servers), imported on the first chart: the
    import (~1 s) would otherwise be paid by every process that loads the definitions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """`fig` laid out tight as PNG bytes; the figure is closed (pyplot keeps every open one)."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    pyplot().close(fig)
    return buf.getvalue()
