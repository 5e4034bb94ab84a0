"""Every rule of the VEE catalogue on hand-built meter-days, DST days of 23 and 25 hours included."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metrify_assets.meters.vee.catalogue import CATALOGUE, VeeConfig
from metrify_assets.meters.vee.process import Validated, validate_days
from tests.meters.vee.builders import CLOSED, day_starts, quarantined, readings, registry

SPRING, AUTUMN, PLAIN = date(2026, 3, 29), date(2026, 10, 25), date(2026, 6, 10)
LONDON = registry(("M1", "Europe/London", None))


def profile(n: int, seed: int = 1) -> np.ndarray:
    """A plausible, never-repeating day of quarter-hours (0.1..0.6 kWh)."""
    rng = np.random.default_rng(seed)
    return np.round(0.1 + 0.5 * rng.random(n), 4)


def run(
    candidates: pd.DataFrame,
    day: date = PLAIN,
    meters: pd.DataFrame = LONDON,
    history: pd.Series | None = None,
    now: pd.Timestamp = CLOSED,
) -> Validated:
    avg = history if history is not None else pd.Series(dtype="float64")
    return validate_days(candidates, meters, day, day, now, avg, VeeConfig())


def fired(validated: Validated, day: date = PLAIN) -> pd.DataFrame:
    """Masks of the rows of `day` (the grid also holds the neighbouring days)."""
    in_day = (validated.grid["local_date"] == day).to_numpy()
    return validated.masks[in_day].reset_index(drop=True)


@pytest.mark.parametrize(("day", "intervals"), [(SPRING, 92), (PLAIN, 96), (AUTUMN, 100)])
def test_gap_counts_every_missing_interval_of_a_dst_day(day: date, intervals: int) -> None:
    starts = day_starts(day)
    assert len(starts) == intervals
    kept = readings("M1", starts, profile(intervals)).drop(index=[3, 4, intervals - 1])
    masks = fired(run(kept, day), day)
    assert len(masks) == intervals
    assert masks["gap"].sum() == 3
    assert masks.drop(columns="gap").sum().sum() == 0


def test_clean_day_fires_nothing() -> None:
    masks = fired(run(readings("M1", day_starts(PLAIN), profile(96), register_from=10.0)))
    assert masks.to_numpy().sum() == 0


def test_spike_is_highest_against_kth_highest() -> None:
    energy = profile(96)
    energy[50] = 5.0
    energy[60] = 2.0  # below 4 x the third highest (at least 0.6 with two spikes above it)
    masks = fired(run(readings("M1", day_starts(PLAIN), energy)))
    assert masks["spike"].tolist() == [i == 50 for i in range(96)]


def test_interval_size_mismatch_and_before_install() -> None:
    starts = day_starts(PLAIN)
    cands = readings("M1", starts, profile(96))
    cands.loc[7, "interval_minutes"] = 30.0
    masks = fired(run(cands))
    assert masks["interval_size_mismatch"].tolist() == [i == 7 for i in range(96)]
    installed_later = registry(("M1", "Europe/London", date(2026, 6, 11)))
    validated = run(readings("M1", starts[:10], profile(10)), meters=installed_later)
    day_rows = fired(validated)
    assert len(day_rows) == 10  # only the intervals that arrived before install are kept
    assert day_rows["before_install"].all()


def test_high_and_low_usage_against_history() -> None:
    starts = day_starts(PLAIN)
    energy = profile(96)
    normal = float(energy.sum())
    high = fired(run(readings("M1", starts, energy), history=pd.Series({"M1": normal / 4})))
    assert high["high_usage"].all() and not high["low_usage"].any()
    low = fired(run(readings("M1", starts, energy), history=pd.Series({"M1": normal * 20})))
    assert low["low_usage"].all() and not low["high_usage"].any()
    assert (
        not fired(run(readings("M1", starts, energy), history=pd.Series({"M1": normal})))[
            ["high_usage", "low_usage"]
        ]
        .any()
        .any()
    )


def test_consecutive_identical_and_prolonged_zero_with_outage() -> None:
    energy = profile(96)
    energy[10:19] = 0.333  # 9 identical
    energy[40:48] = 0.0  # 8 zeros: a run
    energy[70:74] = 0.0  # 4 zeros: too short
    masks = fired(run(readings("M1", day_starts(PLAIN), energy)))
    assert masks["consecutive_identical"].tolist() == [10 <= i < 19 for i in range(96)]
    assert masks["prolonged_zero"].tolist() == [40 <= i < 48 for i in range(96)]
    flags: list[str | None] = [None] * 96
    flags[42] = "power_fail"
    outage = fired(run(readings("M1", day_starts(PLAIN), energy, flags=flags)))
    assert not outage["prolonged_zero"].any()  # an outage's zeros are real


def test_reverse_flow_at_night_only() -> None:
    starts = day_starts(PLAIN)  # BST: local hour = UTC + 1
    energy = profile(96)
    energy[4] = -0.3  # 00:00 local: night
    energy[52] = -0.3  # 13:00 local: solar
    masks = fired(run(readings("M1", starts, energy)))
    assert masks["reverse_flow"].tolist() == [i == 4 for i in range(96)]


def test_ingest_rejections_are_placed_on_their_interval() -> None:
    starts = day_starts(PLAIN)
    stored = readings("M1", starts, profile(96)).drop(index=[20, 30])
    shifted = starts[30] + pd.Timedelta(minutes=7)
    cands = pd.concat(
        [
            stored,
            quarantined("M1", starts[20], "negative_energy", -0.4),
            quarantined("M1", shifted, "timestamp_misaligned"),
            quarantined("M1", starts[40], "duplicate_conflict", 0.9),
        ],
        ignore_index=True,
    )
    masks = fired(run(cands))
    assert masks["negative_consumption"].tolist() == [i == 20 for i in range(96)]
    assert masks["clock_fault"].tolist() == [i == 30 for i in range(96)]
    assert masks["duplicate_conflict"].tolist() == [i == 40 for i in range(96)]
    assert masks["gap"].sum() == 0  # the two empty intervals are explained by their reasons


def test_clock_set_flag_and_register_mismatch() -> None:
    starts = day_starts(PLAIN)
    energy = profile(96)
    flags: list[str | None] = [None] * 96
    flags[5] = "clock_set"
    cands = readings("M1", starts, energy, register_from=500.0, flags=flags)
    cands.loc[60, "energy_kwh"] = energy[60] * 3  # the register says otherwise
    masks = fired(run(cands))
    assert masks["clock_set"].tolist() == [i == 5 for i in range(96)]
    assert masks["register_mismatch"].tolist() == [i == 60 for i in range(96)]


def test_today_counts_gaps_only_before_the_last_delivered_interval() -> None:
    starts = day_starts(PLAIN)
    now = starts[48]  # noon UTC: half the day has happened
    delivered = readings("M1", starts[:40], profile(40)).drop(index=[10, 11])
    validated = run(delivered, now=now)
    masks = fired(validated)
    # 10 and 11 are missing; 40..47 are due but the head-end has not sent them yet; 48.. not due.
    assert masks["gap"].tolist() == [i in (10, 11) for i in range(96)]
    day = validated.grid[validated.grid["local_date"] == PLAIN]
    assert not day["due"].iloc[40:].any()


def test_every_rule_is_documented_with_a_severity() -> None:
    docs = (Path(__file__).parents[3] / "docs" / "quality.md").read_text()
    for code, rule in CATALOGUE.items():
        assert rule.severity in ("reject", "estimate", "flag")
        assert f"`{code}`" in docs, f"{code} is not in docs/quality.md"


def test_severities_are_configurable_and_versioned() -> None:
    base = VeeConfig()
    changed = base.with_severities(spike="flag")
    assert changed.severity("spike") == "flag" and base.severity("spike") == "estimate"
    assert changed.rule_version != base.rule_version
    with pytest.raises(ValueError, match="unknown VEE rules"):
        VeeConfig(severities={"nope": "flag"})


def test_rules_on_the_25_hour_day_follow_the_local_clock() -> None:
    """On 2026-10-25 London repeats 01:00-02:00: 100 quarter-hours, slots 60..119 twice."""
    starts = day_starts(AUTUMN)
    energy = profile(100)
    energy[4] = -0.3  # 01:00 BST, the first 01:00: night
    energy[8] = -0.3  # 01:00 GMT, the repeated hour: night too
    energy[60:70] = 0.0  # 2.5 hours of zeros across 14:00 GMT
    energy[90] = 6.0  # 21:30 GMT
    cands = readings("M1", starts, energy, register_from=10.0)
    cands.loc[90, "register_kwh"] = cands.loc[89, "register_kwh"] + energy[89]  # register disagrees
    validated = run(cands, AUTUMN)
    masks = fired(validated, AUTUMN)
    slots = validated.grid.loc[validated.grid["local_date"] == AUTUMN, "slot"].to_numpy()
    assert len(masks) == 100 and (slots == 60).sum() == 2  # two local 01:00 intervals
    assert masks["reverse_flow"].tolist() == [i in (4, 8) for i in range(100)]
    assert masks["prolonged_zero"].tolist() == [60 <= i < 70 for i in range(100)]
    assert masks["spike"].tolist() == [i == 90 for i in range(100)]
    assert masks["register_mismatch"].tolist() == [i in (90, 91) for i in range(100)]


def test_a_newer_reading_after_a_reviewers_rejection_is_judged_afresh() -> None:
    starts = day_starts(PLAIN)
    stored = readings("M1", starts, profile(96))  # interval 20 holds the corrected, newer version
    rejected = quarantined("M1", starts[20], "review_rejected").assign(
        review_status="rejected", reviewer="bob"
    )
    masks = fired(run(pd.concat([stored, rejected], ignore_index=True)))
    assert not masks["review_rejected"].any() and not masks["gap"].any()


def test_clock_shifted_reading_lands_on_a_half_hour_offset_grid() -> None:
    kolkata = registry(("M1", "Asia/Kolkata", None))
    starts = day_starts(PLAIN, tz="Asia/Kolkata", minutes=60)  # hourly, local midnight at 18:30 UTC
    stored = readings("M1", starts, profile(24), minutes=60).drop(index=[5])
    shifted = quarantined("M1", starts[5] + pd.Timedelta(minutes=4), "timestamp_misaligned")
    masks = fired(run(pd.concat([stored, shifted], ignore_index=True), meters=kolkata))
    assert masks["clock_fault"].tolist() == [i == 5 for i in range(24)]
    assert not masks["gap"].any()
