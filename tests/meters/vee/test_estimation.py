"""Estimation methods against known answers, reviewer edits, and the billing gate."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.process import VeeResult, finish, validate_days
from tests.meters.vee.builders import CLOSED, day_starts, quarantined, readings, registry

DAY = date(2026, 6, 10)  # a Wednesday
LONDON = registry(("M1", "Europe/London", None))


def vee(
    candidates: pd.DataFrame,
    like_day: pd.DataFrame | None = None,
    config: VeeConfig | None = None,
    now: pd.Timestamp = CLOSED,
) -> VeeResult:
    cfg = config or VeeConfig()
    validated = validate_days(candidates, LONDON, DAY, DAY, now, pd.Series(dtype="float64"), cfg)
    return finish(validated, like_day if like_day is not None else pd.DataFrame(), cfg)


def ramp() -> np.ndarray:
    """0.1, 0.2, ... kWh: linear interpolation recovers any removed interval exactly."""
    return np.round(0.1 + 0.01 * np.arange(96), 4)


def with_neighbours(energy_of_day: np.ndarray, **kwargs: object) -> pd.DataFrame:
    """The day plus the neighbouring days' readings, continuing the same ramp (anchors at midnight)."""
    days = [DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)]
    starts = pd.DatetimeIndex(np.concatenate([day_starts(d).to_numpy() for d in days]))
    energy = np.concatenate([ramp() - 0.96, energy_of_day, ramp() + 0.96])
    return readings("M1", starts, np.round(energy, 4), **kwargs)  # type: ignore[arg-type]


def test_linear_interpolation_recovers_a_short_gap() -> None:
    cands = with_neighbours(ramp()).drop(index=[96 + 30, 96 + 31, 96 + 32])
    series = vee(cands).series
    gap = series.iloc[30:33]
    assert gap["status"].tolist() == ["estimated"] * 3
    assert set(gap["method"]) == {"linear_interpolation"}
    assert gap["energy_kwh"].to_numpy() == pytest.approx(ramp()[30:33])
    assert gap["original_kwh"].isna().all()


def test_flat_fill_when_only_one_side_is_valid() -> None:
    starts = day_starts(DAY)
    cands = readings("M1", starts[:90], ramp()[:90])  # the last 6 intervals never arrived, no next day
    series = vee(cands).series
    tail = series.iloc[90:]
    assert set(tail["method"]) == {"flat_fill"}
    assert tail["energy_kwh"].to_numpy() == pytest.approx([ramp()[89]] * 6)


def test_like_day_for_a_long_gap_and_interpolation_without_history() -> None:
    cands = with_neighbours(ramp()).drop(index=range(96 + 20, 96 + 40))  # 5 hours
    slots = (
        day_starts(DAY).tz_convert("Europe/London").hour * 60
        + day_starts(DAY).tz_convert("Europe/London").minute
    )
    like = pd.DataFrame({"meter_id": "M1", "local_date": DAY, "slot": slots, "value": 0.777})
    series = vee(cands, like_day=like).series
    assert set(series.iloc[20:40]["method"]) == {"like_day"}
    assert series.iloc[20:40]["energy_kwh"].to_numpy() == pytest.approx([0.777] * 20)
    fallback = vee(cands).series
    assert set(fallback.iloc[20:40]["method"]) == {"linear_interpolation"}


def test_register_scaling_makes_the_gap_sum_to_the_register_movement() -> None:
    true = ramp()
    true[40:50] = 0.9  # what really happened during the gap
    cands = with_neighbours(true, register_from=1000.0).drop(index=range(96 + 40, 96 + 50))
    series = vee(cands).series
    gap = series.iloc[40:50]
    assert set(gap["method"]) == {"linear_interpolation+register_scaled"}
    assert gap["energy_kwh"].sum() == pytest.approx(9.0, abs=1e-6)


def test_spike_is_replaced_by_its_register_value() -> None:
    true = ramp()
    cands = with_neighbours(true, register_from=50.0)
    cands.loc[96 + 60, "energy_kwh"] = 25.0  # the interval channel is wrong, the register is right
    series = vee(cands).series
    row = series.iloc[60]
    assert row["status"] == "estimated" and row["original_kwh"] == 25.0
    assert "spike" in row["reasons"] and "register_mismatch" in row["reasons"]
    assert row["energy_kwh"] == pytest.approx(true[60], abs=1e-6)


