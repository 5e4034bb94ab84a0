"""Every interval a meter-day should hold, with what arrived for it.

A meter-day is a local calendar day of the meter's timezone (UTC for a meter not in the registry): 92,
96 or 100 quarter-hours when daylight saving changes. Its intervals run from local midnight to the
next at the meter's interval length (the modal length of its readings). The grid is built for the
meters that sent anything for the day and for registered meters installed and reporting by then (a
silent meter is a missing day, not an absent one). Nothing is expected of a meter before the
interval of its first accepted reading: on its first day the grid begins there, and a quarantined
record before it is in no meter-day (it stays in the quarantine).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from metrify_assets.meters.days import days_between, local_times

CANDIDATE_COLUMNS = [
    "meter_id",
    "reading_start",
    "interval_minutes",
    "energy_kwh",
    "direction",
    "register_kwh",
    "status_flags",
    "batch_id",
    "origin",  # stored (ops.meter_readings) or quarantined (ops.quarantine)
    "ingest_reasons",  # the quarantine reasons; "" for stored readings
    "review_status",  # approved / rejected / None: a reviewer's decision on the reading
    "reviewer",
]
GRID_COLUMNS = [
    "meter_id",
    "local_date",
    "timezone",
    "reading_start",
    "slot",  # minutes after local midnight (wall clock)
    "interval_minutes",
    "expected_intervals",
    "due",  # the interval has ended by `now`
    "day_closed",  # the whole day has ended by `now`
    "before_install",
    "value",
    "direction",
    "read_interval",
    "register_kwh",
    "status_flags",
    "batch_id",
    "ingest_reasons",
    "review_status",
    "reviewer",
    "quarantined_kwh",  # the value of a quarantined record on the interval (what was read, then rejected)
]


def day_keys(frame: pd.DataFrame) -> np.ndarray:
    """ "meter|local_date" per row: the key of a meter-day (grid rows, series rows, day rows)."""
    return (frame["meter_id"].astype(str) + "|" + frame["local_date"].astype(str)).to_numpy()


def empty_candidates() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in CANDIDATE_COLUMNS}).assign(
        reading_start=pd.Series(dtype="datetime64[us, UTC]"),
        energy_kwh=pd.Series(dtype="float64"),
        register_kwh=pd.Series(dtype="float64"),
        interval_minutes=pd.Series(dtype="float64"),
    )


def _local_midnight_utc(days: pd.Series, tz: pd.Series) -> pd.Series:
    """UTC instant of local midnight of each day in its timezone. Where a DST change happens at
    midnight, a skipped midnight moves to the first valid instant and a repeated one is the first."""
    out = pd.Series(pd.NaT, index=days.index, dtype="datetime64[us, UTC]")
    for zone, idx in days.groupby(tz.to_numpy()).groups.items():
        naive = pd.to_datetime(days.loc[idx].astype(str), format="%Y-%m-%d")
        first = np.ones(len(naive), dtype=bool)
        local = naive.dt.tz_localize(str(zone), nonexistent="shift_forward", ambiguous=first)
        out.loc[idx] = local.dt.tz_convert("UTC")
    return out


def _timezones(meter_ids: pd.Series, tz_of: pd.Series) -> pd.Series:
    """Each meter's timezone; UTC for a meter not in the registry."""
    return meter_ids.map(tz_of).astype(object).where(lambda s: s.notna(), "UTC").astype(str)


