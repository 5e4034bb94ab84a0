"""Parquet files: typed columns, taken as they are typed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from metrify_assets.ingestion.readers.result import Rows


def read_parquet(path: Path) -> Rows:
    """A Parquet file's rows. Raises ValueError for a file pyarrow cannot open, or one with two
    columns of one name (pyarrow refuses to read it, in words about a FieldRef)."""
    try:
        names = pq.read_schema(path).names  # the footer only
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(
                f"{path.name} has more than one column named {', '.join(map(repr, repeated))}; rename them first"
            )
        return Rows.from_frame(pd.read_parquet(path))
    except (OSError, pa.ArrowException) as err:
        raise ValueError(f"cannot read {path.name} as Parquet: {err}") from err
