"""VEE's output for warehouse tests that insert readings into `ops` directly.

Since the consumption marts read the billing-grade series (`ops.vee_readings`, `ops.vee_days`, written
by the `vee_meter_readings` asset), a test that inserts readings also inserts what VEE would have made
of them. `all_actual_vee` keeps every reading as read: each meter-day the readings touch gets every
interval of its local day, `actual` where a reading arrived and `missing` elsewhere. Tests then change
single intervals (`set_intervals`) to estimated, edited or failed, and rebuild the day summaries
(`vee_days`) from the intervals, so the two tables agree as VEE's do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any, cast

import numpy as np
import pandas as pd
import psycopg

from metrify_assets.meters.vee.estimation import SERIES_COLUMNS

RULE_VERSION = "test-1"
VALUED = ("actual", "estimated", "edited")
# The test gate (VEE's own thresholds are its configuration): at most 5% of the day without a billing
# value and at most 20% estimated.
MAX_UNVALUED_SHARE = 0.05
MAX_ESTIMATED_SHARE = 0.20

VEE_READINGS_COLUMNS = [*SERIES_COLUMNS, "rule_version"]  # what VEE writes to ops.vee_readings


def local_day_grid(day: date, timezone: str, minutes: int) -> pd.DatetimeIndex:
    """UTC starts of every interval of a local day (92 or 100 quarter-hours on DST days)."""
    start = pd.Timestamp(day).tz_localize(timezone).tz_convert("UTC")
    end = pd.Timestamp(day + timedelta(days=1)).tz_localize(timezone).tz_convert("UTC")
    return pd.date_range(start, end, freq=f"{minutes}min", inclusive="left")


def all_actual_vee(readings: pd.DataFrame, timezones: Mapping[str, str]) -> pd.DataFrame:
    """`ops.vee_readings` rows for `readings` (meter_id, reading_start, interval_minutes, energy_kwh,
    optional direction and batch_id) kept as read; meters not in `timezones` use UTC days."""
    frame = readings.copy()
    frame["reading_start"] = pd.to_datetime(frame["reading_start"], utc=True)
    if "direction" not in frame:
        frame["direction"] = "import"
    if "batch_id" not in frame:
        frame["batch_id"] = None
    zones = [timezones.get(m, "UTC") for m in frame["meter_id"]]
    frame["local_date"] = [
        ts.tz_convert(tz).date() for ts, tz in zip(frame["reading_start"], zones, strict=True)
    ]
    frame["timezone"] = zones
    rows: list[dict[str, Any]] = []
    for (meter, day), group in frame.groupby(["meter_id", "local_date"], sort=True):
        minutes = int(group["interval_minutes"].min())
        read = group.set_index("reading_start")
        for start in local_day_grid(cast(date, day), str(group["timezone"].iloc[0]), minutes):
            base = {"meter_id": meter, "reading_start": start, "local_date": day, "interval_minutes": minutes}
            if start in read.index:
                r = cast(pd.Series, read.loc[start])
                rows.append(
                    base
                    | {
                        "energy_kwh": float(r["energy_kwh"]),
                        "direction": r["direction"],
                        "original_kwh": float(r["energy_kwh"]),
                        "status": "actual",
                        "method": "actual",
                        "reasons": "",
                        "batch_id": r["batch_id"],
                    }
                )
            else:
                rows.append(
                    base
                    | {
                        "energy_kwh": None,
                        "direction": "import",
                        "original_kwh": None,
                        "status": "missing",
                        "method": "none",
                        "reasons": "gap",
                        "batch_id": None,
                    }
                )
    out = pd.DataFrame(rows)
    out["rule_version"] = RULE_VERSION
    out["edited_by"] = None
    return out[VEE_READINGS_COLUMNS]


def set_intervals(vee: pd.DataFrame, mask: pd.Series | np.ndarray, **values: Any) -> pd.DataFrame:
    """A copy of `vee` with `values` set on the intervals in `mask` (e.g. status='estimated')."""
    out = vee.copy()
    for column, value in values.items():
        out[column] = out[column].astype(object)
        out.loc[mask, column] = value
    return out.infer_objects()


def net_kwh(vee: pd.DataFrame) -> pd.Series:
    """Signed billing energy: export negative, whatever sign it was sent with; 0 without a value."""
    magnitude = vee["energy_kwh"].astype(float).abs().fillna(0.0)
    return magnitude.where(vee["direction"] != "export", -magnitude)


def read_energy(vee: pd.DataFrame) -> pd.Series:
    """Intervals whose energy is as read, as VEE's day summary has it (meters/vee/gate.py): a billing
    value kept as read (method actual) or approved by a reviewer (review_approved)."""
    return vee["status"].isin(VALUED) & vee["method"].isin(["actual", "review_approved"])


def estimated_energy(vee: pd.DataFrame) -> pd.Series:
    """Intervals whose energy is estimated: by VEE, or edited to another value after a rejection."""
    return vee["status"].isin(VALUED) & ~read_energy(vee)


def vee_days(vee: pd.DataFrame, timezones: Mapping[str, str]) -> pd.DataFrame:
    """`ops.vee_days` rows summarising `vee` per meter-day, with the test gate's verdict."""
    frame = vee.assign(net=net_kwh(vee))
    rows = []
    for (meter, day), group in frame.groupby(["meter_id", "local_date"], sort=True):
        counts = group["status"].value_counts()
        n = {s: int(counts.get(s, 0)) for s in ("actual", "estimated", "edited", "missing", "failed")}
        expected = len(group)
        failures = []
        if (n["missing"] + n["failed"]) / expected > MAX_UNVALUED_SHARE:
            failures.append("unvalued_share")
        if n["estimated"] / expected > MAX_ESTIMATED_SHARE:
            failures.append("estimated_share")
        rows.append(
            {
                "meter_id": meter,
                "local_date": day,
                "timezone": timezones.get(str(meter), "UTC"),
                "interval_minutes": int(group["interval_minutes"].iloc[0]),
                "expected_intervals": expected,
                **{f"{status}_intervals": count for status, count in n.items()},
                "flagged_intervals": 0,
                "actual_kwh": float(group.loc[read_energy(group), "net"].sum()),
                "estimated_kwh": float(group.loc[estimated_energy(group), "net"].sum()),
                "outage": False,
                "estimation_skipped": n["missing"] > 0 and n["estimated"] == 0,
                "billing_ready": not failures,
                "gate_failures": ",".join(failures),
                "rule_version": RULE_VERSION,
            }
        )
    return pd.DataFrame(rows)


