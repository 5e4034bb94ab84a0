"""Small helpers that turn results into Dagster UI metadata."""

from __future__ import annotations

import base64
import io
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

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