def meter_days(
    candidates: pd.DataFrame,
    meters: pd.DataFrame,
    first: date,
    last: date,
    default_interval: int,
    reporting_from: pd.Series | None = None,
) -> pd.DataFrame:
    """meter_id, local_date, timezone, interval_minutes, installed_on, reporting_start for the days
    `first`..`last`. `reporting_from`: per meter, the UTC start of the interval it is expected to
    report from (NaT: any, the install date decides; a meter not in it: none); a meter gets no day
    before that instant's local day, and `build_grid` cuts its first day there. None: every meter
    always."""
    tz_of = meters.set_index("meter_id")["timezone"].astype(str) if len(meters) else pd.Series(dtype=str)
    cand = candidates.assign(timezone=_timezones(candidates["meter_id"], tz_of))
    cand["local_date"] = local_times(cand["reading_start"], cand["timezone"]).dt.date
    in_range = cand[(cand["local_date"] >= first) & (cand["local_date"] <= last)]
    seen = in_range[["meter_id", "local_date"]].drop_duplicates()
    days = days_between(first, last)
    registered = pd.DataFrame(columns=["meter_id", "local_date"])
    if len(meters):
        installed = pd.to_datetime(meters["installed_on"]).dt.date
        pairs = [
            (m, d)
            for m, inst in zip(meters["meter_id"], installed, strict=True)
            for d in days
            if pd.isna(inst) or inst <= d
        ]
        registered = pd.DataFrame(pairs, columns=["meter_id", "local_date"])
    out = pd.concat([seen, registered], ignore_index=True).drop_duplicates(ignore_index=True)
    timezone = _timezones(out["meter_id"], tz_of)
    start = pd.Series(pd.NaT, index=out.index, dtype="datetime64[us, UTC]")
    if reporting_from is not None:
        reporting_from = _from_quarantined(reporting_from, cand)
        known = out["meter_id"].isin(reporting_from.index).to_numpy()
        out, timezone = out[known].reset_index(drop=True), timezone[known].reset_index(drop=True)
        start = pd.to_datetime(out["meter_id"].map(reporting_from), utc=True).dt.as_unit("us")
        start_day = local_times(start, timezone).dt.date.astype(object).where(start.notna(), date.min)
        reporting = (out["local_date"] >= start_day).to_numpy(dtype=bool)
        out, timezone, start = (f[reporting].reset_index(drop=True) for f in (out, timezone, start))
    stored = cand[cand["origin"] == "stored"]
    modal = (
        stored.groupby("meter_id")["interval_minutes"].agg(lambda s: s.mode().iloc[0])
        if len(stored)
        else pd.Series(dtype="float64")
    )
    install = meters.set_index("meter_id")["installed_on"] if len(meters) else pd.Series(dtype=object)
    return pd.DataFrame(
        {
            "meter_id": out["meter_id"].astype(str),
            "local_date": out["local_date"],
            "timezone": timezone,
            "interval_minutes": out["meter_id"].map(modal).fillna(default_interval).astype("int64"),
            "installed_on": pd.to_datetime(out["meter_id"].map(install)).dt.date,
            "reporting_start": start,
        }
    ).sort_values(["meter_id", "local_date"], ignore_index=True)


def _from_quarantined(reporting_from: pd.Series, cand: pd.DataFrame) -> pd.Series:
    """`reporting_from` moved back to the quarantined records the meter sent before its first accepted
    reading on that reading's local day (bad data that opens a meter's first day makes its intervals
    failed, not unexpected: the day is not billing-ready), to a reading a reviewer rejected on any day
    before it or of a meter with no accepted reading (it was stored: its interval is the reviewer's
    edit). A quarantined record on a local day before the first accepted reading's (a clock-shifted
    one the evening before), or of a meter none of whose readings was accepted (a mistyped id), still
    belongs to no meter-day: it is in the quarantine, not a meter in the marts. `cand`: the
    candidates with their `timezone` and `local_date`."""
    quarantined = cand[cand["origin"] == "quarantined"]
    if quarantined.empty:
        return reporting_from
    current = pd.to_datetime(reporting_from, utc=True)
    at = pd.to_datetime(quarantined["reading_start"], utc=True)
    start = pd.Series(current.reindex(quarantined["meter_id"]).to_numpy(), index=quarantined.index)
    start = pd.to_datetime(start, utc=True)
    start_day = local_times(start, quarantined["timezone"]).dt.date
    absent = ~quarantined["meter_id"].isin(reporting_from.index)
    before = start.notna() & (at < start)
    rejected = quarantined["ingest_reasons"] == "review_rejected"
    counts = (rejected & (absent | before)) | (before & (quarantined["local_date"] == start_day))
    if not counts.any():
        return reporting_from
    earliest = at[counts].groupby(quarantined.loc[counts, "meter_id"]).min()
    kept = current[~current.index.isin(earliest.index)]
    return pd.concat([kept, earliest])


