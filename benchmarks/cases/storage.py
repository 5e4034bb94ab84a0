"""Case 5: archive bytes against the raw JSON of the same readings, and duplicates eliminated."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd

from benchmarks.harness import CaseResult
from metrify_assets.contracts import METER_READINGS
from metrify_assets.ingestion.decode import decode
from metrify_assets.quality import rules
from metrify_assets.simulation import SimulationConfig, simulate
from metrify_assets.storage.parquet import to_parquet_bytes

NOW = pd.Timestamp("2030-01-01T00:00:00Z")


def storage(scale: float) -> CaseResult:
    config = SimulationConfig(meters=max(20, int(1000 * scale)), days=2, fault_rate=0.0, seed=5)
    messages = simulate(config).messages["meter_readings"]
    clean = decode(METER_READINGS, messages, [1] * len(messages))
    raw_bytes = sum(len(p.encode()) for p in clean.payloads)  # one JSON object per reading
    raw_gzip = len(gzip.compress("\n".join(messages).encode(), compresslevel=6))

    # Inject 10 % exact duplicates (re-sent readings) and let the pipeline's rules eliminate them.
    rng = np.random.default_rng(5)
    dup_idx = rng.choice(len(clean.payloads), size=len(clean.payloads) // 10, replace=False)
    with_dups = messages + [clean.payloads[i] for i in dup_idx]
    batch = decode(METER_READINGS, with_dups, [1] * len(with_dups))
    outcome = rules.evaluate("meter_readings", batch.records, NOW)
    accepted = batch.records[(outcome.decision != "reject").to_numpy()]
    eliminated = int(outcome.masks["duplicate_exact"].sum())
    archive = to_parquet_bytes(accepted.sort_values(["meter_id", "reading_start"]))
    return CaseResult(
        name="storage",
        title="5. Storage",
        figures={
            "readings": len(clean.payloads),
            "raw JSON bytes": raw_bytes,
            "raw batch bytes (gzip, as stored in raw/)": raw_gzip,
            "archive bytes (Parquet zstd)": len(archive),
            "compression vs raw JSON %": round(100 * (1 - len(archive) / raw_bytes), 1),
            "bytes per reading (archive)": round(len(archive) / len(accepted), 2),
            "duplicates injected": len(dup_idx),
            "duplicates eliminated %": round(100 * eliminated / len(dup_idx), 2),
            "archived rows = unique readings": bool(len(accepted) == len(clean.records)),
        },
    )
