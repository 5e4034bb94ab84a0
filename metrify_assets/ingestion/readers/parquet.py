"""Parquet files: typed columns, taken as they are typed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from metrify_assets.ingestion.readers.result import Rows


def read_parquet(path: Path) -> Rows:
    """A Parquet file's rows. Raises ValueError for a file pyarrow cannot open."""
    try:
        frame = pd.read_parquet(path)
    except (OSError, pa.ArrowException) as err:
        raise ValueError(f"cannot read {path.name} as Parquet: {err}") from err
    return Rows.from_frame(frame)