def build_grid(days: pd.DataFrame, candidates: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """One row per interval of each meter-day, with the stored reading and quarantine reasons on it.

    Quarantined candidates land on the interval their timestamp falls in (a clock-shifted reading
    explains why its interval is empty). On a day before the meter's install date only intervals
    that received a reading are kept (they fail `before_install`); the others were never expected.
    Intervals that end by the meter's `reporting_start` are dropped, with any quarantined record on
    them: the meter was not reporting yet, so they are neither missing nor failed.
    """
    if days.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in GRID_COLUMNS})
    start = _local_midnight_utc(days["local_date"], days["timezone"])
    end = _local_midnight_utc(days["local_date"].map(lambda d: d + timedelta(days=1)), days["timezone"])
    start_us = start.dt.as_unit("us").astype("int64").to_numpy()
    end_us = end.dt.as_unit("us").astype("int64").to_numpy()
    step_us = days["interval_minutes"].astype("int64").to_numpy() * 60_000_000
    expected = (end_us - start_us) // step_us
    rows = np.repeat(np.arange(len(days)), expected)
    position = np.arange(len(rows)) - np.repeat(np.cumsum(expected) - expected, expected)
    grid = days.iloc[rows].reset_index(drop=True)
    grid["expected_intervals"] = expected[rows]
    grid["reading_start"] = pd.to_datetime(start_us[rows] + step_us[rows] * position, unit="us", utc=True)
    local = local_times(grid["reading_start"], grid["timezone"])
    grid["slot"] = (local.dt.hour * 60 + local.dt.minute).astype("int64")
    now_utc = pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else pd.Timestamp(now, tz="UTC")
    grid["due"] = _interval_end(grid) <= now_utc
    grid["day_closed"] = end_us[rows] <= now_utc.value // 1000
    grid["before_install"] = grid["installed_on"].notna() & (
        grid["local_date"] < grid["installed_on"].where(grid["installed_on"].notna(), date.min)
    )

    stored = candidates[candidates["origin"] == "stored"]
    # One sign convention for the series: export negative (the contract lets exports arrive either way).
    export = (stored["direction"] == "export").to_numpy(dtype=bool)
    stored = stored.assign(energy_kwh=np.where(export, -stored["energy_kwh"].abs(), stored["energy_kwh"]))
    grid = grid.merge(
        stored[
            [
                "meter_id",
                "reading_start",
                "energy_kwh",
                "direction",
                "interval_minutes",
                "register_kwh",
                "status_flags",
                "batch_id",
                "review_status",
                "reviewer",
            ]
        ].rename(columns={"energy_kwh": "value", "interval_minutes": "read_interval"}),
        on=["meter_id", "reading_start"],
        how="left",
    )
    grid["ingest_reasons"] = ""
    grid["quarantined_kwh"] = np.nan
    quarantined = candidates[candidates["origin"] == "quarantined"]
    if len(quarantined):
        grid = _place_quarantined(grid, quarantined)
    reporting = grid["reporting_start"].isna() | (_interval_end(grid) > grid["reporting_start"])
    keep = (~grid["before_install"] | grid["value"].notna()) & reporting
    grid = grid[keep].reset_index(drop=True)
    grid["due"] = grid["due"] & ~_pending(grid)
    grid["expected_intervals"] = grid.groupby(["meter_id", "local_date"])["slot"].transform("size")
    return grid.sort_values(["meter_id", "reading_start"], ignore_index=True)[GRID_COLUMNS]


def _interval_end(grid: pd.DataFrame) -> pd.Series:
    return grid["reading_start"] + pd.to_timedelta(grid["interval_minutes"], unit="min")


def _pending(grid: pd.DataFrame) -> np.ndarray:
    """Intervals of a day still in progress after the last one its meter delivered anything for: not
    yet missing (a head-end sends the day's profile late), so neither gaps nor estimated."""
    received = grid["value"].notna() | (grid["ingest_reasons"] != "")
    start_us = grid["reading_start"].dt.as_unit("us").astype("int64")
    last = start_us.where(received).groupby(grid["meter_id"]).transform("max")
    open_day = ~grid["day_closed"].to_numpy(dtype=bool)
    with np.errstate(invalid="ignore"):
        after = ~(start_us <= last).to_numpy()  # NaN last (nothing received): every interval
    return open_day & after


def _place_quarantined(grid: pd.DataFrame, quarantined: pd.DataFrame) -> pd.DataFrame:
    """Join each quarantined record's reasons (and a rejecting reviewer) onto its nearest interval."""
    step_of = grid.groupby("meter_id")["interval_minutes"].first()
    q = quarantined[quarantined["meter_id"].isin(step_of.index)].copy()
    if q.empty:
        return grid
    step_us = q["meter_id"].map(step_of).astype("int64").to_numpy() * 60_000_000
    start_us = q["reading_start"].dt.tz_convert("UTC").dt.as_unit("us").astype("int64").to_numpy()
    # The meter's grid phase (local midnight need not sit on the UTC interval grid: +05:30 with
    # hourly intervals), then the nearest interval start, ahead or behind: where a clock-shifted
    # reading most likely belongs.
    grid_us = grid["reading_start"].dt.as_unit("us").astype("int64")
    phase_of = (
        (grid_us % (grid["interval_minutes"].astype("int64") * 60_000_000)).groupby(grid["meter_id"]).first()
    )
    phase = q["meter_id"].map(phase_of).astype("int64").to_numpy()
    nearest = start_us - phase + step_us // 2
    q["reading_start"] = pd.to_datetime(nearest - nearest % step_us + phase, unit="us", utc=True)
    placed = q.groupby(["meter_id", "reading_start"], sort=False).agg(
        q_reasons=("ingest_reasons", lambda s: ",".join(sorted(set(",".join(s).split(","))))),
        q_reviewer=("reviewer", lambda s: next((v for v in s if isinstance(v, str) and v), None)),
        q_value=("energy_kwh", "first"),
    )
    grid = grid.merge(placed.reset_index(), on=["meter_id", "reading_start"], how="left")
    grid["ingest_reasons"] = grid["q_reasons"].fillna("")
    grid["reviewer"] = grid["reviewer"].where(grid["reviewer"].notna(), grid["q_reviewer"])
    grid["quarantined_kwh"] = grid["q_value"].astype("float64")
    return grid.drop(columns=["q_reasons", "q_reviewer", "q_value"])
