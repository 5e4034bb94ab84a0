"""The OpenSTEF sample (tests/fixtures/openstef_307_test.csv, MPL-2.0) as a load series: its net load
in kWh per quarter-hour (negative = feed-in), as the `openstef` ingest preset lands it, with its
temperature; a Dutch location, so Dutch holidays and local days."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from metrify_assets.forecasting.series import LoadSeries
from metrify_assets.ingestion.readers.mapping import as_numbers, parse_timestamps
from metrify_assets.ingestion.readers.presets.openstef import KWH_PER_MW_QUARTER_HOUR, read_openstef

TIMEZONE = "Europe/Amsterdam"
COUNTRY = "NL"


def openstef_series(path: Path, name: str = "openstef-307") -> LoadSeries:
    """Read with the ingest preset's own parsers (its timestamp grammar, naive times as UTC as
    OpenSTEF writes them, and its numbers), so the backtest sees the values `metrify ingest` lands;
    a row whose time does not parse is left out, as ingest rejects it."""
    frame = read_openstef(path)
    parsed, _ = parse_timestamps(frame["datetime"], "UTC")
    frame, parsed = frame[parsed.notna()], parsed[parsed.notna()]
    stamps = pd.DatetimeIndex(parsed)
    load = as_numbers(frame["load"]).to_numpy() * KWH_PER_MW_QUARTER_HOUR
    temperature = as_numbers(frame["temp"]).to_numpy()
    return LoadSeries(
        name=name,
        load=pd.Series(load, index=stamps).sort_index(),
        temperature=pd.Series(temperature, index=stamps).sort_index(),
        timezone=TIMEZONE,
        country=COUNTRY,
    )
