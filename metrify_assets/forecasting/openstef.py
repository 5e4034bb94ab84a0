"""The OpenSTEF sample (tests/fixtures/openstef_307_test.csv, MPL-2.0) as a load series: its net load
in kWh per quarter-hour (negative = feed-in), as the `openstef` ingest preset lands it, with its
temperature; a Dutch location, so Dutch holidays and local days."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from metrify_assets.forecasting.series import LoadSeries
from metrify_assets.ingestion.readers.presets.openstef import KWH_PER_MW_QUARTER_HOUR, read_openstef

TIMEZONE = "Europe/Amsterdam"
COUNTRY = "NL"


def openstef_series(path: Path, name: str = "openstef-307") -> LoadSeries:
    frame = read_openstef(path)
    stamps = pd.DatetimeIndex(pd.to_datetime(frame["datetime"], utc=True, format="ISO8601"))
    load = pd.to_numeric(frame["load"], errors="coerce").to_numpy() * KWH_PER_MW_QUARTER_HOUR
    temperature = pd.to_numeric(frame["temp"], errors="coerce").to_numpy()
    return LoadSeries(
        name=name,
        load=pd.Series(load, index=stamps).sort_index(),
        temperature=pd.Series(temperature, index=stamps).sort_index(),
        timezone=TIMEZONE,
        country=COUNTRY,
    )