def test_a_day_missing_too_much_is_not_estimated_but_flagged() -> None:
    starts = day_starts(DAY)
    result = vee(readings("M1", starts[:30], ramp()[:30]), config=VeeConfig(max_missing_share=0.5))
    assert result.status_counts()["missing"] == 66 and result.status_counts()["estimated"] == 0
    day = result.days.iloc[0]
    assert day["estimation_skipped"] and not day["billing_ready"]
    assert "missing_share" in day["gate_failures"]


def test_reviewer_approval_keeps_the_value_as_an_edit_and_rejection_estimates_it() -> None:
    cands = with_neighbours(ramp())
    cands.loc[96 + 10, ["review_status", "reviewer"]] = ["approved", "alice"]
    cands.loc[96 + 10, "energy_kwh"] = 4.0  # a spike the reviewer confirmed
    cands = cands.drop(index=[96 + 20])
    rejected = quarantined("M1", day_starts(DAY)[20], "review_rejected").assign(
        review_status="rejected", reviewer="bob"
    )
    series = vee(pd.concat([cands, rejected], ignore_index=True)).series
    approved, estimated = series.iloc[10], series.iloc[20]
    assert (approved["status"], approved["method"], approved["edited_by"]) == (
        "edited",
        "review_approved",
        "alice",
    )
    assert approved["energy_kwh"] == 4.0
    assert (estimated["status"], estimated["method"], estimated["edited_by"]) == (
        "edited",
        "linear_interpolation",
        "bob",
    )
    assert estimated["energy_kwh"] == pytest.approx(ramp()[20])


def test_reject_severity_fails_the_interval_without_estimating() -> None:
    cands = with_neighbours(ramp())
    cands.loc[96 + 5, "interval_minutes"] = 30.0
    series = vee(cands).series
    assert series.iloc[5]["status"] == "failed" and np.isnan(series.iloc[5]["energy_kwh"])


def test_billing_gate_thresholds() -> None:
    cands = with_neighbours(ramp()).drop(index=range(96 + 30, 96 + 50))  # 20 of 96 estimated: 21 %
    strict = vee(cands, config=VeeConfig(gate_estimated_share=0.2)).days.iloc[0]
    assert not strict["billing_ready"] and strict["gate_failures"] == "estimated_share"
    assert strict["estimated_intervals"] == 20 and strict["actual_intervals"] == 76
    loose = vee(cands, config=VeeConfig(gate_estimated_share=0.25)).days.iloc[0]
    assert loose["billing_ready"] and loose["gate_failures"] == ""
    split = loose["actual_kwh"] + loose["estimated_kwh"]
    assert split == pytest.approx(float(ramp().sum()), rel=1e-6)


def test_approved_readings_do_not_count_against_the_edited_share() -> None:
    """A reviewer who confirms 30 of a day's readings (say a zero run of a vacant house) keeps their
    values: they stay `edited` (`review_approved`) for the audit, but the gate's edited share counts
    only intervals edited to another value. 30 rejections, estimated by VEE, still fail it."""
    decided = range(96 + 30, 96 + 60)
    approved = with_neighbours(ramp())
    approved.loc[list(decided), ["review_status", "reviewer"]] = ["approved", "alice"]
    day = vee(approved).days.iloc[0]
    assert day["edited_intervals"] == 30 and day["actual_kwh"] == pytest.approx(float(ramp().sum()))
    assert day["billing_ready"] and day["gate_failures"] == ""
    kept = with_neighbours(ramp()).drop(index=list(decided))
    rejected = pd.concat(
        [
            quarantined("M1", start, "review_rejected").assign(review_status="rejected", reviewer="bob")
            for start in day_starts(DAY)[30:60]
        ]
    )
    day = vee(pd.concat([kept, rejected], ignore_index=True)).days.iloc[0]
    assert (
        day["edited_intervals"] == 30 and not day["billing_ready"] and day["gate_failures"] == "edited_share"
    )


def test_an_open_day_is_never_billing_ready_and_future_intervals_are_not_estimated() -> None:
    starts = day_starts(DAY)
    result = vee(readings("M1", starts[:40], ramp()[:40]), now=starts[44])  # 40..43 not sent yet
    day = result.days.iloc[0]
    assert day["gate_failures"].startswith("day_open") and not day["billing_ready"]
    assert result.status_counts()["estimated"] == 0
    assert set(result.series.iloc[40:]["method"]) == {"not_due"}


