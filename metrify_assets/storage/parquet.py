"""Deterministic Parquet (zstd) encoding for what Metrify keeps in the lake (archive tiers, models)."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def to_parquet_bytes(frame: pd.DataFrame, compression_level: int = 9) -> bytes:
    """Same rows in, same bytes out: sorted input and no wall-clock metadata."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", compression_level=compression_level)
    return buf.getvalue()
