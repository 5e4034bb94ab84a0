"""Read query results into DataFrames over a psycopg connection (no SQLAlchemy needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import psycopg


def read_frame(
    conn: psycopg.Connection, query: str, params: Mapping[str, Any] | Sequence[Any] | None = None
) -> pd.DataFrame:
    """Run `query` and return its rows with the cursor's column names (timestamps stay tz-aware)."""
    with conn.cursor() as cur:
        cur.execute(query.encode(), params)
        columns = [c.name for c in cur.description or []]
        return pd.DataFrame(cur.fetchall(), columns=columns)