def test_energy_split_counts_reviewer_estimates_as_estimated() -> None:
    cands = with_neighbours(ramp()).drop(index=[96 + 20])
    rejected = quarantined("M1", day_starts(DAY)[20], "review_rejected").assign(
        review_status="rejected", reviewer="bob"
    )
    day = vee(pd.concat([cands, rejected], ignore_index=True)).days.iloc[0]
    assert day["edited_intervals"] == 1
    assert day["estimated_kwh"] == pytest.approx(ramp()[20])
    assert day["actual_kwh"] == pytest.approx(float(ramp().sum() - ramp()[20]))


def test_a_register_reset_is_not_scaled_into_the_estimates_and_says_why() -> None:
    """A register that restarts at another value (a second simulation, a rollover, a meter exchange)
    moves by no consumption: estimates across it stay unscaled, with `register_reset` as the reason.
    A spike with a sane register is still scaled to it."""
    true = ramp()
    cands = with_neighbours(true, register_from=417_541.0)
    after = cands.index >= 96 + 30
    cands.loc[after, "register_kwh"] += 42_711.0  # restarts higher at interval 30 (adjacent readings)
    later = cands.index >= 96 + 62
    cands.loc[later, "register_kwh"] -= 460_000.0  # and back below zero-ish: a meter exchange at 62
    cands = cands.drop(index=range(96 + 60, 96 + 64))  # ... inside a 4-interval gap
    cands.loc[96 + 80, "energy_kwh"] = 25.0  # a spike: the register is right, scaling fixes it
    result = vee(cands)
    series = result.series
    plausible = 4.0 * np.sort(true)[-3]  # spike_ratio x the day's 3rd highest interval
    assert series["energy_kwh"].max() <= plausible
    reset = series.iloc[30]
    assert (reset["status"], reset["method"]) == ("estimated", "linear_interpolation")
    assert reset["reasons"] == "register_mismatch,register_reset"
    assert reset["energy_kwh"] == pytest.approx(true[30])
    gap = series.iloc[60:64]
    assert set(gap["method"]) == {"linear_interpolation"} and set(gap["reasons"]) == {"gap,register_reset"}
    assert gap["energy_kwh"].to_numpy() == pytest.approx(true[60:64])
    spike = series.iloc[80]
    assert (
        spike["method"] == "linear_interpolation+register_scaled" and "register_reset" not in spike["reasons"]
    )
    assert spike["energy_kwh"] == pytest.approx(true[80], abs=1e-6)
    assert result.reason_counts()["register_reset"] == 5
    assert result.days.iloc[0]["billing_ready"]


def test_a_register_jump_within_the_record_rules_maximum_is_still_no_plausible_consumption() -> None:
    """+500 kWh across one quarter-hour is below the 1000 kWh the record rules allow an interval, but
    a spike for a meter whose intervals hold 1 kWh: not scaled. Without spike history (fewer than
    spike_k valid intervals) the record rules' maximum alone bounds it."""
    cands = with_neighbours(ramp(), register_from=1000.0)
    cands.loc[cands.index >= 96 + 50, "register_kwh"] += 500.0
    series = vee(cands).series
    assert series.iloc[50]["method"] == "linear_interpolation"
    assert "register_reset" in series.iloc[50]["reasons"]
    assert series["energy_kwh"].max() < 2.0


def test_a_spike_the_register_confirms_is_consumption_and_scaling_keeps_it() -> None:
    """A second read found that the plausibility bound was also applied where the register agrees
    with the reading: a real 25 kWh spike, estimated by the spike rule, was called a register reset
    and lost its energy (0.9 kWh billed). Where the register moved by what was read, the run is
    scaled back to it and no reset is recorded."""
    true = ramp()
    cands = with_neighbours(true, register_from=1000.0)
    cands.loc[96 + 80, "energy_kwh"] = 25.0
    cands.loc[cands.index >= 96 + 80, "register_kwh"] += 25.0 - true[80]  # the register agrees
    spike = vee(cands).series.iloc[80]
    assert spike["status"] == "estimated" and "spike" in spike["reasons"]
    assert "register_reset" not in spike["reasons"] and "register_mismatch" not in spike["reasons"]
    assert spike["method"] == "linear_interpolation+register_scaled"
    assert spike["energy_kwh"] == pytest.approx(25.0, abs=1e-6)
