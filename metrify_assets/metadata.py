"""Small helpers that turn results into Dagster UI metadata."""

from __future__ import annotations

import base64

import pandas as pd


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
