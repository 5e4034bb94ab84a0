"""The record contracts of the three sources: field names, types, natural keys.

One place that the decoder, the record rules, the upserts, the GX suites and the tests share, so a
field is named once. Message contract v1 (docs/architecture.md) maps onto these columns
one to one; Metrify adds bookkeeping columns (`BOOKKEEPING`) when it stores a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd

FieldType = Literal["str", "int", "float", "timestamp", "str_list"]
# The region and segment of a meter not in the registry, wherever a name stands for none: rollups,
# forecast series, anomaly features, enrichment, the API's filters (the marts' `coalesce(..., 'unknown')`).
UNREGISTERED = "unknown"


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    required: bool = True
    # What an optional field is stored as when a record leaves it out (its column is then NOT NULL).
    default: str | None = None


@dataclass(frozen=True)
class SourceContract:
    """What one source's records look like and how they are stored."""

    source: str  # short name used in lake keys, CLI and ledger: meter_readings, ...
    table: str  # operational table in schema `ops`
    fields: tuple[Field, ...]
    key: tuple[str, ...]  # natural key
    time_field: str  # the record's timestamp (drives dt= partitions)
    topic: str  # default Kafka topic

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def required(self) -> list[str]:
        return [f.name for f in self.fields if f.required]

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


METER_READINGS = SourceContract(
    source="meter_readings",
    table="meter_readings",
    fields=(
        Field("meter_id", "str"),
        Field("reading_start", "timestamp"),
        Field("interval_minutes", "int"),
        Field("energy_kwh", "float"),
        Field("direction", "str", required=False, default="import"),  # or "export"
        Field("register_kwh", "float", required=False),
        Field("voltage_v", "float", required=False),
        Field("power_factor", "float", required=False),
        Field("status_flags", "str_list", required=False),
        Field("source", "str", required=False),
    ),
    key=("meter_id", "reading_start"),
    time_field="reading_start",
    topic="metrify.meter-readings.v1",
)

GRID_STATUS = SourceContract(
    source="grid_status",
    table="grid_status",
    fields=(
        Field("grid_node_id", "str"),
        Field("measured_at", "timestamp"),
        Field("frequency_hz", "float"),
        # Many operators publish frequency alone (10 s or 1 s series): voltage and load are optional,
        # so such a feed lands without invented values (v1 stays compatible: senders of both change nothing).
        Field("voltage_v", "float", required=False),
        Field("load_mw", "float", required=False),
        Field("capacity_mw", "float", required=False),
    ),
    key=("grid_node_id", "measured_at"),
    time_field="measured_at",
    topic="metrify.grid-status.v1",
)

WEATHER_OBSERVATIONS = SourceContract(
    source="weather_observations",
    table="weather_observations",
    fields=(
        Field("station_id", "str"),
        Field("observed_at", "timestamp"),
        # Temperature is required: degree-days, the weather impact and sensitivity, the forecasts'
        # and the enrichment's weather are built on it. Stations routinely miss another measure (a
        # broken hygrometer, no rain gauge): those are optional, so the observation lands with that
        # measure null (v1 stays compatible: senders of every measure change nothing; migration 0021).
        Field("temperature_c", "float"),
        Field("humidity_pct", "float", required=False),
        Field("pressure_hpa", "float", required=False),
        Field("wind_speed_ms", "float", required=False),
        Field("precipitation_mm", "float", required=False),
    ),
    key=("station_id", "observed_at"),
    time_field="observed_at",
    topic="metrify.weather-observations.v1",
)

CONTRACTS: dict[str, SourceContract] = {
    c.source: c for c in (METER_READINGS, GRID_STATUS, WEATHER_OBSERVATIONS)
}

# The meter registry (`ops.meters`, loaded from this reference file under the landing directory).
METER_REGISTRY_FILE = "reference/meters.csv"
METER_REGISTRY_COLUMNS = (
    "meter_id",
    "segment",
    "region",
    "weather_station_id",
    "grid_node_id",
    "tariff",
    "timezone",
    "installed_on",
)

# Text fields are identifiers and codes: longer is junk (and would not fit a B-tree index entry).
MAX_TEXT_LENGTH = 256

# Columns Metrify adds to every stored row (see storage/migrations/).
BOOKKEEPING = ("record_version", "batch_id", "ingested_at", "quality_flags")


def contract_for(source: str) -> SourceContract:
    try:
        return CONTRACTS[source]
    except KeyError:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(CONTRACTS)}") from None


def iso_with_offset(instants: pd.DatetimeIndex) -> list[str]:
    """Timezone-aware timestamps as the message contract writes them: ISO 8601 local time with its
    `+HH:MM` offset, to the second, or to the microsecond (what PostgreSQL keeps) when one has a
    fraction, so `metrify ingest` keeps sub-second samples apart. Built in numpy, the offsets once
    per distinct value: `strftime` formats value by value (5.7 s against 0.2 s for 500,000).

    numpy and pandas are imported here, not with the module: the contracts are read by commands that
    never format a timestamp (`metrify review list`), and pandas would cost them a second or more."""
    import numpy as np
    import pandas as pd

    wall = instants.tz_localize(None)
    values = wall.to_numpy(dtype="datetime64[us]")
    whole = bool((values.astype(np.int64) % 1_000_000 == 0).all())
    texts = np.datetime_as_string(values, unit="s" if whole else "us").tolist()
    minutes = ((wall - instants.tz_convert("UTC").tz_localize(None)) // pd.Timedelta(minutes=1)).to_numpy()
    distinct, which = np.unique(minutes, return_inverse=True)
    offsets = [f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in distinct.tolist()]
    if len(offsets) == 1:
        return [text + offsets[0] for text in texts]
    return [text + offsets[k] for text, k in zip(texts, which.tolist(), strict=True)]