def billing_series(vee: pd.DataFrame) -> pd.DataFrame:
    """The intervals with a billing value, shaped like readings (what the consumption marts sum)."""
    billing = vee[vee["status"].isin(VALUED)].reset_index(drop=True)
    return billing.assign(energy_kwh=billing["energy_kwh"].astype(float))


def _value(v: Any) -> Any:
    """A frame cell as a database value: missing (None, NaN, NA) becomes NULL, numpy scalars Python's."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


def _insert(conn: psycopg.Connection, table: str, frame: pd.DataFrame) -> None:
    columns = list(frame.columns)
    placeholders = ", ".join(["%s"] * len(columns))
    rows: Iterable[tuple[Any, ...]] = (tuple(_value(v) for v in row) for row in frame.itertuples(index=False))
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO ops.{table} ({', '.join(columns)}) VALUES ({placeholders})", list(rows))


def insert_vee(conn: psycopg.Connection, vee: pd.DataFrame, timezones: Mapping[str, str]) -> None:
    """Insert VEE's intervals and the day summaries derived from them (processed now)."""
    _insert(conn, "vee_readings", vee)
    _insert(conn, "vee_days", vee_days(vee, timezones))


def insert_all_actual_vee(
    conn: psycopg.Connection, readings: pd.DataFrame, timezones: Mapping[str, str]
) -> pd.DataFrame:
    """Insert VEE's output for `readings` kept as read; returns the intervals inserted."""
    vee = all_actual_vee(readings, timezones)
    insert_vee(conn, vee, timezones)
    return vee
